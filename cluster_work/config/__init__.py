"""Reading a multi-document YAML config into validated experiment documents: the config layer.

    name: DEFAULT            # optional first document, deep-merged under every experiment
    repetitions: 3
    path: results
    ---
    name: fit                # one document per experiment
    iterations: 100
    params: {model: {width: 8}}
    grid: {lr: [0.1, 0.01]}  # expanded later by `cluster_work.expansion`

Its modules, each one idea, pure functions over dicts apart from `load_config`, which reads the file:

    loading      the file's text into YAML documents, safely (tags, duplicate keys, sizes)
    validation   the reserved keys of a document and of a merged experiment, their types and limits
    documents    the DEFAULT document merged under each experiment, then validated: `load_config`, `Documents`
    keypaths     key paths into nested mappings (`flatten_paths`, `dotted`, `set_path`, `deep_merge`)

Every problem becomes one `ConfigError` naming the file (the `vocabulary.ConfigSource` that
`load_config` makes and `Documents.source` carries on), the experiment and the key. This package
re-exports the names its users import (`from cluster_work.config import load_config, ...`).
"""
from __future__ import annotations

from .documents import (
    DEFAULT_NAME,
    Adjust,
    Documents,
    is_default_document,
    load_config,
    merge_and_validate,
)
from .keypaths import KeyPath, deep_merge, dotted, flatten_mapping, flatten_paths, set_path
from .loading import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_VALUES,
    UnknownTag,
    construct_unknown_tag,
    loader_class,
    parse_documents,
    read_text,
    read_yaml,
)
from .validation import (
    ALIASES,
    BLOCK_KEYS,
    CUSTOM_KEYS,
    KNOWN_KEYS,
    MAX_NAME_LENGTH,
    MAX_PATH_COMPONENT,
    MAX_REPETITIONS,
    MAX_SAMPLES,
    RANDOM_KEYS,
    REQUIRED_KEYS,
    STORES,
    Warn,
    check_document_keys,
    path_problem,
    validate_experiment,
)

__all__ = [
    "ALIASES", "BLOCK_KEYS", "CUSTOM_KEYS", "DEFAULT_NAME", "KNOWN_KEYS", "MAX_CONFIG_BYTES", "MAX_DEPTH",
    "MAX_NAME_LENGTH", "MAX_PATH_COMPONENT", "MAX_REPETITIONS", "MAX_SAMPLES", "MAX_VALUES", "RANDOM_KEYS",
    "REQUIRED_KEYS", "STORES", "Adjust", "Documents", "KeyPath", "UnknownTag", "Warn", "check_document_keys",
    "construct_unknown_tag", "deep_merge", "dotted", "flatten_mapping", "flatten_paths", "is_default_document",
    "load_config", "loader_class", "merge_and_validate", "parse_documents", "path_problem", "read_text",
    "read_yaml", "set_path", "validate_experiment",
]
