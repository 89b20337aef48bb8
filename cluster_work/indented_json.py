"""The text of `json.dumps(document, indent=1)`, written piece by piece, for a document too large to hold.

`write_indented(stream, document)` takes a dict whose values may be iterators (of a list's items, made as
they are written), and writes exactly what `json.dumps` would write for the same dict with those lists.
A flat dict (no list or dict in it) is encoded by json's C encoder, its items separated by a newline and
the indent; anything else by `json.dumps(value, indent=1)` itself, shifted to its depth (JSON strings hold
no raw newline, so every newline of that text starts one of its lines).
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from json.encoder import encode_basestring_ascii  # (json.dumps of a str, without its overhead)
from typing import Any, TextIO

SCALARS = (str, int, float, bool, type(None))
BATCH = 100  # list items written at once: ~1 MB where each is a Rendered of 32 items (a text of ~10 MB was
# allocated and freed by mmap at each write: ~2,500 page faults a write, 0.4 s of the kernel's for 10^6 items)
ITEMS = ",\n  "  # between two items of a list in the document
JOINED = 32  # items' texts joined to one Rendered: a write of BATCH of them holds ~1 MB


class Rendered(str):
    """An item of a list that is its text already, as `indented(item, 2)` gives it, or several items' texts
    joined by ITEMS, as the list joins them."""


def indented(value: Any, depth: int) -> str:
    """`value` as `json.dumps(value, indent=1)` writes it at `depth` levels inside a document."""
    if isinstance(value, dict) and value and all(isinstance(item, SCALARS) for item in value.values()):
        inner = "\n" + " " * (depth + 1)
        text = json.dumps(value, separators=("," + inner, ": "))
        return "{" + inner + text[1:-1] + "\n" + " " * depth + "}"
    return json.dumps(value, indent=1).replace("\n", "\n" + " " * depth)


def write_indented(stream: TextIO, document: Mapping[str, Any]) -> None:
    """Write `json.dumps(document, indent=1)`, where a value that is an iterator stands for the list of its
    items (made one by one: never held together; a `Rendered` one is written as it is)."""
    if not document:
        stream.write("{}")
        return
    separator = "{\n "
    for key, value in document.items():
        stream.write(f"{separator}{json.dumps(key)}: ")
        separator = ",\n "
        if not isinstance(value, Iterator):
            stream.write(indented(value, 1))
            continue
        opening = "[\n  "
        for batch in iter(lambda: list(itertools.islice(value, BATCH)), []):  # noqa: B023 (used at once)
            stream.write(opening)
            stream.write(ITEMS.join([item if isinstance(item, Rendered) else indented(item, 2)
                                     for item in batch]))  # one write per BATCH items (not copied again)
            opening = ITEMS
        stream.write("[]" if opening == "[\n  " else "\n ]")
    stream.write("\n}")


def spliced(names: Iterator[str], forms: tuple[tuple[str, str, str], ...], kinds: Iterator[int],
             means: Iterator[str]) -> Iterator[Rendered]:
    """List items named `names` (a --json item per experiment), each in its kind's form (`forms[kind]`: its
    text before the name, after it up to its mean, after that; one text before the name for all), a kind 1 one
    with the next of `means` put in; JOINED items to a Rendered made by one join of its pieces (not a format of
    each item's whole text: a 10^6-point sweep has 10^6 items)."""
    head = forms[0][0]
    assert all(form[0] == head for form in forms)
    befores, ends = tuple(form[1] for form in forms), tuple(form[2] for form in forms)
    afters = tuple(end + ITEMS + head for end in ends)  # an item's end and the next one's beginning
    mean_of = (itertools.repeat(""), means)
    while True:
        chunk = bytes(itertools.islice(kinds, JOINED))
        if not chunk:
            return
        pieces = [head] * (4 * len(chunk) + 1)
        pieces[1::4] = map(encode_basestring_ascii, itertools.islice(names, len(chunk)))
        pieces[2::4] = map(befores.__getitem__, chunk)
        pieces[3::4] = map(next, map(mean_of.__getitem__, chunk))
        pieces[4::4] = map(afters.__getitem__, chunk)
        pieces[-1] = ends[chunk[-1]]  # (the last one's end alone)
        yield Rendered("".join(pieces))
