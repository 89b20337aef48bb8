"""A compact store's sealed segments (compact_sealed): a segment's parse kept beside it in columns, taken by
read_frame in place of parsing the segment, only where it is exactly what parsing it would give.

Every case of test_compact_frame is read with its segments sealed (all, or every other one while the rest are read
a few bytes at a time) and compared with the store read the other way (compact_bulk: the definition). A sealed
segment whose segment grew, or that is damaged, or is of another segment, is not taken; sealing leaves segments
alone while a run writes the store, or where their last line is torn; a run's end seals what it wrote.
"""
from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest
import test_compact_frame
from compact_events_helpers import Writers
from conftest import requires
from test_compact_frame import CASES, SIMPLE, _ran, _same, _store
from test_compact_temporaries import as_a_new_process, dead_pid

from cluster_work import compact_frame, compact_process, compact_sealed, load_results
from cluster_work.compact_catalog import _catalogs
from cluster_work.compact_process import lock_byte, process_of
from cluster_work.paths import SEALED_TEMPORARY_PREFIX, compact_root, sealed_path
from cluster_work.rows import encode_row

pytestmark = requires("pandas", "pyarrow")


@pytest.fixture(autouse=True)
def any_size(monkeypatch):
    """Every store and segment, however small, is read in columns and sealed (as test_compact_frame's)."""
    monkeypatch.setattr(compact_frame, "MIN_BYTES", 0)
    monkeypatch.setattr(compact_frame, "SEAL_MIN_BYTES", 0)


def _roots(target: Path) -> list[str]:
    return sorted(str(path) for path in target.rglob(".cluster_work_compact"))


def _segments(root: str) -> list[str]:
    return [path for path, _ in compact_frame._segment_files(root)]


def _sealed(root: str) -> list[str]:
    """The segments of `root` whose sealed segment is taken (read gives one)."""
    return [path for path, size in compact_frame._segment_files(root) if compact_sealed.read(path, size) is not None]


def _taken(monkeypatch) -> list[str]:
    """compact_sealed.read, noting each segment whose sealed segment read_frame took."""
    taken: list[str] = []
    reader = compact_sealed.read

    def spied(segment, size):
        found = reader(segment, size)
        if found is not None:
            taken.append(segment)
        return found
    monkeypatch.setattr(compact_sealed, "read", spied)
    return taken


@pytest.mark.parametrize("every_other", [False, True], ids=["all-sealed", "every-other-sealed-5-byte-reads"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_sealed_segments_make_the_frame_their_parse_makes(case, every_other, tmp_path, monkeypatch):
    segments, in_columns = CASES[case]
    target = _store(tmp_path, segments)
    root, = _roots(target)
    compact_frame.seal(root)
    sealed = _sealed(root)
    whole = [path for path in _segments(root) if open(path, "rb").read().endswith(b"\n")]
    if in_columns:  # (a store read in columns parses: each of its segments that ends whole is sealed)
        assert sealed == whole
    if every_other:
        monkeypatch.setattr(compact_frame, "READ_SIZE", 5)
        monkeypatch.setattr(compact_frame, "PIECE_SIZE", 64)
        for path in sealed[1::2]:
            os.remove(sealed_path(path))
        sealed = sealed[::2]
    taken = _taken(monkeypatch)
    _catalogs.clear()
    _same(target, monkeypatch, in_columns)
    assert sorted(set(taken)) == sealed


def test_a_segment_that_grew_since_it_was_sealed_is_parsed_again(tmp_path, monkeypatch):
    target = _store(tmp_path, SIMPLE)
    root, = _roots(target)
    assert compact_frame.seal(root) == 2
    first = _segments(root)[0]
    with open(first, "ab") as segment:
        segment.write(b"".join(encode_row(line) for line in _ran("late", 0, 2)))
    assert _sealed(root) == _segments(root)[1:]
    taken = _taken(monkeypatch)
    _same(target, monkeypatch, True)
    assert set(taken) == {_segments(root)[1]}
    assert {"late"} < set(load_results(target)["experiment"])
    assert compact_frame.seal(root) == 1 and _sealed(root) == _segments(root)  # (sealed again: the other is)


@pytest.mark.parametrize("damage", ["cut in half", "zeros", "another segment's", "a user's file"])
def test_a_damaged_or_foreign_sealed_segment_is_not_taken(damage, tmp_path, monkeypatch):
    """What a power loss may leave (a sealed segment cut short, or its blocks zeros), one renamed over another's
    place, a file that is no Arrow file: none is taken, the segment is parsed."""
    target = _store(tmp_path, SIMPLE)
    root, = _roots(target)
    assert compact_frame.seal(root) == 2
    first, second = (sealed_path(path) for path in _segments(root))
    data = open(first, "rb").read()
    damaged = {"cut in half": data[:len(data) // 2], "zeros": bytes(len(data)), "another segment's":
               open(second, "rb").read(), "a user's file": b"notes\n"}[damage]
    with open(first, "wb") as handle:
        handle.write(damaged)
    taken = _taken(monkeypatch)
    _same(target, monkeypatch, True)
    assert set(taken) == {_segments(root)[1]}


@pytest.mark.parametrize("stamped", ["__version__", "VERSION"])
def test_a_segment_sealed_by_another_version_is_not_taken_and_sealed_again(stamped, tmp_path, monkeypatch):
    """Another cluster_work's, or another format's (its parse may make other columns)."""
    target = _store(tmp_path, SIMPLE)
    root, = _roots(target)
    with monkeypatch.context() as patch:
        patch.setattr(compact_sealed, stamped, "older" if stamped == "__version__" else compact_sealed.VERSION - 1)
        assert compact_frame.seal(root) == 2 and _sealed(root) == _segments(root)
    assert _sealed(root) == []
    taken = _taken(monkeypatch)
    _same(target, monkeypatch, True)
    assert taken == []
    assert compact_frame.seal(root) == 2 and _sealed(root) == _segments(root)


def test_a_sealed_segment_of_keys_that_cannot_be_is_not_taken(tmp_path, monkeypatch):
    """Its stamp right, its keys not what a parse gives: lines' starts that do not rise (not taken), or that rise
    but not where its lines start (parsed instead: read_frame looks at lines by their starts, here a campaign's
    stop, and would read another's or raise)."""
    target = _store(tmp_path, CASES["a campaign's stop"][0])
    root, = _roots(target)
    segment, = _segments(root)
    size = os.path.getsize(segment)
    table, keys, _ = compact_frame._parsed([(segment, size)])

    def sealed(starts):
        assert compact_sealed.write(segment, size, os.stat(segment).st_mtime_ns, (starts, keys.kinds, keys.reps,
                                                                                 keys.name_sizes), table)
        return compact_sealed.read(segment, size)
    assert sealed(keys.starts) is not None  # (the same, with its keys as parsed: taken)
    assert sealed(keys.starts[:1].tolist() + [keys.starts[1]] * (len(keys.starts) - 1)) is None
    assert compact_sealed.is_sealed(segment, size)  # (its stamp alone right)
    assert sealed([0, *(keys.starts[1:] + 1)]) is not None
    _same(target, monkeypatch, True)


def test_nothing_is_sealed_while_a_live_process_holds_a_repetition_of_the_store(tmp_path):
    """A run writing the store would make its segments' sealed ones stale at once: the last run to end seals."""
    root, = _roots(_store(tmp_path, SIMPLE))
    process = process_of(root)
    process.lock(lock_byte("b", 0))
    try:
        assert compact_frame.seal(root) == 0 and _sealed(root) == []
    finally:
        process.unlock(lock_byte("b", 0))
    assert compact_frame.seal(root) == 2


def test_a_segment_whose_last_line_is_torn_or_that_is_small_is_not_sealed(tmp_path, monkeypatch):
    torn = SIMPLE[0] + [b'{"w":["b",1],"row":{"iteration":3,"va']
    root, = _roots(_store(tmp_path, [torn, SIMPLE[1]]))
    first, second = _segments(root)
    assert compact_frame.seal(root) == 1 and _sealed(root) == [second]
    os.remove(sealed_path(second))
    monkeypatch.setattr(compact_frame, "SEAL_MIN_BYTES", os.path.getsize(second) + 1)
    assert compact_frame.seal(root) == 0
    monkeypatch.setattr(compact_frame, "MIN_BYTES", os.path.getsize(first) + os.path.getsize(second) + 1)
    monkeypatch.setattr(compact_frame, "SEAL_MIN_BYTES", 0)
    assert compact_frame.seal(root) == 0  # (a store read by compact_bulk: nothing to seal for)


@pytest.mark.processes  # (a process that ran and died gives a dead pid)
def test_a_dead_writers_temporary_is_removed_by_the_next_seal(tmp_path):
    root, = _roots(_store(tmp_path, SIMPLE))
    host = socket.gethostname()
    dead = f"{SEALED_TEMPORARY_PREFIX}{host}-{dead_pid()}-0a1b2c3d.tmp"
    kept = [f"{SEALED_TEMPORARY_PREFIX}{host}-{os.getpid()}-0a1b2c3d.tmp",  # a writer alive
            f"{SEALED_TEMPORARY_PREFIX}elsewhere-{dead_pid()}-0a1b2c3d.tmp", "notes.tmp"]  # another host's, a user's
    for name in [dead, *kept]:
        with open(os.path.join(root, name), "w") as handle:
            handle.write("x")
    assert compact_frame.seal(root) == 2
    assert sorted(name for name in os.listdir(root) if name.endswith(".tmp")) == sorted(kept)


def test_a_run_seals_its_store_at_its_end_and_leaves_what_is_sealed(tmp_path, cli, monkeypatch):
    """A run's launcher seals the segments of its large store at its end; the next run's end seals its own and
    leaves the sealed ones as they are; load_results takes them all."""
    config = tmp_path / "cfg.yml"
    config.write_text("name: halving\nrepetitions: 2\niterations: 3\npath: out\nstore: compact\n"
                      "params: {offset: 0.5}\ngrid: {c: [3, 1, 2]}\n")
    cli("Steered", str(config), cwd=tmp_path, check_rc=0)
    root, = _roots(tmp_path / "out")
    first = _segments(root)
    assert first and _sealed(root) == first
    stamps = [os.stat(sealed_path(path)).st_mtime_ns for path in first]
    config.write_text(config.read_text().replace("grid: {c: [3, 1, 2]}", "grid: {c: [3, 1, 2, 4]}"))
    monkeypatch.setattr(compact_process, "_processes", {})  # (the next run, a new process: a segment of its own)
    as_a_new_process()
    cli("Steered", str(config), cwd=tmp_path, check_rc=0)
    assert len(_segments(root)) > len(first) and _sealed(root) == _segments(root)
    assert [os.stat(sealed_path(path)).st_mtime_ns for path in first] == stamps
    taken = _taken(monkeypatch)
    _same(config, monkeypatch, True)
    assert sorted({os.path.basename(path) for path in taken}) == [os.path.basename(path) for path in _segments(root)]
    assert len(load_results(config)) == 4 * 2 * 3


def test_random_stores_sealed_are_read_as_parsed(tmp_path, monkeypatch):
    """test_compact_frame's seeded random stores (claims again, cut-backs, statuses, drops, rows out of order, torn
    and damaged lines), every third, sealed: read_frame gives what it gives parsing them, and sealed ones are
    taken in a fair share of them."""
    taken = 0
    for case in range(0, test_compact_frame.RANDOM_CASES, 3):
        writers = Writers(compact_root(str(tmp_path / str(case) / "out" / "doc")), random.Random(case))
        for _ in range(1 + case % 5):
            writers.phase()
        parsed = compact_frame.read_frame(writers.root)
        if not compact_frame.seal(writers.root):
            continue
        taken += 1
        found = compact_frame.read_frame(writers.root)
        assert (found is None) == (parsed is None), f"case {case}"
        if found is not None and parsed is not None:
            assert (found.frame is None) == (parsed.frame is None), f"case {case}"
            assert found.frame is None or found.frame.equals(parsed.frame), f"case {case}"
            assert found.meta == parsed.meta and found.names() == parsed.names(), f"case {case}"
    assert taken > test_compact_frame.RANDOM_CASES / 3 * 0.5, taken
