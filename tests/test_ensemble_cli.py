"""Weighted ensembles through the real command line (issue 18): beside a plain experiment, the same seed
gives the same ensemble in this process, with -n 2, under MPI and after a kill -9 and a rerun; -p, -d,
load_results; bad blocks and classes without state hooks are refused before anything is written.

The experiment is tests/experiments.py's BarrierWalk; the core (resampling, driver, store, the flux of
a chain with a known answer) is tested in test_ensemble_we.py."""
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import SCRIPT, run_cli, run_mpi, script_env
from experiments import BarrierWalk
from kills import kill_session

from cluster_work import ensemble_flux, load_results
from cluster_work.backends.base import TaskContext
from cluster_work.config import merge_and_validate, parse_documents
from cluster_work.ensemble import EnsembleStore, read_records
from cluster_work.ensemble.campaign import EnsembleCampaign
from cluster_work.ensemble.store import ensemble_file, last_record
from cluster_work.errors import StoreError
from cluster_work.expansion import expand_all
from cluster_work.vocabulary import OutcomeKind, RunSettings

CONFIG = """\
name: walk
repetitions: 2
iterations: 3
path: {path}
---
name: chain
repetitions: 1
iterations: {iterations}
path: {path}
params: {{up: 0.3, gate_at: {gate_at}}}
ensemble:
  walkers: 4
  coordinate: pcoord
  bins: [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
  walkers_per_bin: 4
  recycle: {{at_least: 6}}
  seed: 3
"""


def write(folder, name="c.yml", path="out", iterations=25, gate_at=-1, **replace):
    text = CONFIG.format(path=path, iterations=iterations, gate_at=gate_at)
    for old, new in replace.items():
        text = text.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return name


def ensemble_of(sweep):
    """The chain's rows (without timings) and every iteration's states: equal for equal ensembles."""
    frame = load_results(sweep, experiments=["chain"]).drop(columns=["iteration_time"])
    return frame, [record.states for record in read_records(str(sweep / "chain"), with_states=True)]


def assert_same(sweep_a, sweep_b):
    (frame_a, states_a), (frame_b, states_b) = ensemble_of(sweep_a), ensemble_of(sweep_b)
    assert len(frame_a) > 100 and frame_a.equals(frame_b)
    assert states_a == states_b


@pytest.mark.processes
def test_an_ensemble_runs_beside_a_plain_experiment_the_same_with_n_2_and_shows_in_p_and_goes_with_d(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    result = run_cli("BarrierWalk", write(one), cwd=one, check_rc=0)
    assert "ensemble chain: 25 iterations (25 this run)" in result.stderr and "2 finished" in result.stderr
    run_cli("BarrierWalk", write(two), "-n", "2", cwd=two, check_rc=0)
    assert_same(one / "out", two / "out")

    frame = load_results(one / "out")
    walk, chain = frame[frame.experiment == "walk"], frame[frame.experiment == "chain"]
    assert sorted(walk.rep.unique()) == [0, 1] and len(walk) == 6 and walk.walker.isna().all()
    assert list(chain.columns[:3]) == ["experiment", "rep", "iteration"] and (chain.rep == 0).all()
    assert {"params.up", "walker", "parent", "weight", "recycled", "bin", "pcoord"} <= set(chain.columns)
    assert (chain["params.up"] == 0.3).all() and sorted(chain.iteration.unique()) == list(range(25))
    assert (chain.groupby("iteration").weight.sum() - 1).abs().max() < 1e-12
    flux = ensemble_flux(frame)
    assert list(flux.index.get_level_values("experiment").unique()) == ["chain"] and len(flux) == 25
    assert flux.sum() == pytest.approx(chain.weight[chain.recycled.eq(True)].sum()) and flux.sum() > 0

    progress = run_cli("BarrierWalk", "c.yml", "-p", cwd=one, check_rc=0).stdout
    assert "Weighted ensembles" in progress and "Progress" in progress
    [line] = [line for line in progress.splitlines() if line.startswith("│ chain")]
    assert [cell.strip() for cell in line.strip("│").split("│")][:3] == ["chain", "finished", "25/25"]
    [figures] = json.loads(run_cli("BarrierWalk", "c.yml", "-p", "--json", cwd=one, check_rc=0).stdout)["ensembles"]
    assert figures["iterations_done"] == 25 and figures["walkers"] > 0 and figures["flux_total"] == flux.sum()

    size = os.path.getsize(ensemble_file(str(one / "out" / "chain")))
    again = run_cli("BarrierWalk", "c.yml", cwd=one, check_rc=0)
    assert "ensemble chain: 25 iterations (already finished)" in again.stderr
    assert os.path.getsize(ensemble_file(str(one / "out" / "chain"))) == size
    # -d deletes the 25 iterations: a run of 3 has exactly 3, not the 25 before them
    run_cli("BarrierWalk", write(one, "short.yml", iterations=3), "-d", cwd=one, check_rc=0)
    assert [r.iteration for r in read_records(str(one / "out" / "chain"))] == [0, 1, 2]


def test_a_rerun_whose_only_work_is_an_ensemble_with_changed_parameters_is_exit_2_until_o(cli, tmp_path):
    cli("BarrierWalk", write(tmp_path, iterations=3), cwd=tmp_path, check_rc=0)
    write(tmp_path, iterations=3, **{"up: 0.3": "up: 0.4"})
    refused = cli("BarrierWalk", "c.yml", cwd=tmp_path, check_rc=2)
    assert refused.stderr.startswith("error: c.yml: nothing to run: the parameters of 1 experiment(s) changed since "
                                     "their results were saved (chain: up); rerun with -o/--overwrite"), refused.stderr
    assert "ensemble chain: 3 iterations (3 this run)" in cli("BarrierWalk", "c.yml", "-o", cwd=tmp_path,
                                                                  check_rc=0).stderr


@pytest.mark.parametrize("change, key", [({"walkers_per_bin: 4": "walkers_per_bin: 0"}, "ensemble.walkers_per_bin"),
                                         ({"repetitions: 1": "repetitions: 2"}, "repetitions")])
def test_a_bad_ensemble_document_is_one_line_and_exit_2_with_nothing_written(cli, tmp_path, change, key):
    result = cli("BarrierWalk", write(tmp_path, **change), cwd=tmp_path, check_rc=2)
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: c.yml: experiment 'chain': '{key}': ")
    assert os.listdir(tmp_path) == ["c.yml"]


def test_a_class_without_state_hooks_is_refused_before_anything_is_written(cli, tmp_path):
    result = cli("GroupSum", write(tmp_path), cwd=tmp_path, check_rc=2)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: c.yml: experiment 'chain': 'ensemble': GroupSum needs get_state and set_state")
    assert os.listdir(tmp_path) == ["c.yml"]


class FailingWalk(BarrierWalk):
    def iterate(self, config, rep, n):
        if (n, rep) == (2, 1):
            raise RuntimeError("boom")
        return super().iterate(config, rep, n)


def test_the_driver_never_raises_and_its_exit_status_and_summary_say_what_went_wrong(tmp_path, monkeypatch):
    """In this process, outcomes fed by hand: a failing walker (1), a failed commit (3, and the step of its
    outcome says the store failed, so that the run stops; the outcome itself is left as it came), another
    run holding it (0), blocks never sent (130), a changed `ensemble:` block (2), and at last a finished
    ensemble (0)."""
    settings = RunSettings(sync=False, config_file="c.yml")

    def campaign(iterations=5, **replace):
        text = CONFIG.format(path=tmp_path, iterations=iterations, gate_at=-1)
        for old, new in replace.items():
            text = text.replace(old, new)
        documents = merge_and_validate(parse_documents(text, "c.yml"), "c.yml", lambda m: None)
        return EnsembleCampaign(expand_all(documents, BarrierWalk._default_params)[1], None, settings, workers=2)

    def run(driver, experiment_class=BarrierWalk):
        outcomes, steps, blocks = [], [], driver.start()
        while blocks:
            done = [block.run(experiment_class, settings, TaskContext()) for block in blocks]
            outcomes += done
            steps += [driver.on_outcome(outcome) for outcome in done]
            blocks = [following for step in steps[-len(done):] for following in step.run]
        driver.close()
        return driver.exit_status(), driver.summary_line(), list(zip(outcomes, steps))

    status, line, _ = run(campaign(), FailingWalk)
    assert status == 1 and line == ("ensemble chain: failed (2 of 5 iterations committed): walker 1 of iteration 2: "
                                    "RuntimeError: boom (in iterate)")
    assert (tmp_path / "chain" / "config.yml").exists()  # written before the first block
    commit = EnsembleStore.commit

    def full_disk(store, record):
        if record.iteration == 3:
            raise StoreError("cannot write iterations.cwe: No space left on device")
        commit(store, record)

    monkeypatch.setattr(EnsembleStore, "commit", full_disk)
    status, line, outcomes = run(campaign())
    assert status == 3 and line.endswith("(3 of 5 iterations committed): store failure: cannot write "
                                         "iterations.cwe: No space left on device")
    last, step = outcomes[-1]
    assert step.store_failed and last.iteration == 3 and last.kind is OutcomeKind.FINISHED
    monkeypatch.undo()
    with EnsembleStore(str(tmp_path / "chain")) as holder:
        holder.open()
        status, line, _ = run(campaign())
    assert (status, line) == (0, "ensemble chain: skipped, held by another run")
    driver = campaign()
    assert driver.start() and driver.close() is None  # the run stopped before it sent them
    assert (driver.exit_status(), driver.summary_line()) == (
        130, "ensemble chain: interrupted after 3 of 5 iterations (committed); a rerun continues it")
    status, line, _ = run(campaign(**{"seed: 3": "seed: 4"}))
    assert status == 2 and "'ensemble': changed since its 3 iterations were saved (seed); -d starts it over" in line
    status, line, _ = run(campaign())
    assert status == 0 and line.startswith("ensemble chain: 5 iterations (2 this run), ")


@pytest.mark.processes
@pytest.mark.slow
def test_the_same_ensemble_under_mpi(tmp_path):
    run_cli("BarrierWalk", write(tmp_path, path="alone"), cwd=tmp_path, check_rc=0)
    result = run_mpi(3, "BarrierWalk", write(tmp_path, "mpi.yml", path="mpi"), cwd=tmp_path, check_rc=0)
    assert "ensemble chain: 25 iterations (25 this run)" in result.stderr
    assert_same(tmp_path / "alone", tmp_path / "mpi")


@pytest.mark.processes
@pytest.mark.slow
def test_a_kill_9_during_an_iteration_then_a_rerun_gives_the_uninterrupted_ensemble(tmp_path):
    """A run with -n 2 whose iteration 6 waits at a gate (so the kill provably lands while its segments
    run) is killed with all its processes; the rerun continues from iteration 6."""
    run_cli("BarrierWalk", write(tmp_path, path="whole", gate_at=6), cwd=tmp_path, check_rc=0)
    config = write(tmp_path, "killed.yml", path="killed", gate_at=6)
    process = subprocess.Popen([sys.executable, SCRIPT, "BarrierWalk", config, "-n", "2"], cwd=tmp_path,
                               env={**script_env(), "CW_TEST_GATE": str(tmp_path / "never")},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    chain = str(tmp_path / "killed" / "chain")
    try:
        _wait_for(lambda: getattr(last_record(chain), "iteration", -1) == 5, process)
    finally:
        kill_session(process)  # the run and its workers, gone before the rerun looks at their files
    assert last_record(chain).iteration == 5
    result = run_cli("BarrierWalk", config, cwd=tmp_path, check_rc=0)
    assert "ensemble chain: 25 iterations (19 this run)" in result.stderr
    assert_same(tmp_path / "whole", tmp_path / "killed")


def _wait_for(condition, process, seconds=60):
    """Poll `condition` until it holds (the run must still be alive meanwhile), for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, "the run ended before the test could kill it"
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.02)
