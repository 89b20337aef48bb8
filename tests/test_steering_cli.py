"""Steered campaigns end to end, through the real command line (tests/experiments.py Steered).

Successive halving on 81 points, R = 81, r = 1, eta = 3, where the loss of point c ranks it by
(37 c + 11) mod 81: exactly 297 iterations (rows on disk, and iterate calls: a continued repetition
restores its state), 54 / 18 / 6 / 2 points stopped after 1 / 3 / 9 / 27 iterations, and the same
decisions and results sequentially, with -n 2, under MPI and after a kill -9 in the middle. The policies
below are users' policies, loaded by the runs as `test_steering_cli:<Class>`.
"""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import SCRIPT, comparable, run_cli, run_mpi, script_env
from steering_helpers import STORES, assert_compact, calls, decisions, journal_file, rows_on_disk, status, write_config

from cluster_work import Policy, load_results, stop_reasons
from cluster_work.steering import Journal

GRID = list(range(81))
HALVING = {"policy": "successive_halving", "metric": "loss", "min_iterations": 1, "reduction_factor": 3}


# -- users' policies (the runs import this module) --------------------------------------------------------------

class AddPoints(Policy):
    """Adds c=5 and c=7 (2 iterations) at the start, then one point per result told while fewer than 4 were
    added, named from how many experiments exist then (so a longer grid adds other points)."""

    def start(self, campaign):
        self.configured = len(campaign.experiments)
        campaign.add({"c": 5})
        campaign.add({"c": 7}, iterations=2)

    def on_results(self, campaign, results):
        if len(campaign.experiments) - self.configured < 4:
            campaign.add({"c": 100 + len(campaign.experiments)})


class Raises(Policy):
    def on_results(self, campaign, results):
        raise ValueError(f"cannot use {results[0].experiment}")


class StopTheOthers(Policy):
    """On the first result, stops every other experiment, running or not."""

    def on_results(self, campaign, results):
        for experiment in campaign.experiments:
            if experiment.name != results[0].experiment:
                campaign.stop(experiment.name, reason="enough")


# -- helpers ----------------------------------------------------------------------------------------------------

def expected_rows(c):
    """Where point c ends: its rank (37 c + 11) mod 81 against the survivors of each rung."""
    rank = (37 * c + 11) % 81
    return 81 if rank < 1 else 27 if rank < 3 else 9 if rank < 9 else 3 if rank < 27 else 1


def assert_halving_on_81(folder):
    assert rows_on_disk(folder) == {f"c{c}": expected_rows(c) for c in GRID}
    assert sum(rows_on_disk(folder).values()) == 297
    assert Counter(map(expected_rows, GRID)) == Counter({1: 54, 3: 18, 9: 6, 27: 2, 81: 1})


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The 81-point campaign run once per store, in this process's way (no -n): the reference of the other runs."""
    made = {}

    def reference(store):
        if store not in made:
            folder = write_config(tmp_path_factory.mktemp(f"sequential-{store}"), GRID, 81, HALVING,
                                  params={"gate_at": 3}, store=store)
            made[store] = folder, run_cli("Steered", "config.yml", cwd=folder, check_rc=0)
        return made[store]
    return reference


@pytest.fixture(params=STORES)
def sequential(request, references):
    """(folder, result, store) of the reference run in each store."""
    return (*references(request.param), request.param)


def assert_same_campaign(folder, reference):
    """The same decisions and the same results (load_results, of either store) as the reference run's."""
    assert decisions(folder) == decisions(reference)
    assert comparable(folder / "results").equals(comparable(reference / "results"))


# -- tests ------------------------------------------------------------------------------------------------------

@pytest.mark.processes
def test_successive_halving_on_81_points_costs_297_iterations_sequentially_and_with_two_workers(sequential, tmp_path):
    folder, result, store = sequential
    assert_halving_on_81(folder)
    assert calls(folder) == 297  # no iteration computed twice: every continued repetition restored its state
    assert ("steered search (successive halving): done; 81 experiments; repetitions 1 finished, 80 stopped; "
            "stopped after 1/3/9/27 iterations: 54/18/6/2; 297 iterations this run; best search__c61 (loss 0.0123457)"
            in result.stderr)
    reasons = stop_reasons(folder / "config.yml")
    assert len(reasons) == 80 and ("search__c61", 0) not in reasons
    assert reasons[("search__c1", 0)] == ("successive halving: loss 49 after 1 iteration ranks 49 of 81; the best 27 "
                                          "go on")
    assert (status(folder, "c1")["state"], status(folder, "c1")["iterations_done"]) == ("stopped", 1)
    frame = load_results(folder / "config.yml")  # why each was stopped, in a column of its rows
    last = frame.groupby(["experiment", "rep"]).last()
    assert last.stop_reason.dropna().to_dict() == reasons and last.stop_reason.isna().sum() == 1

    journal = journal_file(folder).read_bytes()
    again = run_cli("Steered", "config.yml", cwd=folder, check_rc=0)  # a rerun of a finished campaign runs nothing
    assert "; 0 iterations this run;" in again.stderr and calls(folder) == 297
    assert journal_file(folder).read_bytes() == journal

    shown = run_cli("Steered", "config.yml", "-p", cwd=folder, check_rc=0).stdout
    assert "1: 54 3: 18 9: 6 27: 2" in shown and "search__c61 (loss 0.0123457)" in shown
    figures = json.loads(run_cli("Steered", "config.yml", "-p", "--json", cwd=folder, check_rc=0).stdout)
    [campaign] = figures["campaigns"]
    assert campaign["stopped_per_rung"] == {"1": 54, "3": 18, "9": 6, "27": 2}
    assert (campaign["stopped"], campaign["finished"], campaign["planned_iterations"], campaign["done"]) == (
        80, 1, 0, True)
    assert (figures["total"]["finished"], figures["total"]["stopped"]) == (1, 80)  # as the store's statuses say

    parallel = write_config(tmp_path, GRID, 81, HALVING, params={"gate_at": 3}, store=store)
    run_cli("Steered", "config.yml", "-n", "2", cwd=parallel, check_rc=0)
    assert_same_campaign(parallel, folder)


@pytest.mark.processes
def test_on_the_compact_store_a_campaign_decides_and_saves_what_it_does_in_folders(references):
    """Stops and promotions (successive halving's rungs) on the compact store: the decisions, rows, stop
    reasons and statuses of the default layout, and no file of cluster_work's per point."""
    (compact, _), (folders, _) = references("compact"), references("folders")
    assert_same_campaign(compact, folders)
    assert stop_reasons(compact / "config.yml") == stop_reasons(folders / "config.yml")
    for point in ("c0", "c1", "c61"):  # stopped after 1 and 3 iterations; finished (promoted to the end)
        kept = ("state", "reason", "iterations_done", "iterations")
        assert {k: status(compact, point).get(k) for k in kept} == {k: status(folders, point).get(k) for k in kept}
    assert_compact(compact)


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
def test_under_mpi_the_decisions_and_results_are_the_same(references, tmp_path, store):
    under_mpi = write_config(tmp_path, GRID, 81, HALVING, params={"gate_at": 3}, store=store)
    run_mpi(3, "Steered", "config.yml", cwd=under_mpi, check_rc=0)
    assert_halving_on_81(under_mpi)
    assert_same_campaign(under_mpi, references(store)[0])
    assert_same_campaign(under_mpi, references("folders")[0])


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
def test_a_kill_9_in_the_middle_then_a_rerun_makes_the_same_decisions(references, tmp_path, store):
    killed = write_config(tmp_path, GRID, 81, HALVING, params={"gate_at": 3}, store=store)
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, SCRIPT, "Steered", "config.yml", "-n", "2"], cwd=killed,
                               env={**script_env(), "CW_TEST_GATE": str(gate)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(f"{gate}.waiting"):  # a point of rung 3 is on its way to rung 9: mid-campaign
        assert process.poll() is None and time.monotonic() < deadline, "the run never reached the gate"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    records = Journal(str(journal_file(killed))).read()
    assert not any(r["k"] == "finish" for r in records) and sum(rows_on_disk(killed).values()) < 297

    result = run_cli("Steered", "config.yml", "-n", "2", cwd=killed, check_rc=0)
    assert "repetitions 1 finished, 80 stopped" in result.stderr
    assert_halving_on_81(killed)
    assert_same_campaign(killed, references(store)[0])
    assert_same_campaign(killed, references("folders")[0])
    assert stop_reasons(killed / "config.yml") == stop_reasons(references("folders")[0] / "config.yml")
    assert 297 <= calls(killed) <= 297 + 2  # at most the iterations the kill cut short, one per worker


@pytest.mark.processes
@pytest.mark.parametrize("store", STORES)
def test_a_users_policy_adds_points_and_minus_d_starts_the_campaign_over(tmp_path, store):
    write_config(tmp_path, [0, 1], 3, {"policy": "test_steering_cli:AddPoints", "metric": "loss"}, store=store)
    result = run_cli("Steered", "config.yml", "-n", "2", cwd=tmp_path, check_rc=0)
    assert rows_on_disk(tmp_path) == {"c0": 3, "c1": 3, "c5_add0": 3, "c7_add1": 2, "c104_add2": 3, "c105_add3": 3}
    assert "6 experiments (4 added); repetitions 6 finished" in result.stderr
    assert "6 (4 added)" in run_cli("Steered", "config.yml", "-p", cwd=tmp_path, check_rc=0).stdout
    frame = load_results(tmp_path / "results")
    assert frame.groupby("experiment")["params.c"].first().to_dict() == {
        "search__c0": 0, "search__c1": 1, "search__c5_add0": 5, "search__c7_add1": 7, "search__c104_add2": 104,
        "search__c105_add3": 105}
    mine = tmp_path / "results" / "search" / "c104_add2" / "mine.txt"  # not cluster_work's: -d keeps it
    mine.write_text("mine")

    write_config(tmp_path, [0, 1, 2], 3, {"policy": "test_steering_cli:AddPoints", "metric": "loss"}, store=store)
    refused = run_cli("Steered", "config.yml", cwd=tmp_path, check_rc=2)
    assert "does not match: the experiment's grid, params, repetitions or iterations changed" in refused.stderr
    assert rows_on_disk(tmp_path)["c104_add2"] == 3  # nothing of the old campaign was touched

    before = calls(tmp_path)
    run_cli("Steered", "config.yml", "-d", cwd=tmp_path, check_rc=0)  # the journal goes, and the points it added
    assert rows_on_disk(tmp_path) == {"c0": 3, "c1": 3, "c2": 3, "c5_add0": 3, "c7_add1": 2, "c105_add2": 3,
                                      "c106_add3": 3}
    # all run anew (in folders, -d deleted the old points' repetition folders with their calls; the compact
    # store keeps an experiment's own files, as it never deletes a file)
    assert calls(tmp_path) - (before if store == "compact" else 0) == sum(rows_on_disk(tmp_path).values())
    assert mine.read_text() == "mine"
    if store == "compact":
        assert_compact(tmp_path)


CANCELLED = ("cancelled; worker process", "not run (cancelled)")  # (-v's words: reached its worker, taken back)


@pytest.mark.processes
@pytest.mark.parametrize("store", STORES)
def test_a_policy_stops_running_and_queued_repetitions_and_a_rerun_never_runs_them(tmp_path, store):
    """c1 waits in its iteration 1 (1 row saved) until c0 (which starts once c1 waits) finished and the policy
    stopped the others: then it is cancelled after that iteration (2 rows); so is c2, which waits there too,
    if the worker c0 had began it before the cancel came (else it never begins; begun just before, it may be
    cancelled in its instant iteration 0: 1 row); c3, behind c2, never begins. (Without c2's wait its 40 instant
    iterations and the beginning of c3 could come before the cancel.)"""
    write_config(tmp_path, [0, 1, 2, 3], 40, {"policy": "test_steering_cli:StopTheOthers", "metric": "loss"},
                 params={"gate_at": 1, "gate_c": [1, 2], "after_c": 0}, store=store)
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, SCRIPT, "Steered", "config.yml", "-n", "2", "-v"], cwd=tmp_path,
                               env={**script_env(), "CW_TEST_GATE": str(gate)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    # The gate opens once every cancel went out (-v logs each: c1's reached its worker; c2's too, or it was taken
    # back before it began, as c3's is): a loaded machine may pause the run between two of them while a gated
    # iteration goes on. The run cannot end before the gate opens, so this loop ends with those lines.
    lines, waiting = [], {"c1": ("cancelled; worker process",), "c2": CANCELLED, "c3": CANCELLED}
    for line in process.stderr:
        lines.append(line)
        waiting = {c: words for c, words in waiting.items()
                   if not any(f"search__{c} rep 0: {word}" in line for word in words)}
        if not waiting:
            break
    gate.touch()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + stderr
    assert "repetitions 1 finished, 3 stopped" in stderr
    assert stop_reasons(tmp_path / "results") == {(f"search__c{c}", 0): "enough" for c in (1, 2, 3)}
    rows = rows_on_disk(tmp_path)
    assert (rows["c0"], rows["c1"]) == (40, 2) and rows.get("c2", 0) <= 2 and "c3" not in rows, rows
    assert (status(tmp_path, "c1")["state"], status(tmp_path, "c1")["iterations_done"]) == ("stopped", 2)
    assert (status(tmp_path, "c2")["state"], status(tmp_path, "c2")["iterations_done"]) == ("stopped",
                                                                                         rows.get("c2", 0))
    assert (status(tmp_path, "c3")["state"], status(tmp_path, "c3")["iterations_done"]) == ("stopped", 0)
    progress = json.loads(run_cli("Steered", "config.yml", "-p", "--json", cwd=tmp_path, check_rc=0).stdout)
    assert (progress["total"]["finished"], progress["total"]["stopped"]) == (1, 3)
    rerun = run_cli("Steered", "config.yml", cwd=tmp_path, check_rc=0)  # c3 never ran: still the campaign's point
    assert "repetitions 1 finished, 3 stopped" in rerun.stderr and "skipped" not in rerun.stderr, rerun.stderr
    assert rows_on_disk(tmp_path) == rows
    if store == "compact":
        assert_compact(tmp_path)


@pytest.mark.processes
@pytest.mark.parametrize("store", STORES)
def test_a_repetition_cancelled_by_the_policys_failure_is_marked_interrupted_by_the_campaign_alone(tmp_path, store):
    """c1 waits in its iteration 1 while c0 runs to its end, whose result makes the policy raise: the campaign
    cancels c1, which stops after that iteration; its status ("interrupted", 2 iterations) is written once,
    by the run's own process (the campaign's), not by the worker that ran it."""
    write_config(tmp_path, [0, 1], 40, {"policy": "test_steering_cli:Raises", "metric": "loss"},
                 params={"gate_at": 1, "gate_c": 1, "after_c": 0}, store=store)
    gate = tmp_path / "gate"
    process = subprocess.Popen([sys.executable, SCRIPT, "Steered", "config.yml", "-n", "2", "-v"], cwd=tmp_path,
                               env={**script_env(), "CW_TEST_GATE": str(gate)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    # The gate opens only once c1's cancel reached its worker (-v logs that): the policy's error is logged
    # while the campaign decides, before the loop sends the cancels, so opening the gate on that line would
    # let c1 run on. The run cannot end before the gate opens, so this loop ends with that line.
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "search__c1 rep 0: cancelled; worker process" in line:
            break
    gate.touch()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, "".join(lines) + stderr
    assert any("raised in on_results" in line for line in lines), "".join(lines)  # the policy's failure cancelled it
    assert rows_on_disk(tmp_path) == {"c0": 40, "c1": 2}
    interrupted = status(tmp_path, "c1")
    assert (interrupted["state"], interrupted["iterations_done"], interrupted["iterations"]) == ("interrupted", 2, 40)
    assert interrupted["pid"] == process.pid and interrupted["mean_iteration_time"] >= 0


def test_a_policy_that_raises_stops_the_campaign_with_exit_1_and_keeps_the_rows(cli, tmp_path):
    write_config(tmp_path, [0, 1, 2], 2, {"policy": "test_steering_cli:Raises", "metric": "loss"})
    result = cli("Steered", "config.yml", cwd=tmp_path, check_rc=1)
    assert "Traceback" in result.stderr and 'raise ValueError(f"cannot use' in result.stderr
    assert ("steered search (test_steering_cli:Raises): stopped: steer.policy 'test_steering_cli:Raises' raised in "
            "on_results: ValueError: cannot use search__c0 (traceback in the log); fix the policy and rerun to "
            "resume") in result.stderr
    assert rows_on_disk(tmp_path) == {"c0": 2}  # its rows stay; nothing ran after the policy raised
    assert cli("Steered", "config.yml", cwd=tmp_path).returncode == 1  # the resumed policy raises again


@pytest.mark.parametrize("steer, args, message", [
    ({"policy": "successive_halving"}, (), "'steer.metric': must name a column that iterate() returns, got None"),
    ({"policy": "test_steering_cli:Missing"}, (), "'steer.policy': cannot load 'test_steering_cli:Missing'"),
    (HALVING, ("-r", "0"), "'steer': a steered campaign runs as a whole (its decisions were made from every "
                           "repetition's rows), so it does not go with -r, -i or -j; -d starts it over"),
])
def test_a_bad_steer_block_or_selection_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, steer, args, message):
    write_config(tmp_path, [0, 1], 3, steer)
    result = cli("Steered", "config.yml", *args, cwd=tmp_path, check_rc=2)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: config.yml: experiment 'search': {message}"), line
    assert not (tmp_path / "results").exists()


@pytest.mark.processes
def test_the_steered_plotter_colours_each_curve_by_where_it_stopped(sequential):
    from matplotlib.figure import Figure

    from plotwork.plotters import get_plotter

    folder, _, _ = sequential
    ax = Figure().subplots()
    get_plotter("steered")(load_results(folder / "results"), "loss", ax)
    assert len(ax.lines) == 81
    assert len({line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color())
                for line in ax.lines}) == 5
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "54 ended after 1 iteration", "18 ended after 3 iterations", "6 ended after 9 iterations",
        "2 ended after 27 iterations", "1 ended after 81 iterations"]


@pytest.mark.processes
@pytest.mark.parametrize("store", STORES)
def test_list_names_the_campaign_and_an_array_job_is_refused(tmp_path, store):
    write_config(tmp_path, [0, 1, 2], 9, HALVING, store=store)
    listing = run_cli("Steered", "config.yml", "--list", cwd=tmp_path, check_rc=0).stdout
    assert listing.startswith("search: a steered campaign of 3 configured experiment(s)"), listing
    as_json = run_cli("Steered", "config.yml", "--list", "--json", cwd=tmp_path, check_rc=0).stdout
    assert json.loads(as_json) == {"campaign": "search", "kind": "steered", "experiments": 3}
    refused = run_cli("Steered", "config.yml", "--slurm", "--array", cwd=tmp_path, check_rc=2)
    assert "search is a campaign" in refused.stderr and not (tmp_path / "results").exists()


OPTUNA = {"policy": "optuna", "metric": "loss", "sampler": "tpe", "seed": 7, "trials": 6, "batch": 2,
          "space": {"c": {"randint": [0, 81]}}}


@pytest.mark.processes
@pytest.mark.parametrize("store", STORES)
def test_optuna_suggests_the_same_points_sequentially_and_with_two_workers(tmp_path, store):
    pytest.importorskip("optuna", reason="optuna steering needs the optuna extra (pip install -e '.[optuna]')")
    runs = {}
    for name, args in (("sequential", ()), ("parallel", ("-n", "2"))):
        folder = write_config(tmp_path / name, None, 2, OPTUNA, params={"c": 0}, store=store)
        result = run_cli("Steered", "config.yml", *args, cwd=folder, check_rc=0)
        runs[name] = (decisions(folder), sorted(rows_on_disk(folder)), result.stderr)
    (decided, points, stderr), (decided_n2, points_n2, _) = runs["sequential"], runs["parallel"]
    assert decided == decided_n2 and points == points_n2
    assert len(points) == 6 and all("_trial" in p for p in points), points  # what optuna asked, no baseline
    assert "6 experiments (6 added); repetitions 6 finished" in stderr and "best search__" in stderr
    assert set(load_results(folder / "results").experiment) == {f"search__{p}" for p in points}


def test_optuna_refuses_a_grid_whose_points_would_never_run(cli, tmp_path):
    pytest.importorskip("optuna", reason="optuna steering needs the optuna extra (pip install -e '.[optuna]')")
    folder = write_config(tmp_path, [0, 1], 2, OPTUNA)
    refused = cli("Steered", "config.yml", cwd=folder, check_rc=2)
    assert refused.stderr.startswith("error: config.yml: experiment 'search': 'grid': policy optuna runs only the "
                                     "points it asks for"), refused.stderr
    assert sorted(os.listdir(folder)) == ["config.yml"]


STEERED_UNDER_COMPACT_DEFAULT = """\
name: DEFAULT
store: compact
path: results
---
name: search
repetitions: 2
iterations: 4
grid: {c: [0, 1, 2]}
steer: {policy: successive_halving, metric: loss, mode: min, min_iterations: 1}
"""


def test_a_default_documents_store_compact_holds_the_campaign_below_it(cli, tmp_path):
    """`store: compact` from the DEFAULT document (merged under every experiment) puts the campaign's
    repetitions, statuses included, in the compact store: every repetition of a point stopped at the first rung."""
    (tmp_path / "config.yml").write_text(STEERED_UNDER_COMPACT_DEFAULT)
    result = cli("Steered", "config.yml", cwd=tmp_path, check_rc=0)
    assert "repetitions 2 finished, 4 stopped; stopped after 1 iterations: 2;" in result.stderr, result.stderr
    assert rows_on_disk(tmp_path) == {"c0": 2, "c1": 2, "c2": 8}
    assert set(stop_reasons(tmp_path / "results")) == {(f"search__c{c}", rep) for c in (0, 1) for rep in (0, 1)}
    assert_compact(tmp_path)
