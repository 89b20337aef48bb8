"""The on-disk format: rows survive torn writes, readers see a consistent prefix, one writer at a time."""
import json
import sys

import numpy as np
import pytest

from cluster_work.store import ExperimentStore, RepetitionBusy, encode_row, parse_results, to_plain


def rows_bytes(count, start=0):
    return b"".join(encode_row({"iteration": n, "v": n * 0.5, "s": "a\nb"}) for n in range(start, count))


@pytest.mark.parametrize("data, expected", [
    pytest.param(b"", 0, id="empty"),
    pytest.param(rows_bytes(3), 3, id="complete"),
    pytest.param(rows_bytes(3) + b'{"iteration":3,"v"', 3, id="torn-last-line"),
    pytest.param(rows_bytes(3)[:-1], 2, id="missing-final-newline"),
    pytest.param(rows_bytes(2) + b"garbage\n" + rows_bytes(4, 2), 2, id="damaged-line"),
    pytest.param(rows_bytes(2) + rows_bytes(5, 3), 2, id="gap-in-iterations"),
    pytest.param(b"[1, 2]\n", 0, id="not-an-object"),
])
def test_parse_keeps_the_longest_prefix_of_whole_rows_in_order(data, expected):
    prefix = parse_results(data)
    assert [row["iteration"] for row in prefix.rows] == list(range(expected))
    if expected:
        assert prefix.rows[0]["s"] == "a\nb"


def test_writer_cuts_back_to_whole_rows_and_appends(tmp_path):
    repetition = ExperimentStore(str(tmp_path / "exp")).repetition(0)
    writer = repetition.open_writer()
    for n in range(3):
        writer.append({"iteration": n, "x": np.float32(n)})
    writer.close()
    with open(repetition.results_file, "ab") as handle:
        handle.write(b'{"iteration":3,')  # a torn row
    writer = repetition.open_writer()
    prefix = writer.read()
    assert len(prefix) == 3
    writer.keep(prefix, 2)
    writer.append({"iteration": 2, "x": "again"})
    writer.close()
    rows = [json.loads(line) for line in open(repetition.results_file)]
    assert rows == [{"iteration": 0, "x": 0.0}, {"iteration": 1, "x": 1.0}, {"iteration": 2, "x": "again"}]


def test_one_writer_per_repetition(tmp_path):
    repetition = ExperimentStore(str(tmp_path / "exp")).repetition(0)
    writer = repetition.open_writer()
    assert repetition.is_running()
    with pytest.raises(RepetitionBusy):
        repetition.open_writer()
    writer.close()
    assert not repetition.is_running()
    repetition.open_writer().close()


def test_config_round_trip_is_plain_and_stable(tmp_path):
    store = ExperimentStore(str(tmp_path / "exp"))
    store.write_config({"params": {"a": np.arange(2), "f": len, "t": (1, 2)}})
    assert store.read_config() == {"params": {"a": [0, 1], "f": "<builtins.len>", "t": [1, 2]}}
    assert to_plain(object()).startswith("<object object") and "0x" not in to_plain(object())


@pytest.mark.parametrize("experiment", ["Deterministic", "GrowingResults"])
def test_load_results_reads_the_same_with_and_without_pyarrow(cli, tmp_path, experiment, monkeypatch):
    """pyarrow's JSON reader (where installed) and the plain one give one frame, dtypes included."""
    import pandas as pd

    from cluster_work import load_results
    (tmp_path / "config.yml").write_text("name: s\nrepetitions: 2\niterations: 5\npath: out\n"
                                         "grid: {step: [1.0, 2.0]}\n")
    cli(experiment, "config.yml", cwd=tmp_path, check_rc=0)
    pytest.importorskip("pyarrow.json", reason="the fast reader needs the fast extra (pip install -e '.[fast]')")
    import cluster_work.results as results

    with monkeypatch.context() as patch:
        patch.setattr(results, "_parsed_rows", None)  # the fast reader must not need the plain one
        fast = load_results(tmp_path / "out")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    plain = load_results(tmp_path / "out")
    assert len(plain) == 2 * 2 * 5
    pd.testing.assert_frame_equal(fast, plain)
