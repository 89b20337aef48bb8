"""A real MLflow tracking server (SQLite backend, on 127.0.0.1) fed by the exporter a run starts beside itself
(the config's `export:` block): live rows, exactly once after a kill -9 of the run, `-r/-i` replacing a
repetition's steps, a server that is down costing the sweep nothing, and the MLflow UI in a real headless
Chromium showing the sweep's runs and a metric chart."""
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import SCRIPT, run_cli, script_env
from tracker_helpers import Forwarder, MlflowServer, mlflow_metrics, mlflow_runs, results, same_values, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, mlflow_sqlite):
    folder = tmp_path_factory.mktemp("mlflow")
    mlflow_sqlite(folder)  # its store, empty (the server serves what is there)
    started = MlflowServer(folder).start().wait()
    yield started
    started.stop()


def _config(write_config, uri: str, name: str, iterations: int, sleep: float = 0.0, params: str = "") -> str:
    return str(write_config(f"""
        name: {name}
        repetitions: 2
        iterations: {iterations}
        path: out
        params: {{sleep: {sleep}{params}}}
        grid: {{step: [1.0, 2.0]}}
        export: {{mlflow: {{tracking_uri: "{uri}", interval: 0.5}}}}
        """))


def _all_exported(uri: str, name: str, sweep):
    """The server holds exactly the rows of the results files (each step once): the held metrics, else None."""
    held, saved = mlflow_metrics(uri, name), results(sweep)
    if set(held) != set(saved):
        return None
    for key, columns in saved.items():
        for column, values in columns.items():
            if not same_values(held[key].get(column, []), values):
                return None
    return held


def test_rows_go_live_and_exactly_once_after_the_run_is_killed(server, tmp_path, write_config):
    cfg = _config(write_config, server.uri, "live", iterations=40)
    # Gated: each repetition the two workers start saves its first row, then waits at a gate that never opens
    run = subprocess.Popen([sys.executable, SCRIPT, "Gated", cfg, "-n", "2"], cwd=tmp_path,
                           env={**script_env(), "CW_TEST_GATE": str(tmp_path / "never")},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # live: while the run still runs, the server shows rows of it
    wait_for(lambda: any(columns.get("value") for columns in mlflow_metrics(server.uri, "live").values()),
             "a first row in MLflow", seconds=180)
    assert run.poll() is None, "the run ended before its first row reached MLflow"
    os.killpg(run.pid, signal.SIGKILL)  # the run and its workers; the exporter lives in a session of its own
    run.wait()
    saved = results(tmp_path / "out")
    assert any(len(columns["value"]) < 40 for columns in saved.values())  # killed in the middle
    rerun = run_cli("Gated", cfg, "-n", "2", cwd=tmp_path, timeout=300)  # no gate: Deterministic's walk
    assert rerun.returncode == 0, rerun.stderr
    held = wait_for(lambda: _all_exported(server.uri, "live", tmp_path / "out"), "every row in MLflow, once")
    assert len(held) == 4 and all(len(columns["value"]) == 40 for columns in held.values())
    runs = mlflow_runs(server.uri, "live")
    assert {run.info.run_name for run in runs} == {f"live__s{s} rep {r}" for s in ("1.0", "2.0") for r in (0, 1)}
    assert all(run.info.status == "FINISHED" and run.data.tags["cluster_work.state"] == "finished" for run in runs)
    assert {run.data.params["step"] for run in runs} == {"1.0", "2.0"}
    assert all(run.data.tags["cluster_work.experiment"] == run.info.run_name.split(" rep ")[0] for run in runs)


def test_a_restarted_repetition_replaces_its_steps(server, tmp_path, write_config):
    cfg = _config(write_config, server.uri, "restart", iterations=12, params=", fail_at: 8, fail_rep: 1")
    assert run_cli("Deterministic", cfg, cwd=tmp_path).returncode == 1  # rep 1 of each fails at iteration 8
    wait_for(lambda: _all_exported(server.uri, "restart", tmp_path / "out"), "the first run's rows in MLflow")
    failed = {run.info.run_name: run for run in mlflow_runs(server.uri, "restart")}["restart__s1.0 rep 1"]
    assert failed.info.status == "FAILED" and failed.data.tags["cluster_work.error"] == "RuntimeError: boom at 8"
    before = {run.data.tags["cluster_work.key"]: run.info.run_id for run in mlflow_runs(server.uri, "restart")}
    rerun = run_cli("Deterministic", cfg, "-e", "restart__s1.0", "-r", "0", "-i", "5", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    key = "restart/s1.0/rep_00"
    new = wait_for(lambda: [run for run in mlflow_runs(server.uri, "restart")
                            if run.data.tags["cluster_work.key"] == key and run.info.run_id != before[key]],
                   "the replacing run")[0]
    assert new.data.tags["cluster_work.replaces"] == before[key] and new.data.tags["cluster_work.generation"] == "1"
    assert before[key] in {run.info.run_id for run in mlflow_runs(server.uri, "restart", deleted=True)}
    held = wait_for(lambda: _all_exported(server.uri, "restart", tmp_path / "out"), "the rewritten rows, once")
    saved = results(tmp_path / "out")[key]["iteration_time"]  # rows 5.. were computed again: new times
    assert same_values(held[key]["iteration_time"], saved)
    others = {k: v for k, v in before.items() if k != key}
    assert others == {run.data.tags["cluster_work.key"]: run.info.run_id
                      for run in mlflow_runs(server.uri, "restart") if run.data.tags["cluster_work.key"] != key}


def test_a_tracker_that_is_down_costs_the_sweep_nothing_and_is_caught_up(server, tmp_path, write_config):
    down = Forwarder(server.port)  # not started: nothing listens there yet; then the server, through it
    cfg = _config(write_config, down.uri, "down", iterations=15, sleep=0.01)
    run = run_cli("Deterministic", cfg, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    assert all(len(columns["value"]) == 15 for columns in results(tmp_path / "out").values())
    exporter = int(re.search(r"mlflow exporter makes its last pass in the background \(pid (\d+)", run.stderr)[1])
    os.kill(exporter, 0)  # the run did not wait for it: it still retries
    log = tmp_path / "out" / ".cluster_work_export" / "mlflow.log"
    wait_for(lambda: log.exists() and "the tracker cannot be reached" in log.read_text(),
             "the exporter to find the tracker down")
    try:
        down.start()
        wait_for(lambda: _all_exported(down.uri, "down", tmp_path / "out"), "the export to catch up", seconds=300)
        wait_for(lambda: not os.path.exists(f"/proc/{exporter}") or "Z" in _state(exporter), "the exporter's exit")
    finally:
        down.stop()
    assert "the tracker answers again" in log.read_text()


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's package: apt-get install chromium)")
def test_the_mlflow_ui_shows_the_sweeps_runs_and_a_metric_chart(server, tmp_path, write_config):
    cfg = _config(write_config, server.uri, "ui", iterations=8)
    assert run_cli("Deterministic", cfg, cwd=tmp_path).returncode == 0
    wait_for(lambda: _all_exported(server.uri, "ui", tmp_path / "out"), "the sweep in MLflow")
    experiment = mlflow_runs(server.uri, "ui")[0].info.experiment_id
    page = f"{server.uri}/#/experiments/{experiment}/runs?compareRunsMode=CHART"
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--window-size=1400,1000", "--virtual-time-budget=60000"]
    shot = tmp_path / "mlflow-ui.png"  # one load of the page: its screenshot, and its DOM on stdout
    dom = subprocess.run([*browser, f"--screenshot={shot}", "--dump-dom", page], capture_output=True, text=True,
                         timeout=300).stdout
    assert shot.stat().st_size > 10_000
    for name in (f"ui__s{s} rep {r}" for s in ("1.0", "2.0") for r in (0, 1)):
        assert name in dom, name
    assert 'title="value"' in dom  # the chart of the `value` metric
    assert "js-plotly-plot" in dom and len(re.findall(r'class="trace scatter', dom)) >= 4  # one line per run
    if os.environ.get("CW_SCREENSHOTS"):
        shutil.copy(shot, os.environ["CW_SCREENSHOTS"])
