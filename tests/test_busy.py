"""How busy the workers were over a while (cluster_work/busy.py), as the live row shows it: the clock's
arithmetic, the display's average over its interval, and a weighted ensemble with microsecond walker
iterations, whose live row said "0/2 busy" when it showed a snapshot (every backend keeps the clock:
tests/conformance.py's check_busy_time)."""
import re

import pytest
from conftest import run_cli

from cluster_work.busy import BusyClock, BusyShare, describe_busy

ENSEMBLE = """\
name: chain
repetitions: 1
iterations: 150
path: out
params: {up: 0.3}
ensemble:
  walkers: 4
  coordinate: pcoord
  bins: [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
  walkers_per_bin: 4
  recycle: {at_least: 6}
  seed: 3
"""


def test_the_clock_integrates_the_busy_count_and_the_share_averages_over_the_window():
    clock, share = BusyClock(now=0.0), BusyShare(window=10.0)
    assert share.average(clock.seconds(now=0.0), now=0.0) == 0.0  # one reading: no while yet
    clock.change(+1, now=1.0)  # one worker busy from 1 s
    clock.change(+1, now=2.0)  # two from 2 s
    clock.change(-1, now=4.0)  # one from 4 s
    assert clock.seconds(now=5.0) == pytest.approx(1 + 2 * 2 + 1)
    assert share.average(clock.seconds(now=5.0), now=5.0) == pytest.approx(6 / 5)
    clock.change(-1, now=6.0)  # none from 6 s: the clock stands still
    assert clock.seconds(now=30.0) == clock.seconds(now=6.0) == pytest.approx(7.0)
    assert share.average(clock.seconds(now=14.0), now=14.0) == pytest.approx(7 / 14)  # within the window: all
    assert share.average(clock.seconds(now=30.0), now=30.0) == pytest.approx(0.0)  # since 14 s (>= 10 s ago): idle


@pytest.mark.parametrize("average, text", [(0.0, "0"), (2.0, "2"), (1.98, "2"), (0.04, "0"), (0.4, "0.4"),
                                           (1.46, "1.5")],
                         ids=["idle", "all", "nearly-all", "next-to-nothing", "fraction", "rounded"])
def test_the_busy_figure_is_whole_when_it_is_one(average, text):
    assert describe_busy(average) == text


@pytest.mark.processes
def test_an_ensemble_s_live_row_shows_its_workers_busy(tmp_path):
    """A weighted ensemble with -n 2: its walkers' iterations take microseconds, so at any instant its
    workers are likely idle; over each reporting interval they were busy, and the line says so."""
    (tmp_path / "c.yml").write_text(ENSEMBLE)
    result = run_cli("BarrierWalk", "c.yml", "-n", "2", "--report_every", "0.2", cwd=tmp_path, check_rc=0)
    lines = re.findall(r"progress: (\d+)/150 iterations.*, (\S+)/2 workers busy", result.stderr)
    during = [float(busy) for done, busy in lines if 0 < int(done) < 150]
    assert during and all(busy > 0 for busy in during), result.stderr
