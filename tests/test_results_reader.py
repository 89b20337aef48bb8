"""load_results reads the same frame with pyarrow's JSON reader and with the plain one, and the same as before
both existed: columns, their order, dtypes and values, on inputs chosen to trip one of them up.

Each case also says whether the fast reader must take it (else a reader that always gave up would pass)."""
from __future__ import annotations

import json
import math
import random
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import cluster_work.results as results
from cluster_work import arrow_rows, load_results
from cluster_work.store import ExperimentStore, encode_row, find_experiment_folders

if TYPE_CHECKING:  # pandas is imported where a test uses it: collecting the tests stays quick
    import pandas as pd

pytest.importorskip("pyarrow.json", reason="the fast reader needs the fast extra (pip install -e '.[fast]')")
ORIGINAL = Path(__file__).parent / "data" / "original_sweep"


def fast_rows(chunks: list[bytes]):
    """What the fast reader makes of these results files' complete lines (None: it gave up)."""
    reader = arrow_rows.start_reader()
    for chunk in chunks:
        reader.add(chunk)
    return reader.rows()


def lines(*rows: dict) -> bytes:
    return b"".join(encode_row(row) for row in rows)


def counted(count: int, **columns) -> bytes:
    """Rows 0 to count - 1, each with the given columns (a callable gets the iteration)."""
    return lines(*({"iteration": n, **{k: v(n) if callable(v) else v for k, v in columns.items()}}
                   for n in range(count)))


def write_sweep(root: Path, *experiments: list, params: list | None = None) -> Path:
    """One experiment folder per list of repetition files (bytes; None: a folder without results)."""
    for index, repetitions in enumerate(experiments):
        store = ExperimentStore(str(root / "base" / f"e{index}"))
        store.write_config({"name": f"base__e{index}", "experiment_name": "base",
                            "params": params[index] if params else {"p": index}})
        for rep, data in enumerate(repetitions):
            repetition = store.repetition(rep)
            repetition.create_folder()
            if data is not None:
                Path(repetition.results_file).write_bytes(data)
    return root


def reference(path: Path) -> pd.DataFrame:
    """load_results as it was before the fast reader: pandas infers one frame from all rows."""
    import pandas as pd
    blocks, rows, counts = [], [], []
    for store in find_experiment_folders(str(path)):
        config = results.stored_config(store.path) or {}
        flat = {f"params.{k}": v for k, v in results.flatten_mapping(config.get("params") or {}).items()}
        for rep in results.repetition_numbers(store.path):
            saved = results.repetition_rows(store.path, rep)
            if saved:
                blocks.append({"experiment": config["name"], "rep": rep, **flat})
                rows += saved
                counts.append(len(saved))
    if not blocks:
        return pd.DataFrame(columns=results.INDEX_COLUMNS)
    frame = pd.DataFrame.from_records(rows)
    meta = pd.DataFrame.from_records(blocks)
    meta = meta.loc[meta.index.repeat(counts)].reset_index(drop=True)
    meta.insert(2, "iteration", frame.pop("iteration").astype("int64"))
    return pd.concat([meta, frame], axis=1)


def assert_identical(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal frames, and also what assert_frame_equal lets pass: None against NaN in object columns, the
    types of objects (1 against 1.0 or True), the sign of zero."""
    import pandas as pd
    pd.testing.assert_frame_equal(left, right, check_exact=True)
    for position in range(left.shape[1]):
        a, b = left.iloc[:, position], right.iloc[:, position]
        if a.dtype == object:
            assert [(type(v), repr(v)) for v in a] == [(type(v), repr(v)) for v in b], left.columns[position]
        elif a.dtype.kind == "f":
            assert np.array_equal(np.signbit(a.to_numpy()), np.signbit(b.to_numpy())), left.columns[position]


def read_both(path: Path, monkeypatch) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """The frame with the fast reader, whether that took it, and the frame with the plain reader alone."""
    plain_calls = []
    parsed_rows = results._parsed_rows
    with monkeypatch.context() as patch:
        patch.setattr(results, "_parsed_rows", lambda chunks: plain_calls.append(1) or parsed_rows(chunks))
        fast = load_results(path)
    with monkeypatch.context() as patch:
        patch.setattr(results, "_fast_reader", lambda: arrow_rows.Reader(None))
        plain = load_results(path)
    return fast, plain, not plain_calls


ROW = {"loss": lambda n: 1 / (n + 1), "name": "x"}
TORN = b'{"iteration":9,"lo'

CASES = {  # name: (repetition files of each experiment, whether the fast reader takes them)
    "plain rows, a torn last line, an empty file, no file": (
        [[counted(4, **ROW), counted(3, **ROW) + TORN, b"", None, TORN]], True),
    "rows out of order or repeated, cut to their prefix; a float only in a cut row": (
        [[lines(*({"iteration": n, "a": n} for n in (0, 1, 3, 4))),
          lines(*({"iteration": n, "a": n} for n in (0, 1, 1, 2))),
          lines(*({"iteration": n, "a": n} for n in (1, 2))),
          lines({"iteration": 0, "a": 1}, {"iteration": 1, "a": 2}, {"iteration": 5, "a": 2.5, "b": "only here"})]],
        True),
    "every row out of order": ([[lines({"iteration": 1, "a": 1})]], True),
    "columns in some files only; ints and floats in one column": (
        [[counted(3, loss=0.5, acc=lambda n: n)], [counted(2, loss=lambda n: n, note="s")],
         [counted(2, loss=lambda n: n + 0.25, acc=lambda n: n * 1.5)]], True),
    "strings, null in string and number columns, empty strings, a column named like the index": (
        [[lines({"iteration": 0, "s": "a", "v": 1.5, "rep": 7}, {"iteration": 1, "s": None, "v": None, "rep": 8},
                {"iteration": 2, "s": "", "v": 2})]], True),
    "booleans in every row": ([[counted(3, ok=lambda n: n % 2 == 0)], [counted(1, ok=True)]], True),
    "booleans with gaps": ([[counted(3, ok=True)], [counted(1, other=1)]], False),
    "a column of nulls only": ([[counted(2, nothing=None, loss=1.0)]], False),
    "NaN and infinities as encode_row writes them, a column of NaN only": (
        [[counted(4, loss=lambda n: [math.nan, math.inf, -math.inf, 1.0][n], gone=math.nan)],
         [counted(2, loss=lambda n: n)]], True),
    "non-finite numbers only pyarrow reads (-NaN, Inf, -Inf)": (
        [[counted(1, a=1.0) + b'{"iteration":1,"a":-NaN}\n'], [counted(1, a=1.0) + b'{"iteration":1,"a":Inf}\n'],
         [counted(2, a=math.inf) + b'{"iteration":2,"a":-Inf}\n']], False),
    "unicode, escaped and raw UTF-8, in values and keys": (
        [[counted(2, s="héllo ✓ 😀", **{"ключ": 1})],
         [b"".join(json.dumps({"iteration": n, "s": "raw ✓ 😀", "ключ": 2}, ensure_ascii=False).encode() + b"\n"
                   for n in range(2))]], True),
    "invalid UTF-8 (the file stops before it)": ([[counted(2, s="a") + b'{"iteration":2,"s":"\xff"}\n']], False),
    "integers at and beyond int64": ([[counted(2, a=2**63 - 1, b=-(2**63))], [counted(1, a=1, b=2)]], True),
    "an integer beyond int64": ([[counted(2, a=2**63)], [counted(1, a=1)]], False),
    "the integer -0 in a column of integers": ([[b'{"iteration":0,"a":-0}\n{"iteration":1,"a":3}\n']], True),
    "the integer -0 among floats (0.0 in Python, -0.0 in pyarrow)": (
        [[b'{"iteration":0,"a":-0}\n{"iteration":1,"a":1.5}\n']], False),
    "the float -0.0": ([[counted(2, a=-0.0, b=lambda n: -0.0 * n)]], True),
    "dates, which pyarrow would make timestamps": ([[counted(2, t="2026-01-01T10:00:00", u="2026-01-01")],
                                                   [counted(1, t="not a date", u="2026-01-02")]], True),
    "floats that are integers for iterations": ([[b'{"iteration":0.0,"a":1}\n{"iteration":1.0,"a":2}\n']], True),
    "nested values as flatten_result leaves them (dicts in lists, lists in lists)": (
        [[counted(2, a_0=lambda n: {"b": n}, c_1=lambda n: [n, n])]], False),
    "a blank line": ([[counted(2, a=1) + b"\n" + lines({"iteration": 2, "a": 1})]], False),
    "two objects on one line, and a line left blank to make up the count": (
        [[b'{"iteration":0}{"iteration":1}\n\n']], False),
    "an object over two lines": ([[b'{"iteration":0,\n"a":1}\n{"iteration":1}\n']], False),
    "CRLF line ends, spaces around objects": ([[b'{"iteration":0}\r\n{"iteration":1}\r\n'],
                                              [b' {"iteration":0} \n']], False),
    "a key twice in one object (Python keeps the last)": ([[b'{"iteration":0,"a":1,"a":2}\n']], False),
    "lines that are no objects": ([[counted(1, a=1) + b"[1]\n"], [b"5\n"]], False),
    "a row without iteration": ([[counted(1, a=1) + b'{"a":2}\n' + lines({"iteration": 2, "a": 1})]], True),
    "no rows at all": ([[b"", TORN, None]], True),
}


@pytest.mark.parametrize("name", CASES)
def test_the_fast_and_the_plain_reader_read_the_same(tmp_path, monkeypatch, name):
    experiments, taken = CASES[name]
    sweep = write_sweep(tmp_path / "out", *experiments)
    fast, plain, fast_taken = read_both(sweep, monkeypatch)
    assert fast_taken == taken
    assert_identical(fast, plain)
    assert_identical(plain, reference(sweep))


def test_a_lone_surrogate_is_left_to_the_plain_reader():
    """Python's json reads it (and pandas then fails to store it as UTF-8, as before); pyarrow refuses it."""
    assert fast_rows([counted(1, s="a") + b'{"iteration":1,"s":"\\ud800"}\n']) is None
    assert fast_rows([counted(1, s="a") + b'{"iteration":1,"s":"\\ud83d\\ude00"}\n']) is not None


def test_params_that_differ_from_experiment_to_experiment(tmp_path, monkeypatch):
    params = [{"lr": 1, "model": {"width": 8}}, {"lr": 0.5}, {"lr": 1, "tag": "b", "model": {"width": None}}]
    sweep = write_sweep(tmp_path / "out", [counted(2, loss=1.0)], [counted(1, loss=2.0), b""],
                        [None, counted(3, loss=3.0)], params=params)
    fast, plain, taken = read_both(sweep, monkeypatch)
    assert taken and list(fast.columns) == ["experiment", "rep", "iteration", "params.lr", "params.model.width",
                                            "params.tag", "loss"]
    assert fast.rep.tolist() == [0, 0, 0, 1, 1, 1] and fast["params.lr"].tolist() == [1, 1, 0.5, 1, 1, 1]
    assert_identical(fast, plain)
    assert_identical(plain, reference(sweep))


def test_the_originals_csv_files_beside_cluster_work_rows(tmp_path, monkeypatch):
    """A repetition of the original's (rep_N.csv) makes it the plain reader's turn, for all."""
    sweep = tmp_path / "out"
    shutil.copytree(ORIGINAL / "out", sweep)
    ours = ExperimentStore(str(sweep / "walk" / "s2.0")).repetition(1)
    Path(ours.results_file).write_bytes(counted(2, pos=lambda n: n * 0.5, note="ours"))
    fast, plain, taken = read_both(sweep, monkeypatch)
    assert not taken and set(fast.loc[fast.experiment == "walk__s2.0"].groupby("rep").size()) == {3, 2}
    assert_identical(fast, plain)
    assert_identical(plain, reference(sweep))


def random_sweep(rng: random.Random, tricky: bool) -> list[list[bytes]]:
    """Columns that come and go, change order, mix ints, floats, NaN, infinities and nulls, strings and dates;
    files cut short, rows out of order; `tricky`: also one value the fast reader gives up on, somewhere."""
    booleans = rng.random() < 0.5  # in every row or in none (gaps are tricky)
    values = {"f": lambda: rng.choice([rng.random(), rng.randint(-5, 5), math.nan, -math.inf, None]),
              "i": lambda: rng.randint(-(2**62), 2**62), "s": lambda: rng.choice(["a", "ü", "2026-01-01", "", None]),
              "late": lambda: rng.random()}
    odd = rng.choice([("n", [1]), ("n", {"a": 1}), ("b", True) if not booleans else ("b", None), ("f", "x"),
                      ("i", 2**64)])

    def row(iteration: int) -> dict:
        names = [name for name in values if rng.random() < (0.05 if name == "late" else 0.8)]
        row = {"iteration": iteration, **{name: values[name]() for name in rng.sample(names, len(names))}}
        if booleans:
            row["b"] = rng.random() < 0.5
        if tricky and rng.random() < 0.05:
            row[odd[0]] = odd[1]
        return row

    experiments = []
    for _ in range(rng.randint(1, 4)):
        files = []
        for _ in range(rng.randint(1, 4)):
            order = list(range(rng.randint(0, 40)))
            if rng.random() < 0.2 and order:
                order[rng.randrange(len(order))] = rng.randrange(len(order))  # out of order from there
            files.append(lines(*(row(n) for n in order)) + (TORN if rng.random() < 0.3 else b""))
        experiments.append(files)
    return experiments


def test_random_sweeps_in_many_pieces(tmp_path, monkeypatch):
    """pyarrow reads each ~1 kB piece alone: types and columns are unified across pieces as within one."""
    monkeypatch.setattr(arrow_rows, "PIECE_SIZE", 1024)
    taken = []
    for seed in range(30):
        sweep = write_sweep(tmp_path / str(seed), *random_sweep(random.Random(seed), tricky=seed % 3 == 2))
        fast, plain, fast_taken = read_both(sweep, monkeypatch)
        assert_identical(fast, plain)
        assert_identical(plain, reference(sweep))
        taken.append(fast_taken)
    assert sum(taken) >= 15 and not all(taken), taken


def test_without_pyarrow_the_plain_reader_reads_alone(tmp_path, monkeypatch):
    sweep = write_sweep(tmp_path / "out", [counted(3, **ROW), counted(2, loss=math.nan)])
    with_pyarrow, _, taken = read_both(sweep, monkeypatch)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert taken and fast_rows([counted(1)]) is None
    assert_identical(load_results(sweep), with_pyarrow)


# --- a wrong path is an error; a sweep that has not run is an empty frame and a warning ------------------

@pytest.mark.parametrize("path", [pytest.param("typo.yml", id="config-file"), pytest.param("outt", id="folder")])
def test_a_path_that_is_neither_a_config_nor_a_folder_is_an_error_naming_it(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    write_sweep(tmp_path / "out", [counted(2, **ROW)])
    with pytest.raises(FileNotFoundError, match=f"no such config file or results folder: '{path}'"):
        load_results(path)


@pytest.mark.parametrize("setup, path, warning", [
    pytest.param(lambda root: None, "c.yml", "c.yml: no results yet in out (has its sweep run?)", id="config-not-run"),
    pytest.param(lambda root: (root / "out").mkdir(), "c.yml", "c.yml: no results yet in out",
                 id="empty-results-folder"),
    pytest.param(lambda root: (root / "out").mkdir(), "out", "out: no experiment folders in it", id="empty-folder"),
])
def test_a_sweep_that_has_not_run_yet_is_an_empty_frame_and_a_warning(tmp_path, monkeypatch, setup, path, warning):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yml").write_text("name: a\nrepetitions: 1\niterations: 1\npath: out\n")
    setup(tmp_path)
    with pytest.warns(UserWarning, match=re.escape(warning)):
        frame = load_results(path)
    assert frame.empty and list(frame.columns) == results.INDEX_COLUMNS


def test_a_sweep_with_results_loads_without_a_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yml").write_text("name: a\nrepetitions: 1\niterations: 1\npath: out\n")
    write_sweep(tmp_path / "out", [b"", None])  # saved nothing yet, but started: no warning either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_results("c.yml").empty and load_results("out").empty


# --- a name in `experiments` the config does not define is a typo: a warning; one not run yet is not ------

GRID_CONFIG = ("name: base\nrepetitions: 1\niterations: 1\npath: out\ngrid: {p: [0, 1]}\n---\n"
               "name: later\nrepetitions: 1\niterations: 1\npath: out\n")


@pytest.fixture
def half_run(tmp_path, monkeypatch):
    """GRID_CONFIG in c.yml, of whose experiments only base__p0 saved rows (base__p1 and later: not run yet)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yml").write_text(GRID_CONFIG)
    store = ExperimentStore(str(tmp_path / "out" / "base" / "p0"))
    store.write_config({"name": "base__p0", "experiment_name": "base", "params": {"p": 0}})
    store.repetition(0).create_folder()
    Path(store.repetition(0).results_file).write_bytes(counted(2, **ROW))
    return tmp_path


@pytest.mark.parametrize("path, names, warning, rows", [
    pytest.param("c.yml", ["nope"], "c.yml: defines no experiment 'nope' (it defines: base, later)", 0,
                 id="config-typo"),
    pytest.param("c.yml", ["base", "base__p7", "nope"],
                 "c.yml: defines no experiment 'base__p7', 'nope' (it defines: base, later)", 2,
                 id="config-typos-beside-a-name-it-defines"),
    pytest.param("out", ["nope"], "out: no experiment 'nope' saved anything here (those that did: base, base__p0)", 0,
                 id="folder-typo"),
])
def test_a_name_the_config_does_not_define_is_a_warning_naming_it(half_run, path, names, warning, rows):
    with pytest.warns(UserWarning, match=re.escape(warning)) as caught:
        frame = load_results(path, experiments=names)
    assert len(caught) == 1 and caught[0].filename == __file__  # one warning, at the caller's line
    assert len(frame) == rows


def test_a_typo_is_named_also_where_the_config_has_not_run_yet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yml").write_text(GRID_CONFIG)
    with pytest.warns(UserWarning) as caught:
        assert load_results("c.yml", experiments=["base__p1", "nope"]).empty
    assert [str(w.message) for w in caught] == ["c.yml: no results yet in out (has its sweep run?)",
                                                "c.yml: defines no experiment 'nope' (it defines: base, later)"]


@pytest.mark.parametrize("names", [
    pytest.param(["base__p1"], id="expanded-name-not-run"),
    pytest.param(["later"], id="base-name-not-run"),
    pytest.param(["base__p0", "base__p1", "later"], id="run-and-not-run"),
])
def test_a_name_the_config_defines_but_that_has_not_run_yet_gives_no_warning(half_run, names):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = load_results("c.yml", experiments=names)
        configured = results.load_configured_results("out", names)  # PlotWork's, --plot's and Sweep's reader
    assert len(frame) == len(configured) == (2 if "base__p0" in names else 0)


def test_sweep_results_gives_no_warning_for_the_experiments_of_its_config_not_run_yet(half_run):
    from experiments import Deterministic

    from cluster_work import Sweep

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = Sweep(Deterministic, "c.yml").results()  # reads the folder `out`, where `later` saved nothing
    assert list(frame.experiment.unique()) == ["base__p0"]


def test_stop_reason_is_a_column_where_a_campaign_stopped_a_repetition_in_both_readers(tmp_path, monkeypatch):
    from cluster_work.vocabulary import Record

    sweep = write_sweep(tmp_path / "out", [counted(1, **ROW), counted(3, **ROW)], [counted(2, **ROW)],
                        params=[{"c": 0}, {"c": 1}])
    plain = load_results(sweep)
    assert "stop_reason" not in plain  # a plain sweep: no such column
    for store in find_experiment_folders(str(sweep)):
        store.write_config({**store.read_config(), "steer": {"policy": "successive_halving", "metric": "loss"}})
    assert "stop_reason" not in load_results(sweep)  # a campaign that stopped nothing: none either
    ExperimentStore(str(sweep / "base" / "e0")).repetition(0).write_status(Record.STOPPED, sync=False,
                                                                          reason="halving: loss 1 ranks 2 of 2")
    ExperimentStore(str(sweep / "base" / "e1")).repetition(0).write_status(Record.STOPPED, sync=False, reason="enough")
    fast, plain, taken = read_both(sweep, monkeypatch)
    assert taken
    assert_identical(fast, plain)
    assert list(fast.columns[:5]) == ["experiment", "rep", "iteration", "params.c", "stop_reason"]
    reasons = fast.groupby(["experiment", "rep"]).stop_reason.first()
    assert reasons.dropna().to_dict() == {("base__e0", 0): "halving: loss 1 ranks 2 of 2", ("base__e1", 0): "enough"}
    assert reasons.isna().sum() == 1 and (fast[fast.rep == 1].stop_reason.isna()).all()


def test_load_results_parses_with_mallocs_pool_and_gives_the_pool_back(tmp_path, monkeypatch):
    """pyarrow allocates from malloc (its system pool) while load_results reads (arrow_rows.malloc_pool: mimalloc's
    huge pages cost a fresh process ~1 s at 10^6 lines); the process's pool is its default again afterwards, and a
    pool the user chose (ARROW_DEFAULT_MEMORY_POOL) is left alone."""
    import pyarrow

    root = write_sweep(tmp_path, [counted(3, loss=0.5)], [counted(2, loss=1.5)])
    read_piece, pools = arrow_rows.read_piece, []
    monkeypatch.setattr(arrow_rows, "read_piece", lambda data: pools.append(
        pyarrow.default_memory_pool().backend_name) or read_piece(data))
    before = pyarrow.default_memory_pool()
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    assert len(load_results(root)) == 5
    assert pools and set(pools) == {"system"}
    assert pyarrow.default_memory_pool().backend_name == before.backend_name
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", before.backend_name)
    pools.clear()
    assert len(load_results(root)) == 5
    assert set(pools) == {before.backend_name}
