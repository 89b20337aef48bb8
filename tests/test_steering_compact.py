"""A steered campaign on the compact store is planned and indexed as a plain sweep on it is: its run leaves the
store's index (compact_index) holding what a read of every segment says, and its document is planned through
that index in bulk (`campaign_plans`: new points without a look at the disk, done ones from the index), giving
each point the plan that planning it alone gives."""
from __future__ import annotations

import shutil

import pytest
from conftest import run_cli
from experiments import Steered
from steering_helpers import write_config

from cluster_work import compact_catalog, compact_index
from cluster_work.compact_catalog import Catalog
from cluster_work.compact_index import Summary, read_index
from cluster_work.compact_store import find_compact
from cluster_work.config import load_config
from cluster_work.expansion import expand_all
from cluster_work.experiment_plan import plan_experiment
from cluster_work.paths import COMPACT_FOLDER, INDEX_FILE
from cluster_work.planning import make_plan
from cluster_work.selection import Policy, Selection
from cluster_work.vocabulary import ExperimentState, Record

pytestmark = pytest.mark.processes

GRID = list(range(27))
HALVING = {"policy": "successive_halving", "metric": "loss", "min_iterations": 1, "reduction_factor": 3}


@pytest.fixture(scope="module")
def steered(tmp_path_factory):
    """A successive halving of 27 points over 9 iterations, run to its end on the compact store."""
    folder = write_config(tmp_path_factory.mktemp("steered"), GRID, 9, HALVING, store="compact")
    run_cli("Steered", "config.yml", cwd=folder, check_rc=0)
    return folder


def forget_what_was_read():
    compact_index._summaries.clear()  # as a new process starts
    compact_catalog._catalogs.clear()


def test_a_steered_runs_end_leaves_an_index_that_says_what_every_segment_says(steered):
    root = str(steered / "results" / "search" / COMPACT_FOLDER)
    index = read_index(root)
    assert index is not None
    assert index.encode() == Summary.of(Catalog(root).refresh(force=True)).encode()


@pytest.mark.parametrize("grid, params, policy", [
    (GRID, {}, Policy()),
    ([*GRID, 27, 28, 29], {}, Policy()),  # points the campaign has not run yet
    (GRID, {"offset": 1.0}, Policy()),  # every point's parameters changed: skipped
    (GRID, {"offset": 1.0}, Policy(ignore_config=True)),  # -I
    (GRID, {"offset": 1.0}, Policy(overwrite=True)),  # -o
], ids=["as-run", "grown", "changed", "changed-I", "changed-o"])
def test_a_steered_document_is_planned_in_bulk_as_each_point_alone(steered, tmp_path, monkeypatch, grid, params,
                                                                   policy):
    folder = tmp_path / "campaign"
    shutil.copytree(steered, folder)
    monkeypatch.chdir(folder)
    interrupted = str(folder / "results" / "search" / "c3")  # a point cut short: planned alone
    find_compact(interrupted).repetition(0).write_status(Record.INTERRUPTED, sync=False, iterations_done=1,
                                                         iterations=9)
    root = folder / "results" / "search" / COMPACT_FOLDER
    (root / INDEX_FILE).unlink(missing_ok=True)
    forget_what_was_read()
    write_config(folder, grid, 9, HALVING, params=params, store="compact")
    expanded = expand_all(load_config("config.yml"), Steered._default_params, warn=lambda message: None)
    [campaign] = make_plan(expanded, Selection(), policy, "config.yml").campaigns
    assert read_index(str(root)) is not None  # planned through the index (which planning wrote again)
    forget_what_was_read()
    alone = [plan_experiment(experiment, 0, Selection(), policy, None, False) for experiment in campaign.experiments]
    assert campaign.plans == alone
    states = {plan.state for plan in alone}
    expected = {ExperimentState.NEW} if policy.overwrite else \
        {ExperimentState.CHANGED} if params else {ExperimentState.DONE, ExperimentState.PARTIAL}
    assert expected <= states
    assert (ExperimentState.NEW in states) == (len(grid) > len(GRID) or policy.overwrite)
