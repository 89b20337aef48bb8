"""A large compact store read in columns (`compact_frame.read_frame`) gives load_results the frame the other way
gives (`compact_bulk` and `arrow_rows`: the definition), or leaves the store to it.

Each case compares load_results' frame read in columns with the one read the other way (`read_frame` made to give
up), exact to the columns' order and dtypes, and says whether the store is read in columns, so that neither path
goes untested. MIN_BYTES is 0 here: every store, however small, is a candidate.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import test_compact_bulk
from compact_events_helpers import Writers
from conftest import SCRIPT, requires, script_env

from cluster_work import compact_frame, load_results
from cluster_work.compact_catalog import _catalogs
from cluster_work.paths import compact_root

pytestmark = requires("pandas", "pyarrow")


@pytest.fixture(autouse=True)
def any_size(monkeypatch):
    monkeypatch.setattr(compact_frame, "MIN_BYTES", 0)


def _reference(target: Path, monkeypatch, **selection):
    with monkeypatch.context() as patch:
        patch.setattr(compact_frame, "read_frame", lambda *args: None)
        _catalogs.clear()
        return load_results(target, **selection)


def _spy(read: list[bool]):
    """compact_frame.read_frame, noting in `read` whether each call read its store in columns."""
    reader = compact_frame.read_frame

    def spied(*args):
        found = reader(*args)
        read.append(found is not None)
        return found
    return spied


def _same(target: Path, monkeypatch, in_columns: bool | list[bool], **selection) -> None:
    """load_results of `target` (with `selection`: experiments, params) the same both ways; its stores read in
    columns exactly where `in_columns` says (one for all, or one for each)."""
    read: list[bool] = []
    with monkeypatch.context() as patch:
        patch.setattr(compact_frame, "read_frame", _spy(read))
        columns = load_results(target, **selection)
    reference = _reference(target, monkeypatch, **selection)
    assert len(reference) or not selection
    assert list(columns.columns) == list(reference.columns)
    assert columns.dtypes.tolist() == reference.dtypes.tolist()
    assert columns.equals(reference), (columns, reference)
    assert read and read == (in_columns if isinstance(in_columns, list) else [in_columns] * len(read))


def _store(tmp_path: Path, segments: list[list[dict | bytes]], document: str = "doc") -> Path:
    """A compact store of `document` written line by line (test_compact_bulk's, in a document of its name)."""
    return test_compact_bulk._store(tmp_path, segments, document)


def _claim(name: str, rep: int, t: float = 1.0, params: dict | None = None, base: str = "doc") -> dict:
    return {"c": [name, rep], "t": t, "params": {"x": len(name), "model": {"width": 8}, "tag": name[:1]}
            if params is None else params, "base": base, "at": name}


def _row(name: str, rep: int, iteration: int, /, **values) -> dict:
    return {"w": [name, rep], "row": {"iteration": iteration, "value": float(iteration) + rep, **values}}


def _ran(name: str, rep: int, iterations: int, /, **values) -> list[dict]:
    return [_claim(name, rep), *(_row(name, rep, n, **values) for n in range(iterations))]


# two writers: experiments out of name order, several repetitions each, their rows after their claims
SIMPLE = [[*_ran("b", 0, 2), *_ran("aa", 1, 1), *_ran("b", 1, 3)],
          [*_ran("aa", 0, 2), *_ran("ünï", 2, 1), _claim("empty", 0), *_ran("c", 0, 1)]]

CASES = {
    "two writers' segments": (SIMPLE, True),
    "one-row repetitions": ([[line for k in range(50) for line in _ran(f"p{k}", 0, 1)]], True),
    "a torn last line": ([SIMPLE[0] + [b'{"w":["b",1],"row":{"iteration":3,"va'], SIMPLE[1]], True),
    "no parameters": ([[_claim(name, 0, params={}), _row(name, 0, 0)] for name in "ab"], True),
    "a column some rows lack": ([[*_ran("a", 0, 2), _claim("b", 0), _row("b", 0, 0, late=1.5), *_ran("c", 0, 1)]],
                                True),
    "columns in another order in the first experiment's rows": ([[
        _claim("b", 0), {"w": ["b", 0], "row": {"iteration": 0, "value": 1.0, "late": 1}},
        _claim("a", 0), {"w": ["a", 0], "row": {"iteration": 0, "late": 2, "value": 0.5}}]], True),
    "columns some rows lack, first in another order": ([[*_ran("b", 0, 1, m=1), *_ran("c", 0, 1),
                                                         *_ran("a", 0, 2, n=2.5)]], True),
    "ints and floats in a result column": ([[*_ran("a", 0, 1, v=1), *_ran("b", 0, 1, v=2.5)]], True),
    "rows interleaved by two writers": ([[_claim("a", 0), _row("a", 0, 0)], [_claim("b", 0), _row("b", 0, 0)],
                                         [_row("a", 0, 1)]], True),
    "a repetition claimed twice": ([[*_ran("a", 0, 1)], [_claim("a", 0, t=2.0), _row("a", 0, 0)]], True),
    "a repetition claimed again, later in time but in an earlier segment": (
        [[_claim("a", 0, t=3.0), _row("a", 0, 0, again=1)], [*_ran("a", 0, 2), *_ran("b", 0, 1)]], True),
    "rows before their claim": ([[_row("a", 0, 0), *_ran("a", 0, 1)]], True),
    "an iteration skipped": ([[_claim("a", 0), _row("a", 0, 0), _row("a", 0, 2)], *SIMPLE], True),
    "a cut-back": ([[*_ran("a", 0, 2), {"k": ["a", 0], "n": 1}, _row("a", 0, 1, again=2)], *SIMPLE], True),
    "a campaign's stop": ([SIMPLE[0] + [{"s": ["b", 0], "t": 5.0, "status": {"state": "stopped", "reason": "r"}}]],
                          True),
    "a failure's status": ([SIMPLE[0] + [{"s": ["b", 1], "t": 5.0, "status": {"state": "failed"}}]], True),
    "a status of a repetition never claimed": ([SIMPLE[0] + [{"s": ["new", 0], "t": 5.0, "at": "new", "base": "doc",
                                                             "params": _claim("new", 0)["params"],
                                                             "status": {"state": "stopped", "reason": "why"}}]],
                                               True),
    "a drop (-d) of an experiment": ([SIMPLE[0] + [{"d": "b", "t": 5.0}, *_ran("b", 0, 1)], SIMPLE[1]], True),
    "a drop and a run after it": ([SIMPLE[0] + [{"d": "b", "t": 5.0}, _claim("b", 1, t=6.0), _row("b", 1, 0, new=1)],
                                   [_row("b", 1, 1)], SIMPLE[1]], True),
    "a drop of a status, and a status after it": ([[*_ran("a", 0, 1), *_ran("b", 0, 1),
                                                   {"s": ["a", 0], "t": 4.0, "status": {"state": "stopped"}},
                                                   {"d": "a", "t": 5.0}, _claim("a", 0, t=6.0), _row("a", 0, 0),
                                                   {"s": ["b", 0], "t": 4.0, "status": {"state": "stopped"}},
                                                   {"d": "b", "t": 3.0}]], True),
    "two drops, the later in time first": ([[*_ran("a", 0, 1), {"d": "b", "t": 5.0}, _claim("b", 0, t=4.0),
                                             _row("b", 0, 0), {"d": "b", "t": 3.0}, _claim("b", 1, t=6.0),
                                             _row("b", 1, 0)]], True),
    "a drop without its time": ([SIMPLE[0] + [b'{"d":"b"}\n'], SIMPLE[1]], False),
    "a damaged line (a power loss's zeros)": ([SIMPLE[0][:3] + [b"\0" * 40 + b"\n"] + SIMPLE[0][3:]], False),
    "names escaped as the writer escapes them": ([[*_ran('q"uote', 0, 1), *_ran("back\\slash", 0, 1)]], True),
    "a name escaped otherwise": ([[b'{"c":["\\u0062",0],"t":1.0,"params":{"x":1},"base":"doc","at":"b"}\n',
                                   b'{"w":["\\u0062",0],"row":{"iteration":0}}\n']], False),
    "a name ending in a backslash": ([[*_ran("end\\", 0, 1)]], False),
    "a name with a bracket": ([[*_ran("a]0", 0, 1), *_ran("b", 0, 1)]], False),
    "a repetition never claimed gives its experiment's params": ([[
        {"s": ["a", 0], "t": 5.0, "at": "a", "base": "doc", "params": {**_claim("a", 0)["params"], "x": 7},
         "status": {"state": "stopped", "reason": "early"}}, *_ran("a", 1, 2)]], True),
    "statuses out of order in time": ([[*_ran("a", 0, 1), *_ran("b", 0, 1),
                                        {"s": ["a", 0], "t": 4.0, "status": {"state": "stopped", "reason": "early"}},
                                        {"s": ["a", 0], "t": 5.0, "status": {"state": "stopped", "reason": "late"}},
                                        {"s": ["a", 0], "t": 3.0, "status": {"state": "stopped", "reason": "old"}}]],
                                      True),
    "a null in the only row of a column others held": ([[*_ran("a", 0, 1, v=1.5), {"k": ["a", 0], "n": 0},
                                                         _row("a", 0, 0, v=None), *_ran("b", 0, 1)]], False),
    "a claim without params (its repetition's before stand)": ([[
        {"c": ["a", 0], "t": 1.0, "base": "doc", "at": "a"}, _row("a", 0, 0),
        _claim("a", 1, params={"x": 0.5}), _row("a", 1, 0), _claim("b", 0, params={"x": 1.5}), _row("b", 0, 0),
        {"c": ["b", 0], "t": 2.0, "base": "doc", "at": "b"}, _row("b", 0, 0, again=1),
        {"c": ["c", 0], "t": 1.0, "base": "doc", "at": "c"}]], True),
    "a claim of params null": ([[*_ran("a", 0, 1), {"c": ["a", 1], "t": 1.0, "params": None, "base": "doc", "at": "a"},
                                 _row("a", 1, 0)]], False),
    "a base that is no string": ([[_claim("a", 0, base=7), _row("a", 0, 0), _claim("b", 0, base=8), _row("b", 0, 0)]],
                                 False),
    "a claim's time that is no number": ([[*_ran("a", 0, 1), _claim("a", 0, t="later"), _row("a", 0, 0)]], False),
    "a cut-back's count that is no number": ([[*_ran("a", 0, 2), {"k": ["a", 0], "n": "1"}]], False),
    "a status of empty params beside params (the catalog takes none from it)": ([[
        {"s": ["a", 0], "t": 5.0, "at": "a", "base": "doc", "params": {}, "status": {"state": "stopped"}},
        _claim("a", 1, params={"x": 1.5}), _row("a", 1, 0), _claim("b", 0, params={"x": 2.5}), _row("b", 0, 0)]],
        True),
    "params that differ between an experiment's claims": ([[*_ran("a", 0, 1), _claim("a", 1, params={
        "x": 9, "model": {"width": 8}, "tag": "a"}), _row("a", 1, 0)]], True),
    "an int and a float of one parameter": ([[_claim("a", 0, params={"x": 1}), _row("a", 0, 0),
                                              _claim("a", 1, params={"x": 1.0}), _row("a", 1, 0)]], False),
    "a parameter some experiments lack": ([[*_ran("a", 0, 1), _claim("b", 0, params={"y": 1}), _row("b", 0, 0)]],
                                          False),
    "a list parameter": ([[_claim("a", 0, params={"w": [1, 2]}), _row("a", 0, 0)]], False),
    "a nested result": ([[*_ran("a", 0, 1, info={"k": 1})]], False),
    "a date result": ([[*_ran("a", 0, 1, when="2026-12-07T10:00:00")]], False),
    "a result named as a meta column": ([[*_ran("a", 0, 1, rep=5)]], False),
    "a null beside a missing column": ([[*_ran("a", 0, 1, v=None), *_ran("b", 0, 1), *_ran("c", 0, 1, v=2.0)]],
                                       False),
    "a boolean some rows lack": ([[*_ran("a", 0, 1, ok=True), *_ran("b", 0, 1)]], False),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_written_segments_are_read_in_columns_or_left_to_the_bulk_reader(case, tmp_path, monkeypatch):
    segments, in_columns = CASES[case]
    _same(_store(tmp_path, segments), monkeypatch, in_columns)


def test_pieces_parsed_apart_make_one_frame(tmp_path, monkeypatch):
    """Pieces of a few lines each (parsed on several threads): a column typed int in one and float in another is
    float, a column only a later piece holds comes in its place."""
    monkeypatch.setattr(compact_frame, "PIECE_SIZE", 200)
    lines = [line for k in range(40) for line in _ran(f"e{k:02}", 0, 2, v=k if k < 20 else k + 0.5)]
    lines += _ran("late", 0, 1, extra="x")
    _same(_store(tmp_path, [lines]), monkeypatch, True)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_segments_read_a_few_bytes_at_a_time_make_the_same_frame(case, tmp_path, monkeypatch):
    """Reads of 5 bytes and pieces of ~64 (parsed while the segments are still being read): a piece ends only where
    the lines read so far are complete, a torn last line is read over by the next segment."""
    monkeypatch.setattr(compact_frame, "READ_SIZE", 5)
    monkeypatch.setattr(compact_frame, "PIECE_SIZE", 64)
    segments, in_columns = CASES[case]
    _same(_store(tmp_path, segments), monkeypatch, in_columns)


def test_a_segment_gone_or_grown_since_it_was_listed_is_read_as_listed(tmp_path, monkeypatch):
    """A segment that grew between the listing and its read is read up to the size it had (the lines after that,
    here a whole repetition, are not in the frame; the next segment's lines all are), one removed is left out."""
    target = _store(tmp_path, SIMPLE)
    root = compact_root(str(target / "doc"))
    listed = compact_frame._segment_files(root)
    first = listed[0][0]
    with open(first, "ab") as segment:
        segment.write(json.dumps({"c": ["late", 0], "params": {}}).encode() + b"\n"
                      + json.dumps({"w": ["late", 0], "row": {"iteration": 0}}).encode() + b"\n")
    monkeypatch.setattr(compact_frame, "_segment_files", lambda root: listed)
    frame = compact_frame.read_frame(root).frame
    assert set(frame["experiment"]) == {"aa", "b", "c", "ünï"} and len(frame) == 10
    os.remove(first)
    frame = compact_frame.read_frame(root).frame
    assert set(frame["experiment"]) == {"aa", "c", "ünï"}  # (the first writer's b and aa 1 gone with its segment)


@pytest.mark.parametrize("selection", [{"experiments": ["b"]}, {"experiments": ["doc"]}, {"params": {"x": 1}},
                                       {"params": {"model.width": 8, "tag": "b"}}, {"params": {"x": 1.0}},
                                       {"experiments": ["c", "aa"], "params": {"x": 2}}])
def test_a_selection_keeps_what_the_other_way_keeps(selection, tmp_path, monkeypatch):
    _same(_store(tmp_path, SIMPLE), monkeypatch, True, **selection)


def test_a_store_after_a_drop_names_only_what_is_left(tmp_path, monkeypatch):
    folder = _store(tmp_path, [SIMPLE[0] + [{"d": "b", "t": 5.0}], SIMPLE[1]])
    _same(folder, monkeypatch, True, experiments=["aa", "b"])
    with pytest.warns(UserWarning, match=r"no experiment 'b' saved anything here \(those that did: aa, c, doc, empty"):
        load_results(folder, experiments=["aa", "b"])


def test_a_selection_whose_rows_alone_would_type_a_column_otherwise_is_left_to_the_bulk_reader(tmp_path,
                                                                                              monkeypatch):
    """pyarrow typed `v` over every row (floats); the rows of `a` alone hold ints: pandas would make them ints."""
    folder = _store(tmp_path, [[*_ran("a", 0, 1, v=1), *_ran("b", 0, 1, v=2.5)]])
    _same(folder, monkeypatch, False, experiments=["a"])


def test_stores_read_both_ways_in_one_sweep_keep_their_order_and_columns(tmp_path, monkeypatch):
    """Two compact stores, one read in columns, one not (a damaged line), and the frame made of both as one."""
    _store(tmp_path, SIMPLE, "one")
    _store(tmp_path, [[*_ran("z", 0, 1, other=3), b"\0" * 20 + b"\n"]], "two")
    _same(tmp_path / "out", monkeypatch, [True, False])
    frame = load_results(tmp_path / "out")
    assert list(frame.columns) == ["experiment", "rep", "iteration", "params.x", "params.model.width",
                                   "params.tag", "value", "other"]
    assert frame["experiment"].tolist()[-1] == "z" and frame["other"].iloc[:-1].isna().all()


def test_a_real_sweep_in_a_compact_store_and_its_continuation_are_read_in_columns(tmp_path, cli, monkeypatch):
    config = tmp_path / "cfg.yml"
    config.write_text("name: halving\nrepetitions: 2\niterations: 3\npath: out\nstore: compact\n"
                      "params: {offset: 0.5}\ngrid: {c: [3, 1, 2]}\n")
    cli("Steered", str(config), cwd=tmp_path, check_rc=0)
    _same(config, monkeypatch, True)
    frame = load_results(config)
    assert len(frame) == 3 * 2 * 3 and frame["experiment"].is_monotonic_increasing
    assert frame.groupby(["experiment", "rep"])["iteration"].apply(list).tolist() == [[0, 1, 2]] * 6
    config.write_text(config.read_text().replace("iterations: 3", "iterations: 4"))  # each claimed again
    cli("Steered", str(config), cwd=tmp_path, check_rc=0)
    _same(config, monkeypatch, True)  # (each repetition replayed)
    assert len(load_results(config)) == 3 * 2 * 4


def test_the_store_read_in_columns_holds_every_row_in_order(tmp_path, monkeypatch):
    """Not only the same as the other way: the rows themselves, named and numbered (a check of both)."""
    folder = _store(tmp_path, SIMPLE)
    read = compact_frame.read_frame(compact_root(str(folder / "doc")))
    assert read is not None and read.frame is not None
    frame = read.frame
    assert list(zip(frame["experiment"], frame["rep"], frame["iteration"])) == [
        ("aa", 0, 0), ("aa", 0, 1), ("aa", 1, 0), ("b", 0, 0), ("b", 0, 1), ("b", 1, 0), ("b", 1, 1), ("b", 1, 2),
        ("c", 0, 0), ("ünï", 2, 0)]
    assert frame["value"].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 2.0, 3.0, 0.0, 2.0]
    assert frame["params.x"].tolist() == [2, 2, 2, 1, 1, 1, 1, 1, 1, 3]
    assert read.names() == {"aa", "b", "c", "ünï", "empty", "doc"}


def test_a_name_no_experiment_has_is_warned_of_with_the_names_read_in_columns(tmp_path, monkeypatch):
    folder = _store(tmp_path, SIMPLE)
    with pytest.warns(UserWarning) as read:
        frame = load_results(folder, experiments=["b", "nope"])
    with pytest.warns(UserWarning) as reference:
        _reference(folder, monkeypatch, experiments=["b", "nope"])
    assert set(frame["experiment"]) == {"b"}
    assert [str(w.message) for w in read] == [str(w.message) for w in reference]
    assert "(those that did: aa, b, c, doc, empty, ünï)" in str(read[0].message)


def test_a_store_of_few_long_repetitions_is_left_to_the_bulk_reader(tmp_path, monkeypatch):
    """Its cost there is per repetition: as fast as in columns (ROWS_PER_CLAIM)."""
    long = [*_ran("a", 0, compact_frame.ROWS_PER_CLAIM + 1), *_ran("b", 0, compact_frame.ROWS_PER_CLAIM + 1)]
    _same(_store(tmp_path, [long]), monkeypatch, False)
    monkeypatch.setattr(compact_frame, "ROWS_PER_CLAIM", 60)
    _same(_store(tmp_path / "again", [long]), monkeypatch, True)


RANDOM_CASES = 300


@pytest.mark.parametrize("sizes", [None, (7, 100)], ids=["whole", "7-byte-reads-100-byte-pieces"])
def test_random_stores_of_several_writers_and_runs_are_read_alike(sizes, tmp_path, monkeypatch):
    """Seeded random event sequences (compact_events_helpers: claims again, cut-backs, statuses, drops, rows out of
    order, torn and damaged lines): the frame in columns is the other way's, or the store is left to it. A fair
    share is read in columns: leaving it is not what makes it pass. Also read a few bytes at a time in pieces of a
    few lines (pieces cut while the segments are read, torn tails among them), every third case."""
    cases = range(RANDOM_CASES) if sizes is None else range(0, RANDOM_CASES, 3)
    if sizes is not None:
        monkeypatch.setattr(compact_frame, "READ_SIZE", sizes[0])
        monkeypatch.setattr(compact_frame, "PIECE_SIZE", sizes[1])
    read = 0
    for case in cases:
        writers = Writers(compact_root(str(tmp_path / str(case) / "out" / "doc")), random.Random(case))
        for _ in range(1 + case % 5):
            writers.phase()
        found = compact_frame.read_frame(writers.root)
        _catalogs.clear()
        reference = _reference(tmp_path / str(case) / "out", monkeypatch)
        if found is not None:
            read += 1
            frame = found.frame if found.frame is not None else reference.iloc[:0]
            assert list(frame.columns) == list(reference.columns), f"case {case}"
            assert frame.dtypes.tolist() == reference.dtypes.tolist(), f"case {case}"
            assert frame.equals(reference), f"case {case}"
    assert read > len(cases) * 0.6, read


@pytest.mark.processes
def test_a_store_read_in_columns_while_a_run_writes_it_shows_each_repetition_a_prefix(tmp_path, monkeypatch):
    """load_results in columns, again and again, while `-n 2` writes the store (lines torn mid-write, claims not
    yet followed by rows): it never raises and each repetition shows rows 0, 1, 2... only. Point 30 waits at its
    iteration 2 until the test has read the store at least once then; once the run ended, the frame is the other
    way's, whole."""
    config = tmp_path / "cfg.yml"
    config.write_text("name: live\nrepetitions: 2\niterations: 5\npath: out\nstore: compact\n"
                      "params: {gate_at: 2, gate_c: 30}\ngrid: {c: [" + ", ".join(map(str, range(60))) + "]}\n")
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, SCRIPT, "Steered", str(config), "-n", "2"], cwd=tmp_path,
                               env={**script_env(), "CW_TEST_GATE": str(gate)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    in_columns: list[bool] = []
    reader = compact_frame.read_frame
    monkeypatch.setattr(compact_frame, "read_frame", _spy(in_columns))
    while process.poll() is None:
        waiting = gate.with_suffix(".waiting").exists()  # (before the read: this read is one made while it waits)
        if (tmp_path / "out" / "live").is_dir():
            frame = load_results(tmp_path / "out")
            assert (frame.groupby(["experiment", "rep"])["iteration"].agg(list)
                    .map(lambda found: found == list(range(len(found)))).all())
            if waiting and not gate.exists():
                assert in_columns[-1] and len(frame[frame["experiment"] == "live__c30"]) >= 2
                gate.touch()
    assert process.returncode == 0 and gate.exists()
    monkeypatch.setattr(compact_frame, "read_frame", reader)
    _same(config, monkeypatch, True)
    assert len(load_results(config)) == 60 * 2 * 5
