"""Key paths into nested mappings, and merging them: the one way the config layer names a parameter.

A key path is a tuple of keys, never a dotted string, so that a key that holds a dot stays one key (as in
the original ClusterWork); `dotted` makes the text a person reads of it. Pure functions over dicts.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

KeyPath = tuple[str, ...]  # ('optimizer', 'lr') for params.optimizer.lr; a key may itself hold a dot


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
    filters; logic that must tell `a.b` from `a: {b}` uses `flatten_paths`). The names `dotted` gives
    `flatten_paths`' key paths, made directly: load_results flattens every experiment's params (10^6 of a
    huge sweep), so a parameter costs a string and no ABC check where it is a plain value."""
    flat: dict[str, Any] = {}
    _flatten_dotted(mapping, "", flat)
    return flat


_PLAIN = frozenset({int, float, str, bool, type(None), list, tuple})  # never a Mapping: no isinstance check


def _flatten_dotted(mapping: Mapping[Any, Any], prefix: str, flat: dict[str, Any]) -> None:
    for key, value in mapping.items():
        name = prefix + str(key)
        kind = type(value)
        if (kind is dict or (kind not in _PLAIN and isinstance(value, Mapping))) and value:
            _flatten_dotted(value, name + ".", flat)
        else:
            flat[name] = value


def set_path(mapping: dict[str, Any], path: KeyPath, value: Any) -> None:
    """Set `mapping[a][b] = value` for `path == ('a', 'b')`, creating mappings on the way."""
    *parents, leaf = path
    for part in parents:
        child = mapping.get(part)
        if not isinstance(child, dict):
            child = mapping[part] = {}
        mapping = child
    mapping[leaf] = value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `base` with `override` merged in; nested mappings merge key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged

