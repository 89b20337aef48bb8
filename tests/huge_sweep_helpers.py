"""Sweeps for the tests of issue 25's bulk paths (a document's experiments without folders counted, listed and
summed in bulk): a few documents, some of whose experiments ran (really, in this process), so that the same
sweep can be looked at whole (by documents: the bulk paths) and as a plain list of its experiments (one by
one: the reference)."""
from __future__ import annotations

import io
from pathlib import Path

from experiments import Deterministic

from cluster_work.backends import SequentialExecutor
from cluster_work.expansion import Expansion, expand_all
from cluster_work.planning import make_plan
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.stopping import stop_signals_handled
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import RunSettings


def documents(root: Path, store: str = "folders") -> list[dict]:
    """A grid of 8 x 9 (two repetitions, one fails), a list, one experiment without variation, and a
    random search: 72 + 3 + 1 + 6 experiments, more than a screenful; `store`: each document's."""
    path = str(root / "out")
    return [{**document, **({"store": store} if store != "folders" else {})} for document in [
        {"name": "walk", "repetitions": 2, "iterations": 3, "path": path, "params": {"fail_rep": 1},
         "grid": {"step": [0.5 * k for k in range(1, 9)], "fail_at": [-1, 0, 1, 2, 5, 6, 7, 8, 9]}},
        {"name": "listed", "repetitions": 1, "iterations": 2, "path": path,
         "list": {"step": [1.0, 2.0, 3.0], "sleep": [0.0, 0.0, 0.0]}},
        {"name": "solo", "repetitions": 3, "iterations": 2, "path": path},
        {"name": "searched", "repetitions": 1, "iterations": 2, "path": path,
         "random": {"samples": 6, "params": {"step": {"uniform": [0.0, 1.0]}}}},
    ]]


def expand(root: Path, store: str = "folders") -> Expansion:
    return expand_all(documents(root, store), Deterministic._default_params, warn=lambda message: None)


def run_some(root: Path, jobs: tuple[int, ...], store: str = "folders") -> None:
    """Run the jobs `jobs` (a -j slice) of the sweep, as a run with -j does (failures included)."""
    plan = make_plan(expand(root, store), Selection(jobs=jobs), Policy(), "test")
    with stop_signals_handled(), SequentialExecutor(ExperimentTask(Deterministic, RunSettings(sync=False))) as executor:
        run_segments(plan.jobs, executor)  # (a fresh stop flag: a test before may have left one set)


def text(write, *args, **options) -> str:
    """What `write(*args, stream=..., **options)` writes."""
    stream = io.StringIO()
    write(*args, stream=stream, **options)
    return stream.getvalue()
