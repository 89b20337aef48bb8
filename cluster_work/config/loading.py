"""Reading a config file's text into YAML documents, safely: every problem is one ConfigError line.

Safe means: PyYAML's SafeLoader (no `!!python/...` tags; the experiment's own `!tags` only where its code
declared them), duplicate keys refused, `1e-3` read as a float, and a file, a nesting depth and an
expansion through aliases of bounded size (an alias bomb costs its node count, not its expansion).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import ClusterWorkError, config_error
from ..vocabulary import ConfigSource

# What a config may be; beyond these it is refused with one line (see the README).
MAX_CONFIG_BYTES = 10 * 2**20       # the file itself
MAX_VALUES = 1_000_000              # scalars a document holds once its aliases are expanded
MAX_DEPTH = 100                     # nesting of mappings and lists


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.1 insists on a dot) and refuses duplicate keys."""

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


def construct_unknown_tag(loader: yaml.SafeLoader, tag: str, node: Any) -> UnknownTag:
    if isinstance(node, yaml.MappingNode):
        return UnknownTag(tag, loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return UnknownTag(tag, loader.construct_sequence(node, deep=True))
    return UnknownTag(tag, loader.construct_scalar(node))


def loader_class(keep_unknown_tags: bool = False) -> type[_ConfigLoader]:
    tags = _user_tags()
    if not tags and not keep_unknown_tags:
        return _ConfigLoader
    loader: type[_ConfigLoader] = type("_ConfigLoaderWithUserTags", (_ConfigLoader,), {})
    if keep_unknown_tags:
        loader.add_multi_constructor("!", construct_unknown_tag)
    for tag, constructor in tags.items():
        loader.add_constructor(tag, constructor)
    return loader


def _check_size(root: Any, source: ConfigSource | str, number: int) -> None:
    """Refuse a document that nests deeper than MAX_DEPTH or expands (through aliases, which the parser
    shares and every later traversal repeats) to more than MAX_VALUES scalars; also cyclic aliases.
    Sizes are memoised per node, so an alias bomb costs its node count, not its expansion."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    open_nodes: set[int] = set()
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            children = _children(node)
            sizes[key] = 1 if not children else sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_VALUES:
                raise config_error(source, f"document {number} expands to more than {MAX_VALUES:,} values "
                                           "(through aliases?)")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise config_error(source, f"document {number} holds an alias that contains itself "
                                       f"(line {node.start_mark.line + 1})")
        if depth > MAX_DEPTH:
            raise config_error(source, f"document {number} nests deeper than {MAX_DEPTH} levels "
                                       f"(line {node.start_mark.line + 1})")
        open_nodes.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node) if id(child) not in sizes)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_documents(text: str, source: ConfigSource | str, keep_unknown_tags: bool = False) -> list[Any]:
    """Parse YAML text into its documents, turning every problem into a one-line ConfigError.

    A local `!tag` that no loaded code declares is an error, unless `keep_unknown_tags` (for reading a
    config only to find its folders): then it becomes an `UnknownTag`. Python tags are refused always."""
    documents: list[Any] = []
    loader = loader_class(keep_unknown_tags)(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_size(node, source, len(documents) + 1)
            documents.append(loader.construct_document(node))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise config_error(source, f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise config_error(source, f"nests deeper than {MAX_DEPTH} levels") from None
    except ClusterWorkError:
        raise
    except Exception as exc:  # a user tag's constructor that raised
        raise config_error(source, f"cannot read a value: {type(exc).__name__}: {exc}") from None
    finally:
        loader.dispose()
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
