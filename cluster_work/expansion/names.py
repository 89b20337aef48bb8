"""The names and folders of expanded experiments: the original ClusterWork's, and where they clash or
cannot name a folder, a longer form.

`original_token` is the original's name part of one parameter value (its `shorten_param` and its clean-up
of the value text), so that scripts and notebooks written for it find its folders; `folder_safe` makes a
folder name of it (escaped, cut with a hash where too long); `typed_text` tells apart values the original's
name confuses. Pure functions of the values: names are stable from run to run (see `stable_repr`).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from ..config import KeyPath, dotted

NAME_SEPARATOR = "__"  # between the base name and the parameters of an expanded experiment
MAX_FOLDER_NAME = 200  # characters of the parameters part; longer ones are cut and suffixed with a hash


def shorten_param(name: str) -> str:
    """The original's short names: every part but the last cut to 3 letters, the last one the initials
    of its words: 'optimizer.learning_rate' -> 'opt.lr', 'tau' -> 't'."""
    *parents, leaf = name.split(".")
    short_leaf = "".join(word[:1] for word in leaf.split("_"))
    return ".".join([p[:3] for p in parents] + [short_leaf])


def original_token(path: KeyPath, value: Any) -> str:
    """The original's name part for one parameter value: `'{short}{value}'` without quotes and spaces,
    brackets turned into '_' (opening) or dropped (closing), commas into '_'. The original cleaned the
    joined text, but every rule replaces single characters other than '_', so per value is the same.
    A value that holds a set (`!!set`) is written with the set sorted: Python prints a set in an order
    that changes with PYTHONHASHSEED, so the original's name of it changed from run to run."""
    text = f"{shorten_param(dotted(path))}{value if not _holds_set(value) else stable_repr(value)}"
    text = re.sub("[' ]", "", text)
    text = re.sub('["]', "", text)
    text = re.sub(r"[(\[]", "_", text)
    text = re.sub(r"[)\]]", "", text)
    return re.sub("[,]", "_", text)


def _holds_set(value: Any) -> bool:
    if isinstance(value, (set, frozenset)):
        return True
    if isinstance(value, (list, tuple)):
        return any(map(_holds_set, value))
    if isinstance(value, dict):
        return any(map(_holds_set, value.keys())) or any(map(_holds_set, value.values()))
    return False


def stable_repr(value: Any) -> str:
    """repr(value), but with every set's elements sorted by their own stable_repr, so that the text depends
    only on the value, never on the hash seed (lists, tuples and dicts keep their order, as repr does)."""
    if isinstance(value, (set, frozenset)):
        body = ", ".join(sorted(map(stable_repr, value)))
        if isinstance(value, frozenset):
            return f"frozenset({{{body}}})" if value else "frozenset()"
        return f"{{{body}}}" if value else "set()"
    if isinstance(value, list):
        return f"[{', '.join(map(stable_repr, value))}]"
    if isinstance(value, tuple):
        return f"({', '.join(map(stable_repr, value))}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{stable_repr(k)}: {stable_repr(v)}" for k, v in value.items()) + "}"
    return repr(value)


_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def escape(text: str) -> str:
    """'/', '\\' and control characters percent-escaped (the original made sub-folders of a '/')."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def folder_safe(text: str) -> str:
    """`text` as one folder name: escaped, '.' and '..' escaped too, and an over-long name cut and
    suffixed with a hash of the whole."""
    safe = escape(text)
    if safe in (".", ".."):
        safe = safe.replace(".", "%2E")
    if len(safe) > MAX_FOLDER_NAME:
        safe = safe[:MAX_FOLDER_NAME - 11] + "-" + digest(safe)
    return safe


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def typed_text(varied: Mapping[KeyPath, Any]) -> str:
    """A text that tells apart values the original's name confuses (1.0 and '1.0', 'a b' and 'ab')."""
    return json.dumps([[list(path), type(value).__name__, stable_repr(value)] for path, value in varied.items()])
