"""An honest picture while a sweep runs: a total that holds, an ETA, figures people read at a glance, and a
steered campaign counted by what it planned."""
import json
import re

import pytest
from backend_clients import Counting
from conftest import run_cli

from cluster_work.backends.base import TaskContext
from cluster_work.display import RunDisplay, format_duration, format_rate
from cluster_work.expansion import expand_all
from cluster_work.runner import run_segment
from cluster_work.vocabulary import OutcomeKind, RunSettings, Segment

BARRIER_WALK = """\
name: chain
repetitions: 1
iterations: {iterations}
path: out
params: {{up: 0.3, gate_at: -1}}
ensemble:
  walkers: 4
  coordinate: pcoord
  bins: [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
  walkers_per_bin: 4
  recycle: {{at_least: 6}}
  seed: 3
"""
STEERED = {"name": "search", "repetitions": 1, "iterations": 9, "path": "results", "grid": {"c": list(range(9))},
           "steer": {"policy": "successive_halving", "metric": "loss", "min_iterations": 1, "reduction_factor": 3}}


@pytest.mark.parametrize("seconds, text", [
    pytest.param(4.18e-06, "4.2 µs", id="microseconds"),
    pytest.param(0.000123, "123 µs", id="hundreds-of-microseconds"),
    pytest.param(0.0009996, "1.0 ms", id="rounds-up-a-unit"),
    pytest.param(0.0123, "12 ms", id="milliseconds"),
    pytest.param(3.4, "3.4 s", id="seconds"),
    pytest.param(125, "0:02:05", id="minutes"),
    pytest.param(None, "-", id="unknown"),
])
def test_durations_read_at_a_glance(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("rate, text", [
    pytest.param(3614.2, "3,610 it/s", id="thousands"),
    pytest.param(179840.0, "180,000 it/s", id="hundred-thousands"),
    pytest.param(36.14, "36.1 it/s", id="tens"),
    pytest.param(0.25, "4.0 s/it", id="below-one"),
    pytest.param(0.0, "0 it/s", id="nothing-yet"),
])
def test_rates_have_no_exponents(rate, text):
    assert format_rate(rate) == text


def test_the_time_left_is_unknown_until_something_was_done():
    done = [0]
    display = RunDisplay(lambda: 100, 2, lambda: done[0], lambda: 1)
    assert "left unknown" in display.status_line()
    done[0] = 50
    assert re.search(r"left ~\d+:\d\d:\d\d", display.status_line()), display.status_line()
    assert "e+" not in display.status_line() and "e-" not in display.status_line()


class NoRestoreCounting(Counting):
    _restore_supported = False


def test_iterations_redone_after_a_restore_that_failed_do_not_count_as_progress(tmp_path):
    """The plan counted the repetition's 3 iterations left after its 2 saved ones; without a restore it runs all
    5 again, but the live display's count must stay within the plan, or its total would have to grow."""
    [experiment] = expand_all([{"name": "c", "repetitions": 1, "iterations": 5, "path": str(tmp_path)}],
                              Counting._default_params)
    settings = RunSettings(log_level="WARNING", sync=False)
    saved = [0]
    stopped = run_segment(NoRestoreCounting, Segment(0, experiment, 0), settings,
                          TaskContext(stop_requested=lambda: saved[0] >= 2,
                                      iteration_done=lambda: saved.__setitem__(0, saved[0] + 1)))
    assert stopped.kind == OutcomeKind.INTERRUPTED and saved == [2]
    counted = [0]
    again = run_segment(NoRestoreCounting, Segment(1, experiment, 0), settings,
                        TaskContext(iteration_done=lambda: counted.__setitem__(0, counted[0] + 1)))
    assert again.kind == OutcomeKind.FINISHED and again.iterations_run == 5
    assert counted == [3]


@pytest.mark.processes
def test_an_ensembles_live_total_is_its_iterations_whatever_its_walkers(tmp_path):
    """The walkers split and merge (4 to 24 here); the total the run shows is the ensemble's 150 iterations
    from its first line to its last (it said 240, then 1,504 walker segments)."""
    (tmp_path / "c.yml").write_text(BARRIER_WALK.format(iterations=150))
    result = run_cli("BarrierWalk", "c.yml", "-n", "2", "--report_every", "0.05", cwd=tmp_path, check_rc=0)
    lines = re.findall(r"progress: ([\d,]+)/([\d,]+) iterations", result.stderr)
    assert lines, result.stderr
    assert {total for _, total in lines} == {"150"}, result.stderr
    done = [int(d.replace(",", "")) for d, _ in lines]
    assert done == sorted(done) and done[-1] <= 150


def test_a_finished_steered_campaign_is_done_in_the_progress_row(cli, tmp_path):
    """Successive halving on 9 points (r = 1, eta = 3, R = 9) runs 9 + 3 x 2 + 1 x 6 = 21 of the grid's 81
    iterations: that is all it planned, so it is done, not 26%."""
    (tmp_path / "config.yml").write_text(json.dumps(STEERED))  # JSON is YAML
    cli("Steered", "config.yml", cwd=tmp_path, check_rc=0)
    data = json.loads(cli("Steered", "config.yml", "-p", "--json", cwd=tmp_path, check_rc=0).stdout)
    [search] = data["base_experiments"]
    assert (search["iterations_done"], search["iterations_total"], search["done_share"]) == (21, 21, 1.0)
    assert search["work_left_seconds"] == 0
    table = cli("Steered", "config.yml", "-p", cwd=tmp_path, check_rc=0).stdout
    assert re.search(r"│ search \(9 expanded\) *│ 100% ", table), table
