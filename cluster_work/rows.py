"""The format of results rows: one JSON object per line, written by `encode_row`, read back by
`parse_results` as the prefix of whole rows a resumed run continues from."""
from __future__ import annotations

import json
import json.encoder
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def to_plain(value: Any) -> Any:
    """Turn numpy values, tuples and odd keys into plain JSON/YAML types (nested)."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):  # in an order that does not depend on the hash seed
        return sorted((to_plain(v) for v in value), key=repr)
    if isinstance(value, yaml.YAMLObject):  # a user's config tag: its fields, so that a change shows
        return {str(value.yaml_tag): to_plain(getattr(value, "__dict__", {}))}
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return to_plain(value.tolist())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(value) and hasattr(value, "__qualname__"):  # stable from run to run, unlike its repr
        return f"<{getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return _MEMORY_ADDRESS.sub("", repr(value))


def _json_default(value: Any) -> Any:
    plain = to_plain(value)
    if plain is value:
        return str(value)
    return plain


_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # json's C encoder (CPython's, where built)


def encode_row(row: Mapping[str, Any]) -> bytes:
    """One results row as one line of JSON (NaN and infinities kept, as Python's json allows).

    By json's C encoder directly where there is one: the same text as `json.dumps(row, default=_json_default,
    separators=(",", ":"))`, which makes the same encoder after building a JSONEncoder (a row or an event a
    job, the difference is a third of the cost)."""
    if _c_make_encoder is None:
        return (json.dumps(row, default=_json_default, separators=(",", ":")) + "\n").encode()
    # markers (a fresh dict: circular references raise), default, strings, indent, separators, sort_keys,
    # skipkeys, allow_nan: what json.dumps passes
    encode = _c_make_encoder({}, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False,
                             True)
    return ("".join(encode(row, 0)) + "\n").encode()


@dataclass(frozen=True)
class ResultsPrefix:
    """The complete rows 0, 1, 2, ... at the start of a results file (a torn or stray tail excluded)."""

    rows: list[dict[str, Any]]
    data: bytes = b""

    def __len__(self) -> int:
        return len(self.rows)

    def end_of_row(self, count: int) -> int:
        """The byte offset just after the first `count` rows."""
        position = 0
        for _ in range(count):
            position = self.data.index(b"\n", position) + 1
        return position


def _is_in_order(rows: list[Any]) -> bool:
    try:
        return [row["iteration"] for row in rows] == list(range(len(rows)))
    except (TypeError, KeyError, IndexError):  # a row that is no object, or has no iteration
        return False


def parse_results(data: bytes) -> ResultsPrefix:
    """Parse the longest prefix of rows 0, 1, 2, ... ; a torn or out-of-order tail is ignored.

    Each row is one line (JSON escapes newlines in strings), so the complete lines parse as one
    JSON array in a single call; only a damaged file falls back to walking it line by line.
    """
    complete = data[:data.rfind(b"\n") + 1]
    if not complete:
        return ResultsPrefix([], data)
    try:
        rows = json.loads(b"[" + complete[:-1].replace(b"\n", b",") + b"]")
        if _is_in_order(rows):
            return ResultsPrefix(rows, data)
    except ValueError:
        pass
    rows = []
    for line in complete.split(b"\n")[:-1]:
        try:
            row = json.loads(line)
        except ValueError:
            break
        if not isinstance(row, dict) or row.get("iteration") != len(rows):
            break
        rows.append(row)
    return ResultsPrefix(rows, data)
