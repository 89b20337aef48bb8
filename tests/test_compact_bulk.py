"""A compact store read in bulk (`compact_bulk.read_bulk`) gives load_results the frame the catalog gives.

The catalog (`compact_catalog`) is the definition. Each case compares load_results' frame with the bulk reader
and with the catalog alone (the bulk reader made to give up), and says whether the bulk reader reads the store
(then each repetition either in bulk or replayed) or leaves it to the catalog (a drop, a line keyed otherwise),
so that no path goes untested; `_replayed` counts the repetitions replayed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cluster_work import compact_bulk, load_results
from cluster_work.compact_catalog import _catalogs
from cluster_work.paths import LOCKS_FILE, compact_root, segment_name
from cluster_work.store import encode_row

pytest.importorskip("pandas")


def _frames(target: Path, monkeypatch) -> tuple:
    """load_results of `target` as it is, and through the catalog alone."""
    bulk = load_results(target)
    with monkeypatch.context() as patch:
        patch.setattr(compact_bulk, "read_bulk", lambda root: None)
        _catalogs.clear()
        catalogued = load_results(target)
    return bulk, catalogued


def _roots(folder: Path) -> list[str]:
    return sorted(compact_root(str(base)) for base in folder.iterdir() if os.path.isdir(compact_root(str(base))))


def _same(target: Path, monkeypatch, bulk_reads: set[str]) -> None:
    """load_results of `target` the same both ways; the documents read in bulk exactly `bulk_reads`."""
    bulk, catalogued = _frames(target, monkeypatch)
    assert len(catalogued)
    assert list(bulk.columns) == list(catalogued.columns)
    assert bulk.dtypes.tolist() == catalogued.dtypes.tolist()
    assert bulk.equals(catalogued)
    folder = target if target.is_dir() else target.parent / "out"
    read = {Path(root).parent.name for root in _roots(folder) if compact_bulk.read_bulk(root) is not None}
    assert read == bulk_reads


CONFIG = """
---
name: walk
repetitions: 3
iterations: {iterations}
path: out
store: compact
params: {{nested: {{width: 8, tags: [a, b]}}}}
grid: {{step: [0.5, 1.0, 2.0], weights: [[1, 2], [3, 4]]}}
---
name: single
repetitions: 2
iterations: 1
path: out
store: compact
list:
  step: [1.0, 2.0]
  fail_at: [-1, -1]
"""


def test_a_sweep_that_ran_once_is_read_in_bulk_as_the_catalog_reads_it(tmp_path, cli, monkeypatch):
    (tmp_path / "cfg.yml").write_text(CONFIG.format(iterations=4))
    cli("Deterministic", "cfg.yml", cwd=tmp_path, check_rc=0)
    _same(tmp_path / "cfg.yml", monkeypatch, bulk_reads={"walk", "single"})
    _same(tmp_path / "out", monkeypatch, bulk_reads={"walk", "single"})
    frame = load_results(tmp_path / "cfg.yml", experiments=["single"], params={"step": 2.0})
    assert sorted(set(frame["experiment"])) == ["single__s2.0_fa-1"] and len(frame) == 2


def test_a_continued_sweep_its_repetitions_claimed_again_is_left_to_the_catalog(tmp_path, cli, monkeypatch):
    (tmp_path / "cfg.yml").write_text(CONFIG.format(iterations=2))
    cli("Deterministic", "cfg.yml", cwd=tmp_path, check_rc=0)
    (tmp_path / "cfg.yml").write_text(CONFIG.format(iterations=5))  # more iterations: each walk is claimed again
    cli("Deterministic", "cfg.yml", cwd=tmp_path, check_rc=0)
    _same(tmp_path / "cfg.yml", monkeypatch, bulk_reads={"walk", "single"})
    assert set(load_results(tmp_path / "cfg.yml").groupby(["experiment", "rep"]).size()) == {5, 1}


def test_a_failed_repetition_and_its_status_is_left_to_the_catalog(tmp_path, cli, monkeypatch):
    failing = "fail_at: [-1, 0]\n  fail_rep: [0, 1]"  # the second experiment's repetition 1
    (tmp_path / "cfg.yml").write_text(CONFIG.format(iterations=3).replace("fail_at: [-1, -1]", failing))
    cli("Deterministic", "cfg.yml", cwd=tmp_path)
    _same(tmp_path / "cfg.yml", monkeypatch, bulk_reads={"walk", "single"})


def _store(tmp_path: Path, segments: list[list[dict | bytes]], document: str = "doc") -> Path:
    """A compact store of `document` written line by line: events (as the writers encode them) or raw bytes."""
    root = Path(compact_root(str(tmp_path / "out" / document)))
    root.mkdir(parents=True)
    (root / LOCKS_FILE).touch()
    for number, lines in enumerate(segments):
        data = b"".join(line if isinstance(line, bytes) else encode_row(line) for line in lines)
        (root / segment_name("host", 100 + number, "0000000" + str(number))).write_bytes(data)
    return tmp_path / "out"


def _claim(name: str, rep: int, t: float = 1.0, params: dict | None = None) -> dict:
    return {"c": [name, rep], "t": t, "params": params if params is not None else {"x": rep}, "base": "doc",
            "at": name}


def _row(name: str, rep: int, iteration: int, **values) -> dict:
    return {"w": [name, rep], "row": {"iteration": iteration, "value": float(iteration), **values}}


SIMPLE = [[_claim("b", 0), _row("b", 0, 0), _row("b", 0, 1), _claim("a", 1), _row("a", 1, 0)],
          [_claim("a", 0), _row("a", 0, 0, note="x"), _claim('q"uote\\d', 0), _row('q"uote\\d', 0, 0),
           _claim("ünï", 2, params={}), _row("ünï", 2, 0), _claim("empty", 0)]]

OTHER = [_claim("z", 0), _row("z", 0, 0)]  # a repetition beside each case's: a frame never empty

CASES = {
    "two writers' segments": (SIMPLE, 0),
    "a torn last line": ([SIMPLE[0] + [b'{"w":["b",0],"row":{"iteration":2,"va'], SIMPLE[1]], 0),
    "one-row repetitions": ([[_claim(f"p{k}", 0), _row(f"p{k}", 0, 0)] for k in range(5)], 0),
    "rows before their claim": ([[_row("a", 0, 0), _claim("a", 0), _row("a", 0, 1)]], 1),
    "rows of a repetition another segment claimed": ([[_claim("a", 0)], [_row("a", 0, 0)]], 1),
    "a repetition claimed twice": ([[_claim("a", 0), _row("a", 0, 0)], [_claim("a", 0, t=2.0), _row("a", 0, 0)]],
                                   1),
    "a repetition's rows in two runs": ([[_claim("a", 0), _claim("b", 0), _row("a", 0, 0), _row("b", 0, 0),
                                          _row("a", 0, 1)]], 1),
    "an iteration skipped": ([[_claim("a", 0), _row("a", 0, 0), _row("a", 0, 2)], SIMPLE[0]], 1),
    "rows from 1": ([[_claim("a", 0), _row("a", 0, 1), _row("a", 0, 2)], SIMPLE[0]], 1),
    "a cut-back": ([[_claim("a", 0), _row("a", 0, 0), _row("a", 0, 1), {"k": ["a", 0], "n": 1},
                     _row("a", 0, 1, again=True)]], 1),
    "a status": ([SIMPLE[0] + [{"s": ["b", 0], "t": 5.0, "status": {"state": "stopped", "reason": "r"}}]], 1),
    "a drop": ([SIMPLE[0] + [{"d": "b", "t": 5.0}, _claim("b", 0, t=6.0), _row("b", 0, 0)]], None),
    "an event keyed otherwise": ([SIMPLE[0] + [b'{"s": ["b", 0], "t": 5.0, "status": {"state": "failed"}}\n']], None),
    "a key written with an escape": ([SIMPLE[0] + [b'{"s":["\\u0062",0],"t":5.0,"status":{"state":"failed"}}\n']],
                                     None),
    "a status of a repetition never claimed": ([SIMPLE[0] + [{"s": ["new", 0], "t": 5.0, "at": "new", "base": "doc",
                                                             "params": {"x": 9}, "status": {"state": "stopped",
                                                                                            "reason": "why"}}]], 1),
    "a damaged line (a power loss's zeros)": ([SIMPLE[0][:3] + [b"\0" * 40 + b"\n"] + SIMPLE[0][3:]], 0),
    "a row line torn and written over": ([[_claim("a", 0), _row("a", 0, 0),
                                           b'{"w":["a",0],"row":{"itera{"w":["a",0],"row":{"iteration":1}}\n',
                                           _row("a", 0, 2)]], 1),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_written_segments_are_read_in_bulk_replayed_or_left_to_the_catalog(case, tmp_path, monkeypatch):
    segments, replayed = CASES[case]  # repetitions replayed through a catalog of their own; None: the store left
    folder = _store(tmp_path, [*segments, OTHER])
    _same(folder, monkeypatch, set() if replayed is None else {"doc"})
    counted: list[int] = []
    replay = compact_bulk._replay
    monkeypatch.setattr(compact_bulk, "_replay", lambda root, names, keys, *rest: counted.append(len(keys)) or replay(
        root, names, keys, *rest))
    if compact_bulk.read_bulk(_roots(folder)[0]) is not None:
        assert sum(counted) == replayed


def test_the_bulk_reader_gives_each_repetitions_rows_as_its_results_file_holds_them(tmp_path):
    folder = _store(tmp_path, SIMPLE)
    [root] = _roots(folder)
    experiments = compact_bulk.read_bulk(root)
    assert experiments is not None
    read = {e.name: (e.params, e.base, [(r.rep, r.rows) for r in e.repetitions]) for e in experiments}
    assert list(read) == sorted(read)
    assert read["b"] == ({"x": 0}, "doc", [(0, b"".join(encode_row(_row("b", 0, n)["row"]) for n in (0, 1)))])
    assert read["a"][2] == [(0, encode_row(_row("a", 0, 0, note="x")["row"])), (1, encode_row(_row("a", 1, 0)["row"]))]
    assert read["empty"][2] == [(0, b"")]
    assert json.loads(read['q"uote\\d'][2][0][1]) == {"iteration": 0, "value": 0.0}
