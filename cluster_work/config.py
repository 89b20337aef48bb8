"""Reading a multi-document YAML config into validated experiment documents.

Pure functions over dicts apart from `load_config`, which reads the file:

    name: DEFAULT            # optional first document, deep-merged under every experiment
    repetitions: 3
    path: results
    ---
    name: fit                # one document per experiment
    iterations: 100
    params: {model: {width: 8}}
    grid: {lr: [0.1, 0.01]}  # expanded later by `cluster_work.expansion`

Every problem becomes one `ConfigError` naming the file, the experiment and the key.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import ClusterWorkError, config_error

log = logging.getLogger("cluster_work")

REQUIRED_KEYS = ("name", "repetitions", "iterations", "path")
KNOWN_KEYS = frozenset(REQUIRED_KEYS + ("params", "grid", "list", "random", "custom", "slurm", "gui", "plotting",
                                       "log_path", "command", "files", "ensemble", "steer", "stall_timeout"))
CUSTOM_KEYS = frozenset({"function", "samples", "params"})
RANDOM_KEYS = frozenset({"samples", "seed", "params", "without_replacement"})
DEFAULT_NAME = "DEFAULT"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,-]*")

# What a config may be and expand to; beyond these it is refused with one line (see the README).
MAX_CONFIG_BYTES = 10 * 2**20       # the file itself
MAX_VALUES = 1_000_000              # scalars a document holds once its aliases are expanded
MAX_DEPTH = 100                     # nesting of mappings and lists
MAX_NAME_LENGTH = 100               # characters of an experiment's base name
MAX_PATH_COMPONENT = 255            # bytes of one folder name (NAME_MAX of Linux file systems)
MAX_REPETITIONS = 1_000_000
MAX_SAMPLES = 10_000_000

Warn = Callable[[str], None]
KeyPath = tuple[str, ...]  # ('optimizer', 'lr') for params.optimizer.lr; a key may itself hold a dot


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


def _check_size(root: Any, source: str, number: int) -> None:
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


def parse_documents(text: str, source: str, keep_unknown_tags: bool = False) -> list[Any]:
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


def load_config(path: str | os.PathLike[str], warn: Warn = log.warning,
                keep_unknown_tags: bool = False) -> list[dict[str, Any]]:
    """Read `path` and return one validated, DEFAULT-merged document per experiment."""
    source = os.fspath(path)
    return merge_and_validate(parse_documents(read_text(source), source, keep_unknown_tags), source, warn)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `base` with `override` merged in; nested mappings merge key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def is_default_document(document: Mapping[str, Any]) -> bool:
    """The original's rule: a first document named `default` in any case holds the defaults."""
    name = document.get("name")
    return isinstance(name, str) and name.lower() == DEFAULT_NAME.lower()


def merge_and_validate(documents: list[Any], source: str, warn: Warn = log.warning) -> list[dict[str, Any]]:
    """Merge the optional DEFAULT document under each experiment and validate every one."""
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, Mapping):
            raise config_error(source, f"document {number} must be a mapping of keys to values, "
                                       f"got {type(document).__name__}")
    documents = [_replicas_as_repetitions(d, source, number) for number, d in enumerate(documents, start=1)]
    default: Mapping[str, Any] = {}
    if is_default_document(documents[0]):
        default, documents = documents[0], documents[1:]
    experiments = []
    seen: dict[str, int] = {}
    for number, document in enumerate(documents, start=2 if default else 1):
        if "name" not in document:
            raise config_error(source, f"document {number}: every experiment document needs its own 'name'",
                               key="name")
        if is_default_document(document):
            raise config_error(source, f"document {number}: only the first document may be named "
                                       f"'{DEFAULT_NAME}'", key="name")
        experiment = deep_merge(default, document)
        validate_experiment(experiment, source, number, warn)
        name = experiment["name"]
        if name in seen:
            raise config_error(source, f"duplicate experiment name (documents {seen[name]} and {number})",
                               experiment=name, key="name")
        seen[name] = number
        experiments.append(experiment)
    if not experiments:
        raise config_error(source, "the file holds a DEFAULT document but no experiment")
    return experiments


def _replicas_as_repetitions(document: Mapping[str, Any], source: str, number: int) -> Mapping[str, Any]:
    """SmartSim's `replicas: N` is our `repetitions: N` (each replica its own seed)."""
    if "replicas" not in document:
        return document
    if "repetitions" in document:
        raise config_error(source, f"document {number}: give 'replicas' or 'repetitions', not both", key="replicas")
    return {("repetitions" if key == "replicas" else key): value for key, value in document.items()}


def validate_experiment(experiment: Mapping[str, Any], source: str, number: int,
                        warn: Warn = log.warning) -> None:
    """Check one merged experiment document; raise a ConfigError on the first problem."""
    label = experiment.get("name") if isinstance(experiment.get("name"), str) else f"document {number}"
    for key in REQUIRED_KEYS:
        if key not in experiment:
            raise config_error(source, "required key is missing (required: "
                                       f"{', '.join(REQUIRED_KEYS)})", experiment=label, key=key)
    name = experiment["name"]
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or ".." in name:
        raise config_error(source, "must be a non-empty name of letters, digits and . _ + = , - "
                                   f"that starts with a letter or digit (it names a folder), got {name!r}",
                           experiment=label, key="name")
    if len(name) > MAX_NAME_LENGTH:
        raise config_error(source, f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
                           experiment=name[:40] + "...", key="name")
    for key, limit in (("repetitions", MAX_REPETITIONS), ("iterations", None)):
        value = experiment[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise config_error(source, f"must be a positive integer, got {value!r}", experiment=name, key=key)
        if limit is not None and value > limit:
            raise config_error(source, f"must be at most {limit:,}, got {value:,}", experiment=name, key=key)
    for key in ("path", "log_path"):
        if key in experiment:
            problem = path_problem(experiment[key])
            if problem:
                raise config_error(source, problem, experiment=name, key=key)
    stall = experiment.get("stall_timeout")
    if stall is not None and (isinstance(stall, bool) or not isinstance(stall, (int, float)) or not stall > 0):
        raise config_error(source, f"must be a positive number of seconds, got {stall!r}", experiment=name,
                           key="stall_timeout")
    params = experiment.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise config_error(source, f"must be a mapping, got {type(params).__name__}", experiment=name, key="params")
    lengths = {}
    for key in ("grid", "list"):
        if experiment.get(key) is None:
            continue
        if not isinstance(experiment[key], Mapping) or not experiment[key]:
            raise config_error(source, "must be a non-empty mapping of parameter names to lists of values",
                               experiment=name, key=key)
        for path, values in flatten_paths(experiment[key]).items():
            if not isinstance(values, list) or not values:
                raise config_error(source, f"must be a non-empty list of values, got {values!r}",
                                   experiment=name, key=f"{key}.{dotted(path)}")
            if key == "list":
                lengths[dotted(path)] = len(values)
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise config_error(source, f"all lists must have the same length ({described})",
                           experiment=name, key="list")
    if experiment.get("grid") and experiment.get("list"):
        shared = set(flatten_paths(experiment["grid"])) & set(flatten_paths(experiment["list"]))
        if shared:
            raise config_error(source, f"parameter(s) {', '.join(sorted(map(dotted, shared)))} appear under "
                                       "both 'grid' and 'list'", experiment=name, key="grid")
    if experiment.get("random") is not None:
        _validate_random(experiment, source, name)
    if experiment.get("custom") is not None:
        _validate_custom(experiment, source, name)
    if "ensemble" in experiment:
        from .ensemble.spec import check_ensemble_document  # numpy only where a config has an ensemble

        check_ensemble_document(experiment, source)
    if "steer" in experiment:
        if "ensemble" in experiment:
            raise config_error(source, "give 'ensemble' or 'steer', not both", experiment=name, key="steer")
        from .steering.spec import check_steer_block  # a user's policy class is loaded here: a typo is a config error

        check_steer_block(experiment["steer"], source, name)
    for key in experiment:
        if key not in KNOWN_KEYS:
            warn(f"{source}: experiment '{name}': unknown key '{key}' (known: {', '.join(sorted(KNOWN_KEYS))}); "
                 "it is passed to the experiment unchanged")


def _check_block(experiment: Mapping[str, Any], block: str, known: frozenset[str], source: str,
                 name: str) -> Mapping[str, Any]:
    """A `random:` or `custom:` block: a mapping of known keys whose `samples` is a count of points."""
    value = experiment[block]
    if not isinstance(value, Mapping):
        raise config_error(source, f"must be a mapping of {', '.join(sorted(known))}", experiment=name, key=block)
    for key in value:
        if key not in known:
            raise config_error(source, f"unknown key (known: {', '.join(sorted(known))})", experiment=name,
                               key=f"{block}.{key}")
    samples = value.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise config_error(source, f"must be an integer from 1 to {MAX_SAMPLES:,}, got {samples!r}",
                           experiment=name, key=f"{block}.samples")
    return value


def _validate_random(experiment: Mapping[str, Any], source: str, name: str) -> None:
    from . import sampling

    random = _check_block(experiment, "random", RANDOM_KEYS, source, name)
    samples = random["samples"]
    if "seed" in random and (isinstance(random["seed"], bool) or not isinstance(random["seed"], int)):
        raise config_error(source, f"must be an integer, got {random['seed']!r}", experiment=name, key="random.seed")
    if not isinstance(random.get("params"), Mapping) or not random["params"]:
        raise config_error(source, "must be a non-empty mapping of parameters to distributions", experiment=name,
                           key="random.params")
    leaves = sampling.leaves(random["params"])
    for path, spec in leaves.items():
        problem = sampling.problem(spec)
        if problem:
            raise config_error(source, problem, experiment=name, key=f"random.params.{dotted(path)}")
    swept = set(flatten_paths(experiment.get("grid") or {})) | set(flatten_paths(experiment.get("list") or {}))
    if swept & set(leaves):
        shared = ", ".join(sorted(dotted(p) for p in swept & set(leaves)))
        raise config_error(source, f"parameter(s) {shared} also appear under 'grid' or 'list'", experiment=name,
                           key="random.params")
    without = random.get("without_replacement", False)
    if not isinstance(without, bool):
        raise config_error(source, f"must be true or false, got {without!r}", experiment=name,
                           key="random.without_replacement")
    if without:
        distributions = [sampling.Distribution.of(spec) for spec in leaves.values()]
        if any(d.choices is None for d in distributions):
            raise config_error(source, "needs every random parameter to be a list, a choice or a randint",
                               experiment=name, key="random.without_replacement")
        space = math.prod(d.choices or 0 for d in distributions)
        if space < samples:
            raise config_error(source, f"asks for {samples:,} distinct points of only {space:,}", experiment=name,
                               key="random.samples")


def _validate_custom(experiment: Mapping[str, Any], source: str, name: str) -> None:
    if experiment.get("random") is not None:
        raise config_error(source, "give 'random' or 'custom', not both", experiment=name, key="custom")
    custom = _check_block(experiment, "custom", CUSTOM_KEYS, source, name)
    function = custom.get("function")
    if not isinstance(function, str) or not re.fullmatch(r"[\w.]+:[\w.]+", function):
        raise config_error(source, f"must name a function as 'module:name', got {function!r}", experiment=name,
                           key="custom.function")
    if not isinstance(custom.get("params"), Mapping) or not custom["params"]:
        raise config_error(source, "must be a non-empty mapping of parameters to lists of values", experiment=name,
                           key="custom.params")
    swept = set(flatten_paths(experiment.get("grid") or {})) | set(flatten_paths(experiment.get("list") or {}))
    for path, values in flatten_paths(custom["params"]).items():
        if not isinstance(values, list) or not values:
            raise config_error(source, f"must be a non-empty list of values, got {values!r}", experiment=name,
                               key=f"custom.params.{dotted(path)}")
        if path in swept:
            raise config_error(source, f"parameter {dotted(path)} also appears under 'grid' or 'list'",
                               experiment=name, key="custom.params")


def path_problem(value: Any) -> str | None:
    """Why `value` cannot be a folder path, or None: not text, empty, a NUL or control character, or a
    component longer than a file system allows (the run would fail after creating folders)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a folder name, got {value!r}"
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        return f"must not hold control characters (NUL, newline...), got {value!r}"
    expanded = os.path.expanduser(os.path.expandvars(value))
    for component in expanded.split(os.sep):
        if len(component.encode("utf-8", "surrogateescape")) > MAX_PATH_COMPONENT:
            return (f"has a folder name of {len(component)} characters ({component[:20]}...); "
                    f"file systems allow {MAX_PATH_COMPONENT} bytes")
    return None


def flatten_paths(mapping: Mapping[Any, Any], prefix: KeyPath = ()) -> dict[KeyPath, Any]:
    """Flatten nested mappings into key paths: {'a': {'b': 1}, 'c.d': 2} -> {('a', 'b'): 1, ('c.d',): 2}.

    Key paths, never dotted strings, so a key that holds a dot stays one key (as in the original)."""
    flat: dict[KeyPath, Any] = {}
    for key, value in mapping.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            flat.update(flatten_paths(value, path))
        else:
            flat[path] = value
    return flat


def dotted(path: KeyPath) -> str:
    """The display form of a key path: ('optimizer', 'lr') -> 'optimizer.lr' (as the original names it)."""
    return ".".join(path)


def flatten_mapping(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """Flatten nested mappings into dotted display names: {'a': {'b': 1}} -> {'a.b': 1} (for columns and
    filters; logic that must tell `a.b` from `a: {b}` uses `flatten_paths`)."""
    return {dotted(path): value for path, value in flatten_paths(mapping).items()}


def set_path(mapping: dict[str, Any], path: KeyPath, value: Any) -> None:
    """Set `mapping[a][b] = value` for `path == ('a', 'b')`, creating mappings on the way."""
    *parents, leaf = path
    for part in parents:
        child = mapping.get(part)
        if not isinstance(child, dict):
            child = mapping[part] = {}
        mapping = child
    mapping[leaf] = value
