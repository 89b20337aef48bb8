"""The executor contract (cluster_work/backends/base.py) as checks of one executor each: one outcome per
item, cancels of queued and running items, stops, segments up to a target and on to the end. Run by
tests/test_backends.py in-process against every backend, and by the ranks of a real mpiexec."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import repetition_files
from backend_clients import Counting
from polls import wait_for

from cluster_work.compact_catalog import catalog
from cluster_work.compact_store import is_compact
from cluster_work.expansion import expand_all
from cluster_work.paths import compact_root
from cluster_work.stopping import request_stop
from cluster_work.vocabulary import ConfigWrite, OutcomeKind, RunSettings, Segment

SETTINGS = RunSettings(log_level="WARNING", sync=False)
COMPACT = "compact-store"  # a folder of this name holds experiments in the compact store (`store: compact`)
LAYOUTS = [pytest.param("folders", id="folders"), pytest.param(COMPACT, id="compact")]


def experiment(folder: Path, name: str = "c", iterations: int = 4, repetitions: int = 3, **params):
    """An experiment in `folder`, in the compact store where a folder above is named COMPACT (see `LAYOUTS`)."""
    store = {"store": "compact"} if COMPACT in folder.parts else {}
    [expanded] = expand_all([{"name": name, "repetitions": repetitions, "iterations": iterations,
                              "path": str(folder), "params": params, **store}], Counting._default_params)
    return expanded


def rows(expanded, rep: int) -> list[dict]:
    """The saved rows of a repetition, as they are now (the compact store's view read afresh)."""
    if is_compact(expanded.config):
        return catalog(compact_root(expanded.config["_experiment_path"]), force=True).repetition(
            expanded.name, rep).rows()
    return repetition_files.rows(expanded, rep)


def collect(executor, count: int) -> dict[int, object]:
    outcomes = {}
    for _ in range(count):
        outcome = executor.next_outcome()
        assert outcome.index not in outcomes, "two outcomes for one item"
        outcomes[outcome.index] = outcome
    assert executor.in_flight() == 0
    return outcomes


def check_one_outcome_per_item_and_segments_up_to_a_target(executor, folder: Path) -> None:
    exp = experiment(folder / "a")
    items = [Segment(0, exp, 0, config=ConfigWrite.IF_MISSING, columns=("total",)),
             Segment(1, exp, 1, until=2, columns=("total",)), Segment(2, exp, 2, until=9)]
    for item in items:
        executor.submit(item)
    outcomes = collect(executor, len(items))
    assert outcomes[0].kind == OutcomeKind.FINISHED and outcomes[0].iterations_run == 4
    assert [v["total"] for v in outcomes[0].values] == [0, 1, 3, 6]
    assert outcomes[1].kind == OutcomeKind.REACHED and outcomes[1].iterations_done == 2
    assert [v["iteration"] for v in outcomes[1].values] == [0, 1] and len(rows(exp, 1)) == 2
    assert outcomes[2].kind == OutcomeKind.FINISHED  # `until` past the end: the repetition's end
    executor.submit(Segment(3, exp, 1, columns=("total",)))  # on from the rung, from the saved state
    [continued] = collect(executor, 1).values()
    assert continued.kind == OutcomeKind.FINISHED and continued.iterations_run == 2
    # the rows up to its target, old and new; restored from the rung's state (a reset would give 2, 5)
    assert [v["total"] for v in continued.values] == [1, 3, 6, 10] == [r["total"] for r in rows(exp, 1)]
    executor.submit(Segment(4, exp, 0))
    [again] = collect(executor, 1).values()
    assert again.kind == OutcomeKind.ALREADY_FINISHED and again.iterations_run == 0


def check_cancel_of_a_queued_item(executor, folder: Path) -> None:
    exp = experiment(folder / "q", gate=str(folder / "q-gate"))
    count = executor.workers * 2 + 2  # more than the backend starts at once: the last ones wait
    for index in range(count):
        executor.submit(Segment(index, exp, index % 3 if index < 3 else 0, until=1))
    executor.cancel(count - 1)
    outcomes = collect(executor, count)
    assert outcomes[count - 1].kind in (OutcomeKind.CANCELLED, OutcomeKind.ALREADY_FINISHED)
    assert outcomes[count - 1].iterations_run == 0


def check_cancel_of_a_running_item(executor, folder: Path) -> None:
    gate = folder / "r-gate"
    exp = experiment(folder / "r", iterations=6, gate=str(gate), gate_after=2)
    executor.submit(Segment(0, exp, 0))
    wait_for(lambda: len(rows(exp, 0)) == 2, "two saved rows")  # now waiting at the gate, in iteration 2
    executor.cancel(0)
    executor.cancel(0)  # twice is once
    gate.touch()
    [outcome] = collect(executor, 1).values()
    assert outcome.kind == OutcomeKind.CANCELLED
    assert outcome.iterations_done == 3 and len(rows(exp, 0)) == 3  # it stopped after its current iteration
    executor.cancel(0)  # after it ended: nothing happens


def check_stop(executor, folder: Path) -> None:
    gate = folder / "s-gate"
    exp = experiment(folder / "s", iterations=5, gate=str(gate), gate_after=1)
    for index in range(3):  # running (held at the gate after a row) or still queued: all stop
        executor.submit(Segment(index, exp, index))
    request_stop()
    executor.forward_stop()
    gate.touch()
    outcomes = collect(executor, 3)
    assert {o.kind for o in outcomes.values()} == {OutcomeKind.INTERRUPTED}
    assert all(len(rows(exp, rep)) < 5 for rep in range(3))


def check_busy_time(executor, folder: Path) -> None:
    """The busy worker-seconds (what the live display averages) cover every iteration run, fit within the
    workers' time, and stand still once nothing is held, whatever a snapshot of `busy` said."""
    exp = experiment(folder / "b", repetitions=4)
    before, started = executor.figures.busy_seconds(), time.monotonic()
    for rep in range(4):
        executor.submit(Segment(rep, exp, rep))
    collect(executor, 4)
    busy, elapsed = executor.figures.busy_seconds() - before, time.monotonic() - started
    ran = sum(row["iteration_time"] for rep in range(4) for row in rows(exp, rep))
    assert 0 < ran <= busy <= executor.workers * elapsed, (ran, busy, elapsed)
    assert executor.in_flight() == 0 and executor.figures.busy_seconds() - before == busy  # idle: it stands still


CHECKS = [check_one_outcome_per_item_and_segments_up_to_a_target, check_cancel_of_a_queued_item,
          check_cancel_of_a_running_item, check_stop, check_busy_time]
