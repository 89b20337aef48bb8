"""The format of results rows: one JSON object per line, written by `encode_row`, read back by
`parse_results` as the prefix of whole rows a resumed run continues from.

A repetition's file in the default layout (`log/rep_NN.jsonl`) also holds its status records, one line each
(`encode_status`): `{"cluster_work.status":{...}}`. No row can be taken for one, nor one for a row: a row is
`{"iteration": n, ...}` with `iteration` its first key (the runner builds it so), a status line starts with
STATUS_PREFIX and has no other key. The last complete status line in the file is the status; a torn one (no
newline) or one that does not parse is ignored, as a torn row is."""
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


STATUS_KEY = "cluster_work.status"
STATUS_PREFIX = b'{"' + STATUS_KEY.encode() + b'":'  # how every status line begins (and no row)


def encode_status(status: Mapping[str, Any]) -> bytes:
    """One status record as one line of a repetition's file (its fields as plain JSON, by json's C encoder)."""
    return STATUS_PREFIX + json.dumps(status, default=to_plain, separators=(",", ":")).encode() + b"}\n"


def _status_of(line: bytes) -> dict[str, Any] | None:
    """The status a complete status line holds (without its newline); None where it does not parse."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    status = record.get(STATUS_KEY) if isinstance(record, dict) and len(record) == 1 else None
    return status if isinstance(status, dict) else None


def last_status(data: bytes) -> tuple[dict[str, Any] | None, int, int]:
    """The last status record among the complete lines of `data` (a repetition's file): (its fields, where its
    line begins, where it ends), or (None, 0, 0)."""
    end = data.rfind(b"\n") + 1
    while end > 0:
        start = data.rfind(b"\n" + STATUS_PREFIX, 0, end) + 1
        if start == 0 and not data.startswith(STATUS_PREFIX):
            return None, 0, 0
        line_end = data.index(b"\n", start) + 1
        status = _status_of(data[start:line_end - 1])
        if status is not None:
            return status, start, line_end
        end = start
    return None, 0, 0


def without_statuses(data: bytes) -> bytes:
    """`data`'s lines without its status records (the rows, as a results file of the folder layout holds them)."""
    if STATUS_PREFIX not in data:
        return data
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(STATUS_PREFIX))


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
    """The complete rows 0, 1, 2, ... at the start of a results file (a torn or stray tail excluded), and the
    last status record among its lines, if any (`status_line`: that line, with its newline; `status_end`: where
    it ends in `data`)."""

    rows: list[dict[str, Any]]
    data: bytes = b""
    status: dict[str, Any] | None = None
    status_line: bytes = b""
    status_end: int = 0

    def __len__(self) -> int:
        return len(self.rows)

    def end_of_row(self, count: int) -> int:
        """The byte offset just after the first `count` rows and the status lines that follow them before any
        other line (a repetition's file keeps its status records where it is cut back to `count` rows)."""
        data, position, seen = self.data, 0, 0
        while True:
            newline = data.find(b"\n", position)
            if newline < 0:
                return position
            if not data.startswith(STATUS_PREFIX, position):
                if seen == count:
                    return position
                seen += 1
            position = newline + 1


def _is_in_order(rows: list[Any]) -> bool:
    try:
        return [row["iteration"] for row in rows] == list(range(len(rows)))
    except (TypeError, KeyError, IndexError):  # a row that is no object, or has no iteration
        return False


def parse_results(data: bytes) -> ResultsPrefix:
    """Parse the longest prefix of rows 0, 1, 2, ... ; a torn or out-of-order tail is ignored, and so are status
    records (given apart: the last one that parses).

    Each row is one line (JSON escapes newlines in strings), so the complete lines parse as one
    JSON array in a single call; only a damaged file falls back to walking it line by line.
    """
    complete = data[:data.rfind(b"\n") + 1]
    if not complete:
        return ResultsPrefix([], data)
    status, start, end = last_status(complete) if STATUS_PREFIX in complete else (None, 0, 0)
    lines = without_statuses(complete)
    found = _rows(lines) if lines else []
    return ResultsPrefix(found, data, status, complete[start:end], end)


def _rows(complete: bytes) -> list[dict[str, Any]]:
    try:
        rows = json.loads(b"[" + complete[:-1].replace(b"\n", b",") + b"]")
        if _is_in_order(rows):
            return rows
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
    return rows
