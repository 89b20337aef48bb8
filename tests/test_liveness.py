"""Rank 0's bookkeeping of its workers, without MPI: who is silent (liveness), what a death or a broken group
means for the items a leader holds (mpi_roster), how a stall shows (display, -p), which launcher to kill."""
import os
import signal
import subprocess
import sys
import time

import pytest

from cluster_work.backends.mpi_ft import ulfm_enabled
from cluster_work.backends.mpi_launcher import kill_launchers, launcher_pids
from cluster_work.backends.mpi_roster import Roster
from cluster_work.config import validate_experiment
from cluster_work.display import RunDisplay
from cluster_work.errors import ConfigError
from cluster_work.liveness import Liveness, Silence, Stalled, short_duration
from cluster_work.provenance import read_runs, run_stalled, run_started, stall_lines


class Item:
    def __init__(self, index, experiment="exp"):
        self.index, self.label = index, f"item {index}"
        self.experiment = type("Experiment", (), {"name": experiment})()


def test_a_busy_worker_silent_past_the_floor_and_its_iterations_is_stalled():
    watch = Liveness(floor=60.0, factor=10.0)
    watch.started(3, "fast", now=0.0)
    watch.heard(3, iterations=20, now=1.0)  # 0.05 s per iteration
    assert watch.typical("fast") == pytest.approx(0.05)
    assert watch.stalled(now=60.5) == []  # the floor: never sooner than 60 s
    silence, = watch.stalled({3: "node17"}, now=253.0)
    assert silence == Silence(3, "node17", 252.0, pytest.approx(0.05))
    assert silence.describe() == "rank 3 on node17: no word for 4m12s; its iterations take 0.05 s"
    watch.heard(3, iterations=1, now=254.0)
    assert watch.stalled(now=255.0) == []  # heard from again


def test_slow_iterations_raise_the_limit_and_idle_workers_are_never_stalled():
    watch = Liveness(floor=60.0)
    watch.started(1, "slow", now=0.0)
    watch.heard(1, iterations=1, now=600.0)  # ten minutes per iteration
    assert watch.limit(1) == 6000.0
    assert watch.stalled(now=5000.0) == []
    watch.idle(1)
    assert watch.stalled(now=10**6) == [] and watch.limit(1) is None
    watch.started(2, "unknown", now=0.0)  # nothing timed yet: the floor alone
    silence, = watch.stalled(now=61.0)
    assert silence.typical is None and "none of its iterations timed yet" in silence.describe()


def test_each_worker_is_held_to_its_own_iterations_and_a_new_one_to_everyones():
    """A fast host's workers do not set the expectation for a slow host's: each worker's own iterations
    of the experiment count once it has timed any; a worker that has not is held to all workers' figure."""
    watch = Liveness(floor=60.0, factor=10.0)
    watch.started(1, "exp", now=0.0)
    watch.heard(1, iterations=20, now=1.0)  # the fast host: 0.05 s per iteration
    watch.idle(1)  # its item done
    watch.started(2, "exp", now=0.0)
    watch.heard(2, iterations=1, now=30.0)  # the slow host: 30 s per iteration
    assert watch.stalled(now=230.0) == []  # 200 s silent: less than 10 of its own iterations
    assert watch.typical("exp", 2) == pytest.approx(30.0) and watch.limit(2) == pytest.approx(300.0)
    silence, = watch.stalled({2: "slow17"}, now=400.0)
    assert silence.describe() == "rank 2 on slow17: no word for 6m10s; its iterations take 30s"
    watch.started(3, "exp", now=0.0)  # nothing of its own yet: everyone's 31 s over 21 iterations
    assert watch.typical("exp", 3) == watch.typical("exp") == pytest.approx(31.0 / 21)


@pytest.mark.parametrize("seconds, text", [(0.05, "0.05 s"), (45.2, "45s"), (252, "4m12s"), (3780, "1h03m")],
                         ids=["sub-second", "seconds", "minutes", "hours"])
def test_short_duration(seconds, text):
    assert short_duration(seconds) == text


def test_a_dead_leader_fails_its_running_item_and_gives_back_what_it_prefetched():
    roster = Roster([1, 2], hosts=["n0", "n1", "n2"])
    a, b, c = Item(0), Item(1), Item(2)
    roster.assign(1, a)
    roster.assign(1, b)  # prefetched
    roster.assign(2, c)
    assert roster.holding() == 3 and roster.busy() == 2 and roster.holder_of(1) == 1
    assert roster.died(1) == (a, [b])
    assert roster.died(1) == (None, [])  # once
    assert roster.serving == [2] and roster.holding() == 1
    assert roster.releasable([1, 2, 3]) == [2, 3]
    assert roster.lost_line() == "MPI ranks lost during the run: 1 (n1)"


def test_a_leader_whose_group_broke_retires_but_is_released_at_the_end():
    roster = Roster([1, 3], hosts=["n0", "n1", "n1", "n2", "n2"])
    a, b = Item(0), Item(1)
    roster.assign(3, a)
    roster.assign(3, b)
    assert roster.ended(3, iterations=4) is a
    assert roster.retire(3) == [b]
    roster.died(4)  # its member
    assert roster.serving == [1]
    assert roster.releasable([1, 3]) == [1, 3] and roster.lost_line() == "MPI ranks lost during the run: 4 (n2)"
    roster.died(1)
    assert roster.serving == [] and roster.holding() == 0


def test_stalled_leaves_out_the_dead_and_names_hosts():
    roster = Roster([1, 2], hosts=["n0", "n1", "n2"], liveness=Liveness(floor=0.0))
    roster.assign(1, Item(0))
    roster.assign(2, Item(1))
    roster.died(2)
    time.sleep(0.01)
    assert [(s.worker, s.host) for s in roster.stalled()] == [(1, "n1")]


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("0", False), ("", False)],
                         ids=["one", "true", "zero", "unset"])
def test_ulfm_is_on_where_the_launcher_says(value, on):
    assert ulfm_enabled({"OMPI_MCA_mpi_ft_enable": value} if value else {}) == on


@pytest.mark.parametrize("value", [0, -1, "60", True, float("nan")], ids=["zero", "negative", "text", "bool", "nan"])
def test_a_bad_stall_timeout_in_the_config_is_one_error_naming_the_key(value):
    document = {"name": "e", "repetitions": 1, "iterations": 1, "path": "out", "stall_timeout": value}
    with pytest.raises(ConfigError, match="stall_timeout.*positive number of seconds"):
        validate_experiment(document, "config.yml", 1)
    validate_experiment({**document, "stall_timeout": 300}, "config.yml", 1, warn=pytest.fail)  # a known key


def test_the_live_line_says_stalled_instead_of_a_growing_estimate():
    silences = [Silence(3, "node17", 252.0, 0.05)]
    display = RunDisplay(lambda: 100, 3, lambda: 40, lambda: 3, stalled=lambda: silences)
    line = display.status_line()
    assert "left stalled" in line and line.endswith("; rank 3 on node17: no word for 4m12s; its iterations take 0.05 s")
    assert display.left(40, 2.0) == "stalled"  # what the live bar shows in its "left" column too
    assert "left ~" in RunDisplay(lambda: 100, 3, lambda: 40, lambda: 3).status_line()


def test_p_shows_the_stalls_of_a_run_that_has_not_ended(tmp_path):
    folder = str(tmp_path)
    run = run_started([folder], ["exp.py"], "3 MPI workers", ["n0"], 4)
    run_stalled([folder], run, [Silence(3, "node17", 30.0, 0.05)])
    runs = read_runs(folder)
    line, = stall_lines(runs, now=runs[0]["stalled"][0]["silent_since"] + 252)
    assert line == f"stalled in run {run}: rank 3 on node17: no word for 4m12s; its iterations take 0.05 s"
    run_stalled([folder], run, [])  # heard from again
    assert stall_lines(read_runs(folder)) == []


def test_the_stalled_error_is_one_line_naming_ranks_hosts_and_the_limit():
    text = str(Stalled([Silence(3, "node17", 300.0, 0.05), Silence(5, "node18", 290.0, None)], 240.0))
    assert "\n" not in text and "rank 3 on node17" in text and "rank 5 on node18" in text and "(4m00s)" in text


LAUNCHER = """#!/bin/sh
"{python}" -c 'import sys; from cluster_work.backends.mpi_launcher import {call}; print({call}())'
sleep 30
"""


@pytest.mark.processes
@pytest.mark.parametrize("name, found", [("prterun", True), ("mpiexec", True), ("slurmstepd", False)],
                         ids=["prterun", "mpiexec", "not-a-launcher"])
def test_the_launcher_above_a_rank_is_found_by_name(tmp_path, name, found):
    script = tmp_path / name
    script.write_text(LAUNCHER.format(python=sys.executable, call="launcher_pids"))
    script.chmod(0o755)
    process = subprocess.Popen([str(script)], stdout=subprocess.PIPE, text=True)
    try:
        printed = process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()
    assert printed == (f"[{process.pid}]" if found else "[]")


@pytest.mark.processes
def test_kill_launchers_sigkills_the_launcher_above(tmp_path):
    script = tmp_path / "prterun"
    script.write_text(LAUNCHER.format(python=sys.executable, call="kill_launchers"))
    script.chmod(0o755)
    process = subprocess.Popen([str(script)], stdout=subprocess.PIPE, text=True)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert launcher_pids(os.getpid()) == [] and kill_launchers(os.getpid()) == []  # pytest has none above
