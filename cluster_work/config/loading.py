"""Reading a config file's text into YAML documents, safely: every problem is one ConfigError line.

Safe means: PyYAML's SafeLoader (no `!!python/...` tags; the experiment's own `!tags` only where its code
declared them), duplicate keys refused, `1e-3` read as a float, and a file, a nesting depth and an
expansion through aliases of bounded size (an alias bomb costs its node count, not its expansion).
The text is parsed by libyaml's C parser where PyYAML has it (5x faster: a 10^4-value grid in 0.05 s, not
0.27 s), by PyYAML's Python parser where not and where libyaml refuses the text (`read_yaml`).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

try:
    from yaml._yaml import CParser  # libyaml's scanner and parser
except ImportError:  # PyYAML built without libyaml
    CParser = None  # type: ignore[assignment, misc]

from ..errors import ClusterWorkError, config_error
from ..vocabulary import ConfigSource

# What a config may be; beyond these it is refused with one line (see the README).
MAX_CONFIG_BYTES = 10 * 2**20       # the file itself
MAX_VALUES = 1_000_000              # scalars a document holds once its aliases are expanded
MAX_DEPTH = 100                     # nesting of mappings and lists


class _Refused(yaml.YAMLError):
    """A document deeper or larger than a config may be, or holding an alias inside the node it names: its
    problem (naming the line) and the document's number in the stream."""

    def __init__(self, problem: str, document: int):
        super().__init__(problem)
        self.problem, self.document = problem, document


_TOO_DEEP = f"nests deeper than {MAX_DEPTH} levels"


class _MeasuringComposer(Composer):
    """PyYAML's composer (Python code, over the events of either parser) measuring what it composes, so that
    no later traversal has to: a collection nested deeper than MAX_DEPTH is refused before its contents are
    composed (so no recursion, Python's or libyaml's C composer's, ever runs deep: the C composer is never
    used), and each collection's height and size (the scalars it holds once its aliases are expanded) come
    from its children's, so an alias bomb costs its node count, not its expansion. An alias inside the
    collection it names (a cycle) is the one collection child not measured yet: it is still being composed."""

    def __init__(self) -> None:
        Composer.__init__(self)
        self.depth = 0
        self.documents = 0
        self.measures: dict[int, tuple[int, int]] = {}  # id(collection node): (size, height); for this document

    def compose_document(self) -> Any:
        self.documents += 1
        self.measures = {}
        return super().compose_document()

    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._measured(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._measured(super().compose_mapping_node, anchor)

    def _measured(self, compose: Any, anchor: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self._refused(_TOO_DEEP, self.peek_event().start_mark)  # type: ignore[attr-defined]
            node = compose(anchor)
            size, height = 0, 1
            for child in node.value if isinstance(node, yaml.SequenceNode) else _flat(node.value):
                if isinstance(child, yaml.ScalarNode):
                    size, height = size + 1, max(height, 2)
                    continue
                measure = self.measures.get(id(child))
                if measure is None:
                    raise self._refused("holds an alias that contains itself", child.start_mark)
                size, height = size + measure[0], max(height, measure[1] + 1)
            if self.depth + height - 1 > MAX_DEPTH:  # deeper through an alias (or a scalar at MAX_DEPTH + 1)
                raise self._refused(_TOO_DEEP, node.start_mark)
            if size > MAX_VALUES:
                raise _Refused(f"expands to more than {MAX_VALUES:,} values (through aliases?)", self.documents)
            self.measures[id(node)] = (max(size, 1), height)
            return node
        finally:
            self.depth -= 1

    def _refused(self, problem: str, mark: Any) -> _Refused:
        return _Refused(f"{problem} (line {mark.line + 1})", self.documents)


def _flat(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [part for pair in pairs for part in pair]


class _ConfigLoader(_MeasuringComposer, SafeConstructor, Resolver):
    """What a config is read with, over either parser (`_CConfigLoader`, `_PythonConfigLoader`): SafeLoader's
    constructor and resolver, reading `1e-3` as a float (YAML 1.1 insists on a dot) and refusing duplicate
    keys, and the measuring composer."""

    def __init__(self) -> None:
        _MeasuringComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], Any] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key_node.value!r} (first on line "
                                        f"{seen[key].start_mark.line + 1})", key_node.start_mark)
                    seen[key] = key_node
        return super().construct_mapping(node, deep)


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


class _PythonConfigLoader(Reader, Scanner, Parser, _ConfigLoader):
    """PyYAML's pure-Python reader, scanner and parser: where PyYAML has no libyaml, and for the text libyaml
    refuses (see read_yaml)."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _ConfigLoader.__init__(self)


_LOADERS: list[type[_ConfigLoader]] = [_PythonConfigLoader]
if CParser is not None:
    class _CConfigLoader(_ConfigLoader, CParser):  # type: ignore[misc]  # (the stubs' methods differ)
        """libyaml's scanner and parser, in C (5x faster than PyYAML's); only their events are used: the
        composer (first in this order) is `_MeasuringComposer`, not CParser's own, which recurses in C."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _ConfigLoader.__init__(self)

    _LOADERS.insert(0, _CConfigLoader)


def _user_tags() -> dict[str, Any]:
    """Constructors of the tags the experiment's own code declared: `yaml.YAMLObject` subclasses
    (outside PyYAML) and local `!tags` added to PyYAML's default loader. `!!python/...` stays refused."""
    constructors: dict[str, Any] = {}
    todo = list(yaml.YAMLObject.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        tag = cls.__dict__.get("yaml_tag")
        if isinstance(tag, str) and not cls.__module__.startswith("yaml"):
            constructors[tag] = cls.from_yaml
    for tag, constructor in yaml.Loader.yaml_constructors.items():
        if isinstance(tag, str) and tag.startswith("!") and tag not in constructors:
            constructors[tag] = constructor
    return constructors


@dataclass(frozen=True)
class UnknownTag:
    """A local `!tag` that no loaded code declares, kept as it was written when a config is only read for
    its folders (load_results in a notebook that did not import the experiment's module)."""

    tag: str
    value: Any


def construct_unknown_tag(loader: SafeConstructor, tag: str, node: Any) -> UnknownTag:
    if isinstance(node, yaml.MappingNode):
        return UnknownTag(tag, loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return UnknownTag(tag, loader.construct_sequence(node, deep=True))
    return UnknownTag(tag, loader.construct_scalar(node))


def loader_class(keep_unknown_tags: bool = False, *, python: bool = False) -> type[_ConfigLoader]:
    """The config's loader class (libyaml's parser where PyYAML has it, unless `python`), constructing the
    tags the experiment's code declares; `keep_unknown_tags`: other local `!tags` become UnknownTag."""
    base = _LOADERS[-1] if python else _LOADERS[0]
    tags = _user_tags()
    if not tags and not keep_unknown_tags:
        return base
    loader: type[_ConfigLoader] = type("_ConfigLoaderWithUserTags", (base,), {})
    if keep_unknown_tags:
        loader.add_multi_constructor("!", construct_unknown_tag)
    for tag, constructor in tags.items():
        loader.add_constructor(tag, constructor)
    return loader


# What libyaml refuses that PyYAML's Python parser may take (a text that cannot be UTF-8 encoded: lone
# surrogates, which CParser meets before any YAML rule); such a text is read again by the Python parser.
_C_REFUSALS = (yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.reader.ReaderError, UnicodeEncodeError)


def _plain_loader(python: bool) -> type[_ConfigLoader]:
    return loader_class(python=python)


def read_yaml(text: str, loader_for: Callable[[bool], type[_ConfigLoader]] = _plain_loader,
              first_only: bool = False, single: bool = False) -> list[Any]:
    """The documents of `text` (`first_only`: the first alone, the rest not parsed; `single`: the one document
    there must be, as yaml.load), each constructed by `loader_for(python)`'s loader.

    libyaml's C parser reads the text where PyYAML has it (and the text holds no byte order mark past its start,
    which libyaml skips but PyYAML reads); a text it refuses is read again by PyYAML's Python parser, so that
    every text PyYAML accepted is still accepted, read alike, and a text both refuse gets PyYAML's message,
    as before. Both parsers give the same events for every other text (with a few exceptions, in the README:
    libyaml takes some YAML that PyYAML refused, such as a tab after `key:`, and reads `x: !` as '', not None)."""
    if len(_LOADERS) > 1 and text.find("\ufeff", 1) < 0:
        try:
            return _construct(loader_for(False), text, first_only, single)
        except _C_REFUSALS:
            pass
    return _construct(loader_for(True), text, first_only, single)


def _construct(loader_type: type[_ConfigLoader], text: str, first_only: bool, single: bool) -> list[Any]:
    loader = loader_type(text)  # type: ignore[call-arg]  # (both concrete loaders take the text)
    try:
        if single:
            node = loader.get_single_node()
            return [None if node is None else loader.construct_document(node)]
        documents: list[Any] = []
        while not (first_only and documents) and loader.check_node():
            documents.append(loader.construct_document(loader.get_node()))
        return documents
    finally:
        loader.dispose()  # type: ignore[attr-defined]


def parse_documents(text: str, source: ConfigSource | str, keep_unknown_tags: bool = False) -> list[Any]:
    """Parse YAML text into its documents, turning every problem into a one-line ConfigError.

    A local `!tag` that no loaded code declares is an error, unless `keep_unknown_tags` (for reading a
    config only to find its folders): then it becomes an `UnknownTag`. Python tags are refused always."""
    try:
        documents = read_yaml(text, lambda python: loader_class(keep_unknown_tags, python=python))
    except _Refused as exc:
        raise config_error(source, f"document {exc.document} {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise config_error(source, f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise config_error(source, _TOO_DEEP) from None
    except ClusterWorkError:
        raise
    except Exception as exc:  # a user tag's constructor that raised
        raise config_error(source, f"cannot read a value: {type(exc).__name__}: {exc}") from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise config_error(source, "the file holds no experiment documents")
    return documents


def read_text(source: str) -> str:
    """The config file as text: UTF-8 (a BOM allowed), at most MAX_CONFIG_BYTES."""
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise config_error(source, f"cannot read the config file: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise config_error(source, f"is larger than {MAX_CONFIG_BYTES // 2**20} MiB; a config that large is "
                                   "refused (generate the values with grid/list instead)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise config_error(source, "is UTF-16 text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise config_error(source, f"is not UTF-8 text (byte {exc.start}: 0x{data[exc.start]:02x}); "
                                   "save it as UTF-8") from None
