"""A bug in `iterate` fails every repetition alike: its traceback shows once, each further failure is one line
that refers to it, and `--max-failures N` (or `max_failures: N`) stops the sweep cleanly at the N-th.

The experiment is tests/experiments.py's Buggy (every repetition raises at iteration 1); "fixing the bug" is
running Deterministic on the same config, whose parameters are the same and which does not raise."""

import pytest
from conftest import run_cli, run_mpi
from experiments import NO_SLEEP
from store_helpers import recorded_states

from cluster_work.errors import ConfigError
from cluster_work.failures import Failures, failure_limit
from cluster_work.vocabulary import Outcome, OutcomeKind

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 3
path: out
params: {{fail_at: 1, sleep: {sleep}}}
{extra}
---
name: walk
grid:
  step: [1.0, 2.0, 3.0]
"""
TRACEBACK = "Traceback (most recent call last)"


def states(out):
    """The state of every repetition with files, by folder (its status's, else its rows')."""
    return {folder: state for folder, state in sorted(recorded_states(out).items()) if state != "pending"}


def outcome(label, trace="Traceback...\nZeroDivisionError: x\n", kind=OutcomeKind.FAILED):
    return Outcome(0, label, kind, error="ZeroDivisionError: x (in iterate)", traceback=trace)


def test_the_same_traceback_is_shown_once_and_then_named(caplog):
    failures = Failures(None, lambda: pytest.fail("no limit, no stop"))
    first, again = outcome("a rep 0"), outcome("a rep 1")
    other = outcome("b rep 0", "Traceback...\nKeyError: 'lr'\n")
    at_another_address = outcome("a rep 2", "Traceback...\n<object at 0x7f00aa>\n")
    same_but_elsewhere = outcome("a rep 3", "Traceback...\n<object at 0x7f99bb>\n")
    same = {}
    for item in (first, again, other, at_another_address, same_but_elsewhere):
        same[item.label] = failures.show(item)
        failures.count(item)
    shown = [r.getMessage() for r in caplog.records if TRACEBACK[:9] in r.getMessage()]
    assert [line.split(" failed:")[0] for line in shown] == ["a rep 0", "b rep 0", "a rep 2"]
    assert (same["a rep 0"], same["a rep 1"], same["b rep 0"]) == (None, "a rep 0", None)
    assert same["a rep 3"] == "a rep 2"
    assert again.same_traceback_as is None  # the outcome is left as it came: CountingFailures marks a copy
    assert failures.count_failed == 5 and failures.reason is None


@pytest.mark.parametrize("kinds, stops_at", [
    pytest.param([OutcomeKind.FAILED] * 3, 2, id="the-second-failure"),
    pytest.param([OutcomeKind.FINISHED, OutcomeKind.INTERRUPTED, OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER], 4,
                 id="only-failures-count"),
    pytest.param([OutcomeKind.FINISHED, OutcomeKind.FAILED], None, id="not-reached"),
])
def test_the_limit_stops_the_run_once_at_the_nth_failed_repetition(kinds, stops_at):
    stops = []
    failures = Failures(2, lambda: stops.append(True))
    for number, kind in enumerate(kinds, start=1):
        failures.count(outcome(f"rep {number}", kind=kind))
        assert bool(stops) == (stops_at is not None and number >= stops_at), number
    assert len(stops) <= 1 and (failures.reason is not None) == bool(stops)


@pytest.mark.parametrize("given, documents, expected", [
    pytest.param(None, [{"name": "a"}], None, id="none"),
    pytest.param(None, [{"name": "a", "max_failures": 3}, {"name": "b", "max_failures": 3}], 3, id="from-DEFAULT"),
    pytest.param(5, [{"name": "a", "max_failures": 3}], 5, id="command-line-wins"),
])
def test_the_limit_comes_from_the_command_line_else_the_config(given, documents, expected):
    assert failure_limit(given, documents, "c.yml") == expected


@pytest.mark.parametrize("value", [
    pytest.param("0", id="zero"), pytest.param("-1", id="negative"), pytest.param("two", id="text"),
    pytest.param("true", id="bool"), pytest.param("1.5", id="float"),
])
def test_a_bad_max_failures_is_one_line_exit_2_and_nothing_written(cli, tmp_path, value):
    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0, extra=f"max_failures: {value}"))
    result = cli("Buggy", "config.yml", cwd=tmp_path, check_rc=2)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: config.yml: experiment 'walk': 'max_failures': must be a positive integer"), line
    assert not (tmp_path / "out").exists()


def test_documents_that_give_different_limits_are_refused(cli, tmp_path):
    text = CONFIG.format(sleep=0, extra="max_failures: 2") + "---\nname: other\nmax_failures: 3\n"
    (tmp_path / "config.yml").write_text(text)
    result = cli("Buggy", "config.yml", cwd=tmp_path, check_rc=2)
    assert "'max_failures': is the whole sweep's limit" in result.stderr and not (tmp_path / "out").exists()


def test_a_bad_max_failures_on_the_command_line_is_a_usage_error(cli, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0, extra=""))
    result = cli("Buggy", "config.yml", "--max-failures", "0", cwd=tmp_path, check_rc=2)
    assert "--max-failures: must be a positive integer" in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, extra", [
    pytest.param(["--max-failures", "2"], "", id="command-line"),
    pytest.param([], "max_failures: 2", id="config"),
])
def test_the_sweep_stops_at_the_limit_and_the_same_command_resumes_it(cli, tmp_path, options, extra):
    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0, extra=extra))
    result = cli("Buggy", "config.yml", *options, cwd=tmp_path, check_rc=1)
    assert result.stderr.count(TRACEBACK) == 1, result.stderr
    assert "walk__s1.0 rep 1: failed: ZeroDivisionError" in result.stderr
    assert "(the same as walk__s1.0 rep 0's, shown above)" in result.stderr
    assert "stopped: 2 repetitions failed, the limit" in result.stderr
    assert "2 failed, 7 not finished (interrupted)" in result.stderr
    assert sorted(states(tmp_path / "out").values()) == ["failed", "failed"]
    for folder in states(tmp_path / "out"):  # each repetition's own log keeps its whole traceback
        assert TRACEBACK in (tmp_path / "out" / folder / "rep.log").read_text()
    cli("Deterministic", "config.yml", *options, cwd=tmp_path, check_rc=0)  # the bug fixed: all of it runs
    assert list(states(tmp_path / "out").values()) == ["finished"] * 9


@pytest.mark.processes
@pytest.mark.parametrize("workers", [pytest.param("1", id="this-process"), pytest.param("2", id="two-workers")])
def test_without_a_limit_every_repetition_fails_but_the_traceback_shows_once(tmp_path, workers):
    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0, extra=""))
    result = run_cli("Buggy", "config.yml", "-n", workers, cwd=tmp_path, check_rc=1)
    assert result.stderr.count(TRACEBACK) == 1, result.stderr
    assert result.stderr.count("shown above)") == 8, result.stderr
    assert list(states(tmp_path / "out").values()) == ["failed"] * 9


@pytest.mark.processes
@pytest.mark.slow
def test_with_local_workers_the_repetitions_in_flight_end_after_their_iteration(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0.3, extra="max_failures: 1"))
    result = run_cli("Buggy", "config.yml", "-n", "2", cwd=tmp_path, check_rc=1)
    found = states(tmp_path / "out")
    assert 1 <= list(found.values()).count("failed") <= 2, found  # the first, and perhaps the other one in flight
    # and at most one more per worker: a worker holds its next item and begins it as soon as it sent an outcome,
    # so on a loaded machine each may have begun one before the stop reached it (seen in CI: 2 failed, 2 interrupted)
    assert set(found.values()) <= {"failed", "interrupted"} and len(found) <= 4, found
    assert "stopped: 1 repetition failed" in result.stderr
    run_cli("Deterministic", "config.yml", "-n", "2", cwd=tmp_path, check_rc=0, env={NO_SLEEP: "1"})  # the rest
    assert list(states(tmp_path / "out").values()) == ["finished"] * 9


@pytest.mark.processes
@pytest.mark.slow
def test_under_mpi_the_traceback_shows_once_and_the_limit_stops_the_sweep(tmp_path, monkeypatch):
    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0.1, extra=""))
    result = run_mpi(3, "Buggy", "config.yml", "--max-failures", "3", cwd=tmp_path, check_rc=1)
    output = result.stdout + result.stderr
    assert output.count(TRACEBACK) == 1, output
    assert "stopped: 3 repetitions failed" in output and "not finished (interrupted)" in output, output
    assert 3 <= list(states(tmp_path / "out").values()).count("failed") < 9
    monkeypatch.setenv(NO_SLEEP, "1")  # the rerun's pace matters to no one
    run_mpi(3, "Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    assert list(states(tmp_path / "out").values()) == ["finished"] * 9


def test_the_config_key_is_known(tmp_path):
    from cluster_work.config import load_config

    (tmp_path / "config.yml").write_text(CONFIG.format(sleep=0, extra="max_failures: 2"))
    warnings = []
    load_config(tmp_path / "config.yml", warn=warnings.append)
    assert warnings == []
    with pytest.raises(ConfigError):
        failure_limit(None, [{"name": "a", "max_failures": 0}], "c.yml")
