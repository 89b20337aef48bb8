"""Rank 0 sends short items to the MPI leaders in batches (one message for many: a leader never waits for
rank 0 between them), long ones one at a time (with one prefetched: the tail of a heterogeneous sweep stays
even); either way every item runs once, with the results a run without MPI gives."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import comparable, mpiexec, run_mpiexec, script_env

from cluster_work.backends.mpi_dispatch import HOLD_SECONDS, MAX_DEPTH, SHORT_SECONDS, batch_depth

SCRIPT = """
import json, random, sys, time
from cluster_work import ClusterWork
from cluster_work.backends import mpi_dispatch
from cluster_work.backends.mpi import MPIExecutor
from cluster_work.expansion import expand_all
from cluster_work.planning import apply_plan, make_plan
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import OutcomeKind, RunSettings


class Draws(ClusterWork):  # draws from the generator seeded for (experiment, rep, iteration); sleeps `sleep` s

    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        time.sleep(config["params"]["sleep"])
        return {"draw": random.random()}


folder, repetitions, sleep = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
if len(sys.argv) > 4:  # seconds of work a leader holds: what makes an item short or long
    mpi_dispatch.HOLD_SECONDS = float(sys.argv[4])
points = repetitions // 3  # a grid of fresh experiments: each batch's configs written together (ExperimentTask.prepare)
document = {"name": "batch", "repetitions": 3, "iterations": 2, "path": folder, "params": {"sleep": sleep},
            "grid": {"point": list(range(points))}}
with MPIExecutor(ExperimentTask(Draws, RunSettings(log_level="WARNING")), finalize=False) as executor:
    if executor is not None:
        plan = make_plan(expand_all([document], {"sleep": 0.0, "point": 0}), Selection(), Policy(), "test")
        apply_plan(plan)
        summary = run_segments(plan.jobs, executor)
        print(json.dumps({"finished": summary.counts[OutcomeKind.FINISHED], "messages": executor.job_messages(),
                          "outcome_messages": executor.outcome_messages(),
                          "iterations": executor.figures.iterations_done()}))
"""


def run_sweep(tmp_path: Path, name: str, jobs: int, sleep: float, ranks: int, *hold: str) -> dict:
    """A sweep of `jobs` repetitions (3 per grid point) run by the script under mpiexec with `ranks` ranks (1:
    without mpiexec, in one process); `hold`: HOLD_SECONDS there, if given."""
    script = tmp_path / "batches.py"
    script.write_text(SCRIPT)
    args = [str(script), str(tmp_path / name), str(jobs), str(sleep), *hold]
    if ranks == 1:
        result = subprocess.run([sys.executable, *args], env=script_env(), capture_output=True, text=True, timeout=300)
    else:
        result = run_mpiexec([mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", *args], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.processes
def test_short_items_reach_the_leaders_in_batches_and_give_the_results_of_a_run_without_mpi(tmp_path):
    # items of about 1 ms (under SHORT_SECONDS); 10 s of them held: every leader holds MAX_DEPTH of them
    figures = run_sweep(tmp_path, "mpi", 300, 0.0, 3, "10")
    assert figures["finished"] == 300
    # one message per item without batches; about 20 with them on an idle machine, 82 seen on a loaded one
    # (an item that takes over SHORT_SECONDS there goes alone): half is far from both
    assert figures["messages"] <= 300 // 2
    # their outcomes come back several to a message too (mpi_reports): about a quarter of what a leader holds
    assert figures["outcome_messages"] <= 300 // 2
    assert figures["iterations"] == 300 * 2  # what the live display counts: every iteration once
    alone = run_sweep(tmp_path, "alone", 300, 0.0, 1)
    assert alone == {"finished": 300, "messages": 0, "outcome_messages": 0, "iterations": 600}
    assert comparable(tmp_path / "mpi").equals(comparable(tmp_path / "alone"))


@pytest.mark.processes
def test_long_items_are_sent_one_at_a_time(tmp_path):
    # 2 iterations of 30 ms each, not short: a leader holds its running item and one more
    assert 2 * 0.03 > SHORT_SECONDS
    figures = run_sweep(tmp_path, "mpi", 12, 0.03, 3)
    assert figures == {"finished": 12, "messages": 12, "outcome_messages": 12,  # each outcome as its item ends
                       "iterations": 24}


@pytest.mark.parametrize(("typical", "depth"), [
    (None, 2),  # nothing known yet: one prefetched
    (HOLD_SECONDS, 2),
    (SHORT_SECONDS, 2),  # not short: one prefetched keeps a heterogeneous sweep's tail even
    (SHORT_SECONDS / 2, int(HOLD_SECONDS / (SHORT_SECONDS / 2))),  # about HOLD_SECONDS of them
    (HOLD_SECONDS / 1000, MAX_DEPTH),
    (0.0, MAX_DEPTH),
], ids=["unknown", "long", "not-short", "short", "tiny", "zero"])
def test_batch_depth(typical, depth):
    assert batch_depth(typical) == depth
