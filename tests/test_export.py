"""The exporter (`python -m cluster_work export`): the config's `export:` block, the watch that finds changes
without statting everything, the cursor journal, and exactly-once export into real TensorBoard event
files, W&B offline runs and an MLflow file store after the exporter is killed with -9 mid-export."""
import fcntl
import re
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli, script_env
from tracker_helpers import journal_lines, same_values, saved_values, tensorboard_events, wait_for, wandb_runs

from cluster_work.config import load_config
from cluster_work.errors import ConfigError
from cluster_work.export.journal import Journal
from cluster_work.export.source import Watch
from cluster_work.store import ExperimentStore

BAD_BLOCKS = [
    pytest.param("export: [mlflow]", "'export': must be a mapping of trackers", id="not-a-mapping"),
    pytest.param("export: {neptune: {}}", "'export.neptune': unknown tracker", id="unknown-tracker"),
    pytest.param("export: {mlflow: {}}", "'export.mlflow.tracking_uri': is required", id="missing-uri"),
    pytest.param("export: {mlflow: {tracking_uri: x, trackin_uri: y}}", "'export.mlflow.trackin_uri': unknown key",
                 id="unknown-key"),
    pytest.param("export: {tensorboard: {interval: 0}}", "'export.tensorboard.interval': must be a number",
                 id="bad-interval"),
    pytest.param("export: {wandb: {project: '{name}'}}", "'export.wandb.project': may hold {base} and {sweep}",
                 id="bad-template"),
    pytest.param("export: {tensorboard: {logdir: 3}}", "'export.tensorboard.logdir': must be a non-empty string",
                 id="bad-logdir"),
]


@pytest.mark.parametrize("block, message", BAD_BLOCKS)
def test_a_bad_export_block_is_one_line_naming_file_and_key(block, message, write_config):
    path = write_config(f"name: e\nrepetitions: 1\niterations: 1\npath: out\n{block}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: experiment 'e': {message}")
    assert "\n" not in str(raised.value)


@pytest.mark.processes
def test_a_run_with_a_bad_export_block_stops_before_writing(tmp_path, write_config):
    path = write_config("name: e\nrepetitions: 1\niterations: 1\npath: out\nexport: {mlflow: {}}\n")
    result = run_cli("Deterministic", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {path}: experiment 'e': 'export.mlflow.tracking_uri': "
                                                  "is required (e.g. http://127.0.0.1:5000 or sqlite:///mlflow.db)"]
    assert not (tmp_path / "out").exists()


def _sweep(root, experiments: int, reps: int):
    """A sweep's folders as the store writes them: a config per experiment, one row per repetition."""
    for e in range(experiments):
        store = ExperimentStore(str(root / "base" / f"p{e}"))
        store.write_config({"name": f"base__p{e}", "experiment_name": "base", "iterations": 3, "params": {"p": e}},
                           sync=False)
        for rep in range(reps):
            writer = store.repetition(rep).open_writer()
            writer.append({"iteration": 0, "value": 1.0})
            writer.close(sync=False)


def test_the_watch_looks_at_a_budget_of_files_per_poll_and_at_changing_ones_every_poll(tmp_path):
    _sweep(tmp_path, experiments=50, reps=4)  # 200 repetitions: 450 stats for a whole look
    watch = Watch([(str(tmp_path), None)], budget=100)
    first = list(watch.poll(now=0.0))  # new experiments are looked at when found
    assert len(first) == 200
    seen, counts = set(), []
    for poll in range(1, 6):
        looked = list(watch.poll(now=float(poll)))
        counts.append(len(looked))
        seen |= {repetition.key for repetition, _ in looked}
    assert max(counts) <= 100 // 9 * 4 + 4, counts  # about budget / (2 stats per repetition + 1 per folder)
    assert len(seen) == 200 or sum(counts) < 200  # the round robin reaches every repetition in turn
    changing = first[7][0]
    watch.touch(changing, now=10.0)
    for now in (10.5, 11.0, 11.5):
        assert changing.key in {r.key for r, _ in watch.poll(now=now)}
    assert len(list(watch.poll(now=100.0))) <= 100 // 9 * 4 + 4  # cooled down: back to its turn
    (tmp_path / "base" / "p50" / "log").mkdir(parents=True)
    ExperimentStore(str(tmp_path / "base" / "p50")).write_config({"name": "base__p50", "params": {}}, sync=False)
    writer = ExperimentStore(str(tmp_path / "base" / "p50")).repetition(0).open_writer()
    writer.close(sync=False)
    assert "base/p50/rep_00" in {r.key for r, _ in watch.poll(now=101.0)}  # a new experiment: seen at once


def test_the_journal_keeps_the_last_whole_entry_of_each_key(tmp_path):
    journal = Journal(str(tmp_path / "j.jsonl"))
    journal.open()
    journal.put("a/rep_00", {"rows": 1})
    journal.put("a/rep_00", {"rows": 2})
    journal.put("b/rep_00", {"rows": 5})
    sweep_id = journal.sweep_id
    journal.close()
    with open(tmp_path / "j.jsonl", "ab") as handle:
        handle.write(b'{"key":"a/rep_00","rows":')  # a kill during the next write
    again = Journal(str(tmp_path / "j.jsonl"))
    again.open()
    assert again.entries == {"a/rep_00": {"rows": 2}, "b/rep_00": {"rows": 5}} and again.sweep_id == sweep_id
    for n in range(1200):  # compacted along the way
        again.put("a/rep_00", {"rows": n})
    assert len((tmp_path / "j.jsonl").read_bytes().splitlines()) < 1100
    again.close()
    final = Journal(str(tmp_path / "j.jsonl"))
    final.open()
    assert final.entries["a/rep_00"] == {"rows": 1199} and final.sweep_id == sweep_id


@pytest.mark.processes
def test_a_second_exporter_into_the_same_destination_is_refused(tmp_path, write_config):
    cfg = write_config("name: w\nrepetitions: 1\niterations: 3\npath: out\n")
    run_cli("Deterministic", str(cfg), cwd=tmp_path, check_rc=0)
    first = subprocess.Popen(_export("tensorboard", cfg, "--follow"), cwd=tmp_path, env=script_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: journal_lines(tmp_path / "out", "tensorboard"), "the first exporter's journal")
        second = subprocess.run(_export("tensorboard", cfg, "--wait", "1"), cwd=tmp_path, env=script_env(),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and "another exporter follows this sweep" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "tensorboard: 3 rows exported" in out, err


@pytest.mark.processes
def test_the_exporter_beside_a_run_makes_its_last_pass_after_waiting_for_the_journal(tmp_path, write_config):
    """Another exporter holds the journal throughout a run (here the test, as the last pass of a run killed just
    before would): the run's own exporter waits, sees the run end while it waits, and once the journal is free it
    still exports the run's rows, each once. (It used to end with its run, owing them: the holder may have
    looked before those rows were written; seen as a CI flake of the MLflow kill -9 test.)"""
    cfg = write_config("name: w\nrepetitions: 2\niterations: 3\npath: out\ngrid: {step: [1.0, 2.0]}\n"
                       "export: {tensorboard: {interval: 0.1}}\n")
    run_cli("Deterministic", str(cfg), "-e", "w__s1.0", cwd=tmp_path, check_rc=0)  # a first run: the journal

    def all_exported() -> bool:
        held, saved = tensorboard_events(tmp_path / "out" / "tensorboard"), saved_values(tmp_path / "out")
        return set(held) == set(saved) and all(same_values(held[key][column], values)
                                               for key, columns in saved.items() for column, values in columns.items())

    wait_for(all_exported, "the first run's rows exported")
    log = tmp_path / "out" / ".cluster_work_export" / "tensorboard.log"
    (lock,) = (tmp_path / "out" / ".cluster_work_export").glob("tensorboard-*.jsonl.lock")
    with open(lock, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # (blocks while the first run's exporter still ends)
        run_cli("Deterministic", str(cfg), cwd=tmp_path, check_rc=0)  # w__s2.0 runs; its exporter waits
        wait_for(lambda: "its last pass waits for the exporter that holds the journal" in log.read_text(),
                 "the exporter to see its run end while it waits")
        assert not all_exported()
    wait_for(all_exported, "the second run's rows exported, each once")
    assert len(saved_values(tmp_path / "out")) == 4


def _export(kind: str, cfg, *options: str) -> list[str]:
    return [sys.executable, "-m", "cluster_work", "export", kind, str(cfg), *options]


def _held(kind: str, tmp_path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """What the tracker holds, by repetition key."""
    if kind == "tensorboard":
        return tensorboard_events(tmp_path / "out" / "tensorboard")
    if kind == "wandb":
        keys = {line["id"]: line["key"] for line in journal_lines(tmp_path / "out", "wandb") if "id" in line}
        return {keys.get(run_id, run_id): run["history"] for run_id, run in wandb_runs(tmp_path / "out").items()}
    from tracker_helpers import mlflow_metrics

    return mlflow_metrics(f"file://{tmp_path}/mlruns", "walk")


def _confirmed(tmp_path, kind: str) -> dict[str, int]:
    confirmed: dict[str, int] = {}
    for line in journal_lines(tmp_path / "out", kind):
        if "key" in line and "pending" not in line:
            confirmed[line["key"]] = line["rows"]
    return confirmed


KILLS = [pytest.param("tensorboard", 15000, "folders", id="tensorboard"),
         pytest.param("wandb", 3000, "folders", id="wandb"),
         pytest.param("mlflow", 1500, "folders", id="mlflow-file-store"),
         pytest.param("tensorboard", 15000, "compact", id="tensorboard-compact-store"),
         pytest.param("mlflow", 1500, "compact", id="mlflow-file-store-compact-store")]


@pytest.mark.slow
@pytest.mark.parametrize("kind, iterations, store", KILLS)
def test_an_exporter_killed_mid_export_and_rerun_exports_every_row_once(kind, iterations, store, tmp_path,
                                                                         write_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's file store: it keeps a metric sent twice twice
    cfg = write_config(f"""
        name: walk
        repetitions: 1
        iterations: {iterations}
        path: out
        store: {store}
        grid: {{step: [1.0, 2.0, 3.0, 4.0]}}
        """)
    run_cli("Unsaved", str(cfg), cwd=tmp_path, check_rc=0, timeout=600)  # (the rows alone matter here)
    options = ["--tracking-uri", f"file://{tmp_path}/mlruns"] if kind == "mlflow" else []
    environment = {**script_env(), "MLFLOW_ALLOW_FILE_STORE": "true"}
    landed = False

    def beyond_journal() -> bool:  # the tracker holds rows the journal does not record (yet)
        if kind == "tensorboard":  # cheaply: an event file 10 kB (rows, not just its header) past its record
            recorded = {line["key"]: line for line in journal_lines(tmp_path / "out", kind) if "pending" not in line
                        and "key" in line}
            for path in (tmp_path / "out" / "tensorboard").glob("**/*tfevents*"):
                entry = recorded.get(str(path.parent.relative_to(tmp_path / "out" / "tensorboard")), {})
                size = entry.get("size", 0) if entry.get("file") == path.name else 0
                if path.stat().st_size > size + 10_000:
                    return True
            return False
        try:
            held = _held(kind, tmp_path)
        except ValueError:  # MLflow's file store read while the exporter writes a metric file: look again
            return False
        confirmed = _confirmed(tmp_path, kind)
        return any(len(columns.get("value", [])) > confirmed.get(key, 0) for key, columns in held.items())

    for _ in range(3):  # kill it when it has written to the tracker what it has not yet recorded
        exporter = subprocess.Popen(_export(kind, cfg, *options), cwd=tmp_path, env=environment,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda process=exporter: process.poll() is not None or beyond_journal(), "a write beyond the journal",
                 every=0.01)
        if exporter.poll() is not None:
            continue
        exporter.send_signal(signal.SIGKILL)
        exporter.wait()
        landed = True
        break
    assert landed, "no kill landed between a write to the tracker and its record in the journal"
    rerun = subprocess.run(_export(kind, cfg, *options), cwd=tmp_path, env=environment, capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    held, saved = _held(kind, tmp_path), saved_values(tmp_path / "out")  # read from either store
    assert set(held) == set(saved)
    for key, columns in saved.items():
        for column, values in columns.items():
            assert same_values(held[key][column], values), (key, column, held[key][column][:5], values[:5])


@pytest.mark.slow
def test_tensorboard_gets_scalars_hparams_sessions_and_states(tmp_path, write_config):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    cfg = write_config("""
        name: walk
        repetitions: 2
        iterations: 6
        path: out
        params: {fail_at: 3, fail_rep: 1}
        grid: {step: [1.0, 2.0]}
        export: {tensorboard: {}}
        """)
    run = run_cli("Deterministic", str(cfg), cwd=tmp_path)
    assert run.returncode == 1  # rep 1 fails at iteration 3 (its rows 0-2 stay)
    exported = subprocess.run(_export("tensorboard", cfg), cwd=tmp_path, env=script_env(), capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    for step, rep, status, rows in [("1.0", 0, api_pb2.STATUS_SUCCESS, 6), ("2.0", 1, api_pb2.STATUS_FAILURE, 3)]:
        accumulator = EventAccumulator(str(tmp_path / "out" / "tensorboard" / "walk" / f"s{step}" / f"rep_0{rep}"))
        accumulator.Reload()
        assert [event.step for event in accumulator.Scalars("value")] == list(range(rows))
        start = metadata.parse_session_start_info_plugin_data(
            accumulator.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content)
        assert start.group_name == f"walk__s{step}"
        assert start.hparams["step"].number_value == float(step) and start.hparams["fail_at"].number_value == 3
        end = metadata.parse_session_end_info_plugin_data(
            accumulator.SummaryMetadata(metadata.SESSION_END_INFO_TAG).plugin_data.content)
        assert end.status == status
        text = accumulator.Tensors("cluster_work/state/text_summary")[0].tensor_proto.string_val[0].decode()
        assert text == ("finished" if rep == 0 else "failed: RuntimeError: boom at 3")


@pytest.mark.slow
def test_the_readme_export_commands_work_as_printed(tmp_path):
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    commands = [line for line in lines if line.startswith("python -m cluster_work export")]
    assert len(commands) == 3, commands
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    for command in ["python examples/quickstart.py examples/quickstart.yml", *commands]:
        result = subprocess.run(command.replace("python ", f"{sys.executable} ", 1), shell=True, cwd=tmp_path,
                                env=script_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, command + "\n" + result.stderr
        assert "export" not in command or "60 rows exported" in result.stdout, result.stdout
    sweep = tmp_path / "examples" / "results" / "quickstart"
    assert len(tensorboard_events(sweep / "tensorboard")) == 6 and len(wandb_runs(sweep)) == 6


@pytest.mark.processes
def test_the_export_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "export.py"), "--repetitions", "2",
                             "--iterations", "5", "--trackers", "tensorboard", "--watch", "20"], env=script_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "rows/s" in result.stdout and "watch over 20 repetitions" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("store", ["folders", "compact"])
def test_a_repetition_a_campaign_stopped_carries_its_reason(tmp_path, write_config, store, mlflow_sqlite):
    from tracker_helpers import mlflow_runs

    cfg = write_config(f"""
        name: search
        repetitions: 1
        iterations: 6
        path: out
        store: {store}
        grid: {{step: [0.1, 5.0]}}
        steer: {{policy: threshold, metric: value, mode: min, bound: 1.0, min_iterations: 2}}
        """)
    run_cli("Deterministic", str(cfg), cwd=tmp_path, check_rc=0)
    uri = mlflow_sqlite(tmp_path)
    for kind, options in (("mlflow", ["--tracking-uri", uri]), ("tensorboard", [])):
        exported = subprocess.run(_export(kind, cfg, *options), cwd=tmp_path, env=script_env(), capture_output=True,
                                  text=True, timeout=300)
        assert exported.returncode == 0 and "8 rows exported" in exported.stdout, exported.stderr
    runs = {run.info.run_name: run for run in mlflow_runs(uri, "search")}
    stopped, finished = runs["search__s5.0 rep 0"], runs["search__s0.1 rep 0"]
    assert (stopped.info.status, stopped.data.tags["cluster_work.state"]) == ("KILLED", "stopped")
    assert stopped.data.tags["cluster_work.reason"].startswith("threshold: value ")
    assert (finished.info.status, finished.data.tags["cluster_work.state"]) == ("FINISHED", "finished")
    held = tensorboard_events(tmp_path / "out" / "tensorboard")
    assert [step for step, _ in held["search/s5.0/rep_00"]["value"]] == [0, 1]


def test_a_run_whose_metric_file_a_kill_left_empty_is_found_and_its_metrics_logged(tmp_path, monkeypatch):
    """A kill -9 inside MLflow's file store's log_batch can leave a metric file created but empty; the store's
    search (and get_run) then raise for every run of the experiment. The exporter still finds the run it created
    but did not record (by its tags alone) and logs the missing metrics into it (the append repairs the file).
    (Seen as a CI flake of the kill -9 test above: every later export retried forever.)"""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from cluster_work.export.mlflow_tracker import MlflowTracker
    from cluster_work.export.source import Repetition

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracker = MlflowTracker(f"file://{tmp_path}/mlruns")
    mine = Repetition("walk/s1.0/rep_00", str(tmp_path / "out"), str(tmp_path / "out" / "walk" / "s1.0"), "walk__s1.0",
                      "walk", 0)
    other = Repetition("walk/s2.0/rep_00", mine.sweep, mine.folder, "walk__s2.0", "walk", 0)
    for repetition in (other, mine):
        created = tracker.client.create_run(tracker._experiment_id(repetition), tags=tracker._tags(repetition, "S", 0))
        tracker.client.log_batch(created.info.run_id, metrics=[Metric("loss", 1.0, 0, 0)])
    (other_metric,) = (tmp_path / "mlruns").glob(f"*/{tracker._find(other, 'S', 0).info.run_id}/metrics/loss")
    other_metric.write_text("")  # (a kill between the file's creation and its line)
    with pytest.raises(ValueError, match="No data found"):
        MlflowClient(f"file://{tmp_path}/mlruns").search_runs([tracker._experiment_id(mine)])
    assert tracker._find(mine, "S", 0).info.run_id == created.info.run_id
    assert tracker._find(mine, "S", 1) is None
    run_id = tracker._find(other, "S", 0).info.run_id
    tracker.client.log_batch(run_id, metrics=[Metric("loss", 2.0, 0, 1)])
    assert [m.value for m in tracker.client.get_metric_history(run_id, "loss")] == [2.0]
    assert tracker.client.search_runs([tracker._experiment_id(mine)])  # (the store reads again)
