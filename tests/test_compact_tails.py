"""A compact store's index extended by its segments' tails (compact_tails) says exactly what the index rebuilt from
every segment says, over many random event sequences; where it cannot tell, it says so (and the reader reads
every segment). The common cases (a run that went on, or was killed, after the index was written) are extended."""
from __future__ import annotations

import random

import pytest
from compact_events_helpers import Writers

from cluster_work import compact_catalog, compact_index
from cluster_work.compact_catalog import Catalog
from cluster_work.compact_index import Summary, read_index, summary, write_index
from cluster_work.rows import encode_row


def rebuilt(root: str) -> Summary:
    """The summary of every segment, read by a catalog of its own."""
    return Summary.of(Catalog(root).refresh(force=True))


def fields(found: Summary) -> tuple:
    """Everything the index holds, as it holds it (written and read back)."""
    again = Summary.decode(found.encode())
    assert again is not None
    return again.segments, again.dropped, again.latest, again.open, again.entries


CASES = 400


@pytest.mark.parametrize("phases", [2, 4], ids=["one extension", "extensions of extensions"])
def test_an_index_extended_by_tails_is_the_index_of_every_segment(tmp_path, phases):
    """Seeded random sequences (see compact_events_helpers): after each phase the index so far, extended by
    what the segments gained, equals the one rebuilt from every segment, or is refused (None). A fair share is
    extended: refusals are not what makes it pass."""
    extended = 0
    for case in range(CASES):
        writers = Writers(str(tmp_path / str(case)), random.Random(case))
        writers.phase()
        index = rebuilt(writers.root)
        for _ in range(phases - 1):
            writers.phase()
            found = index.extended(writers.root)
            index = rebuilt(writers.root)
            if found is not None:
                extended += 1
                assert fields(found) == fields(index), f"case {case}"
    assert extended > CASES * (phases - 1) * 0.2


def test_the_tails_of_an_interrupted_run_are_read_instead_of_every_segment(tmp_path):
    """A run's writer went on after the index was written (its claim open, a torn line caught, new rows and a
    status), and a new run re-claimed a repetition: the reader takes the index and the tails, does not read
    every segment (no catalog of the store is made), and writes the index the segments give."""
    root = str(tmp_path)
    first, second = "seg-host-1-00000000.jsonl", "seg-host-2-00000000.jsonl"

    def write(segment, *events, torn=b""):
        with open(tmp_path / segment, "ab") as handle:
            handle.write(b"".join(encode_row(event) for event in events) + torn)

    write(first, {"c": ["a", 0], "t": 10.0, "params": {"x": 1}, "base": "d", "at": "a"},
          {"w": ["a", 0], "row": {"iteration": 0, "iteration_time": 0.5}},
          {"c": ["a", 1], "t": 11.0, "params": {"x": 1}, "base": "d", "at": "a"},
          {"w": ["a", 1], "row": {"iteration": 0, "iteration_time": 0.25}}, torn=b'{"w":["a",1],"row":{"itera')
    summary(root)  # the index, written while the run goes on
    compact_index._summaries.clear()  # a new process
    compact_catalog._catalogs.clear()
    with open(tmp_path / first, "ab") as handle:  # the torn line's rest, then a line the reader skips
        handle.write(b'tion":1,"iteration_time":0.5}}\n{}\n')
    write(first, {"s": ["a", 1], "t": 12.0, "status": {"state": "finished"}})
    write(second, {"c": ["a", 0], "t": 13.0, "params": {"x": 1}, "base": "d", "at": "a"},
          {"w": ["a", 0], "row": {"iteration": 1, "iteration_time": 1.0}},
          {"c": ["b", 0], "t": 14.0, "params": {"x": 2}, "base": "d", "at": "b"})
    found = summary(root)
    assert compact_catalog.loaded(root) is None  # the segments were not read whole
    assert fields(found) == fields(rebuilt(root)) == fields(read_index(root))
    assert found.entries["a"][2] == [[0, None, 2, 1.5, 2], [1, {"state": "finished"}, 2, 0.75, 2]]


REFUSED = {
    "a clock behind": {"c": ["a", 0], "t": 5.0, "params": {"x": 1}, "base": "d", "at": "a"},
    "a drop of an experiment it holds": {"d": "a", "t": 20.0},
    "other parameters": {"c": ["a", 0], "t": 20.0, "params": {"x": 2}, "base": "d", "at": "a"},
    "a keep that cuts rows": {"k": ["a", 0], "n": 0},
}


@pytest.mark.parametrize("event", REFUSED.values(), ids=list(REFUSED))
def test_what_the_tails_cannot_tell_is_read_from_every_segment(tmp_path, event):
    root = str(tmp_path)
    segment = tmp_path / "seg-host-1-00000000.jsonl"
    segment.write_bytes(encode_row({"c": ["a", 0], "t": 10.0, "params": {"x": 1}, "base": "d", "at": "a"})
                        + encode_row({"w": ["a", 0], "row": {"iteration": 0, "iteration_time": 0.5}}))
    write_index(root, rebuilt(root))
    with open(segment, "ab") as handle:
        handle.write(encode_row(event))
    assert read_index(root).extended(root) is None
    compact_index._summaries.clear()
    compact_catalog._catalogs.clear()
    assert fields(summary(root)) == fields(rebuilt(root))
    assert compact_catalog.loaded(root) is not None  # read whole
