"""Everything a user asks of a huge sweep answers in seconds (issue 25): a document's experiments whose folders
do not exist are planned, listed and summed in bulk (FreshRun, PendingRun), names and values come from the
axes, --json streams, -P prints long tables in pieces, rank 0 keeps nothing per job. Each bulk path is checked
against the same sweep looked at experiment by experiment (a plain list of its experiments takes no bulk
path): the output is the same, byte for byte."""
import io
import json
import math
import os
import tracemalloc

import pytest
from experiments import Deterministic
from huge_sweep_helpers import documents, expand, run_some, text

from cluster_work import reporting
from cluster_work.backends import SequentialExecutor
from cluster_work.config import dotted
from cluster_work.errors import StoreError
from cluster_work.expansion import expand_all
from cluster_work.indented_json import Rendered, indented, write_indented
from cluster_work.planning import FreshRun, Jobs, make_plan
from cluster_work.reporting import print_plan, print_progress, write_progress_json
from cluster_work.selection import Policy, Selection
from cluster_work.store import MARKER, ExperimentStore
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import Outcome, OutcomeKind, Segment

DOCUMENTS = {  # one document each: the fast way of naming (itertools over the axes) and every fallback
    "grid": {"grid": {"lr": [0.1, 0.01, 1e-5], "model": {"width": [8, 16]}}},
    "grid and list": {"grid": {"lr": [0.1, 0.2]}, "list": {"s": [0, 1, 2], "t": ["x y", "z", "w"]}},
    "to escape": {"grid": {"p": ["a/b", "c", "d\x01"]}},
    "clashing names": {"grid": {"q": [1, "1", 2.0, "2.0"]}},
    "too long for a folder": {"grid": {"q": ["x" * 150, "y"], "r": ["z" * 60, "w"]}},
    "a dot": {"grid": {"": [".", "a"]}},
    "random": {"random": {"samples": 7, "params": {"u": {"uniform": [0, 1]}, "k": [1, 2]}}},
    "nothing varies": {},
}


@pytest.mark.parametrize("key", DOCUMENTS, ids=list(DOCUMENTS))
def test_names_folders_and_values_from_the_axes_are_each_experiments(tmp_path, key):
    [document] = expand_all([{"name": "d", "repetitions": 1, "iterations": 1, "path": str(tmp_path),
                              **DOCUMENTS[key]}], warn=lambda message: None).documents
    experiments = list(document)
    assert list(document.folder_parts()) == [e.params_part for e in experiments]
    assert list(document.names()) == [e.name for e in experiments]

    def encode(path, value):
        return f"{dotted(path)}={value!r}"

    joined = ["; ".join(encode(p, v) for p, v in e.varied.items()) for e in experiments]
    assert list(document.joined_points(encode, "; ")) == joined
    for start in range(len(experiments) + 2):  # from any experiment on (a run far in), without those before it
        assert list(document.folder_parts(start)) == [e.params_part for e in experiments][start:]
        assert list(document.names(start)) == [e.name for e in experiments][start:]
        assert list(document.joined_points(encode, "; ", start)) == joined[start:]


@pytest.mark.parametrize("part", [slice(None), slice(5, 80, 7), slice(-3, None), slice(None, None, -9), slice(90, 99)],
                         ids=["all", "5:80:7", "-3:", "::-9", "past the end"])
def test_a_document_and_a_sweep_are_sliced_as_the_list_of_their_experiments(tmp_path, part):
    """Sequences of experiments made on demand: a slice is made one by one, as the list of them is sliced."""
    sweep = expand(tmp_path)
    names = [experiment.name for experiment in sweep]
    assert [experiment.name for experiment in sweep[part]] == names[part]
    document = sweep.documents[0]
    assert [experiment.name for experiment in document[part]] == names[:len(document)][part]


SELECTIONS = {"everything": (Selection(), Policy()), "-e walk": (Selection(experiments=("walk",)), Policy()),
              "-j 5 150 7": (Selection(jobs=(5, 150, 7)), Policy()), "-r 1": (Selection(repetition=1), Policy()),
              "-d": (Selection(), Policy(delete=True))}


@pytest.mark.parametrize("ran", [(), (0, 150, 5), (0, 140)], ids=["nothing ran", "some ran", "most ran"])
@pytest.mark.parametrize("selection", SELECTIONS, ids=list(SELECTIONS))
def test_list_and_jobs_are_those_of_planning_each_experiment(tmp_path, ran, selection):
    if ran:
        run_some(tmp_path, ran)
    whole = make_plan(expand(tmp_path), *SELECTIONS[selection], "test")
    each = make_plan(list(expand(tmp_path)), *SELECTIONS[selection], "test")
    assert any(isinstance(chunk, FreshRun) for chunk in whole.chunks()) == (selection in ("everything", "-e walk",
                                                                                         "-d"))
    assert not any(isinstance(chunk, FreshRun) for chunk in each.chunks())
    assert vars(whole.totals) == vars(each.totals)  # (-d: the rewrites too, only of experiments with a folder)
    assert whole.totals.rewrites == (sum(os.path.isdir(e.path) for e in expand(tmp_path)) if selection == "-d" else 0)
    assert [vars(job) for job in whole.jobs] == [vars(job) for job in each.jobs]
    assert text(print_plan, whole, as_json=True) == text(print_plan, each, as_json=True)
    random_line = "searched: 6 random samples, seed"  # a document's line: a list of experiments has none
    listed = text(print_plan, whole)
    assert [line for line in listed.splitlines() if not line.startswith(random_line)] == text(
        print_plan, each).splitlines()
    assert ("searched" in listed) == (selection != "-e walk")


def test_a_changed_config_shows_in_the_list_beside_fresh_runs(tmp_path):
    run_some(tmp_path, (0, 40, 3))
    edited = documents(tmp_path)
    edited[0]["params"]["fail_rep"] = 0  # an edit of the config: every stored "walk" has other params now
    whole = make_plan(expand_all(edited, Deterministic._default_params), Selection(), Policy(), "test")
    each = make_plan(list(expand_all(edited, Deterministic._default_params)), Selection(), Policy(), "test")
    assert whole.totals.changed == each.totals.changed == 14
    assert text(print_plan, whole, as_json=True) == text(print_plan, each, as_json=True)
    assert "config changed (fail_rep)" in text(print_plan, whole)


@pytest.mark.parametrize("full", [False, True], ids=["-p", "-P"])
@pytest.mark.parametrize("ran", [(), (0, 150, 5), (0, 140)], ids=["nothing ran", "some ran", "most ran"])
def test_progress_and_its_json_are_those_of_each_experiment(tmp_path, ran, full):
    if ran:
        run_some(tmp_path, ran)
    whole, each = expand(tmp_path), list(expand(tmp_path))
    assert text(print_progress, whole, full) == text(print_progress, each, full)
    data = text(write_progress_json, whole, full)
    assert data == text(write_progress_json, each, full)
    figures = json.loads(data)
    assert len(figures["experiments"]) == len(each)
    assert figures["total"]["pending"] == sum(e.repetitions for e in each) - sum(
        figures["total"][state] for state in ("finished", "failed", "partial", "running", "stopped"))


def test_a_long_full_progress_is_printed_in_pieces_with_the_same_rows(tmp_path, monkeypatch):
    run_some(tmp_path, (0, 60, 4))
    whole = text(print_progress, expand(tmp_path), True)
    monkeypatch.setattr(reporting, "PIECE_ROWS", 7)
    pieces = text(print_progress, expand(tmp_path), True)

    def rows(output):  # each row's cells (a piece's columns are as wide as its own cells)
        return [[cell.strip() for cell in line.split("│")] for line in output.splitlines() if line.startswith("│")]

    assert rows(pieces) == rows(whole)
    assert pieces.count("Repetitions (continued)") == math.ceil((72 * 2 + 3 + 3 + 6) / 7) - 1
    assert "Progress (from the results on disk) (continued)" in pieces and "(continued)" not in whole


DUMPED = {
    "flat and nested": {"a": 1, "b": {"c": [1, 2.5, None, True], "d": {}}, "e": [], "f": "é\n\"x\"",
                        "g": float("nan"), "h": [{"x": 1}, {}]},
    "empty": {},
    "lists of items": {"items": [{"name": "x", "n": 1, "v": None}, {"name": "y", "n": [1]}, {}], "after": 1},
    "an empty list of items": {"items": [], "after": {"k": "v"}},
}


@pytest.mark.parametrize("key", DUMPED, ids=list(DUMPED))
def test_the_indented_writer_writes_what_json_dumps_writes(key):
    document = DUMPED[key]
    streamed = {name: iter(value) if name == "items" else value for name, value in document.items()}
    stream = io.StringIO()
    write_indented(stream, streamed)
    assert stream.getvalue() == json.dumps(document, indent=1)
    rendered = {"items": iter([Rendered(indented({"a": 1}, 2)), {"b": 2}])}
    stream = io.StringIO()
    write_indented(stream, rendered)
    assert stream.getvalue() == json.dumps({"items": [{"a": 1}, {"b": 2}]}, indent=1)


def test_a_run_keeps_nothing_per_job():
    """Rank 0's memory over a sweep of 10^6 jobs: what a run holds after n jobs does not grow with n."""
    [experiment] = expand_all([{"name": "x", "repetitions": 1, "iterations": 1, "path": "/nonexistent"}])

    def task(item, context):
        kind = OutcomeKind.FAILED if item.index == 3 else OutcomeKind.FINISHED
        return Outcome(item.index, f"job {item.index}", kind, seconds=0.5, error="boom" if item.index == 3 else None)

    def peak(jobs):
        segments = (Segment(index, experiment, 0) for index in range(jobs))
        tracemalloc.start()
        with SequentialExecutor(task) as executor:
            summary = run_segments(Jobs(jobs, segments), executor)  # (made as taken, as a plan's)
        held = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary.counts == {OutcomeKind.FINISHED: jobs - 1, OutcomeKind.FAILED: 1}
        assert [o.label for o in summary.failures()] == ["job 3"] and summary.not_started == 0
        assert summary.finished_seconds == 0.5 * (jobs - 1) and summary.longest_finished == 0.5
        return held

    assert peak(20_000) - peak(2_000) < 500_000  # ~0.7 KB a job before: 12 MB


def test_a_config_is_read_once_and_only_if_ours(tmp_path):
    ours, theirs, folder = (ExperimentStore(str(tmp_path / name)) for name in ("ours", "theirs", "folder"))
    ours.write_config({"name": "x", "params": {"a": 1}}, sync=False)
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "config.yml").write_text("name: mine\n")
    (tmp_path / "folder" / "config.yml").mkdir(parents=True)
    assert ours.read_config(own=True) == ours.read_config() == {"name": "x", "params": {"a": 1}}
    assert theirs.read_config(own=True) is None and theirs.read_config() == {"name": "mine"}
    assert folder.read_config(own=True) is None  # as `is_ours` says of what it cannot read
    with pytest.raises(StoreError):
        folder.read_config()
    (tmp_path / "ours" / "config.yml").write_bytes(MARKER.encode() + b"\r\nname: y\n")
    assert ours.read_config(own=True) == {"name": "y"} and ours.is_ours()
