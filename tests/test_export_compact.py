"""The exporter on the compact store (`store: compact`): the same runs, rows, parameters and states in real
TensorBoard event files, W&B offline runs and an MLflow SQLite store as the same sweep in the default layout
gives, exported once (a second pass and a continued sweep export only what is new, a restarted repetition
replaces its run), followed live beside a run by the `export:` block, and its watch looking only at the
repetitions whose events are new; in either layout, a repetition exported while running is exported again
when its lock is released."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, script_env
from tracker_helpers import (
    journal_lines,
    mlflow_metrics,
    mlflow_runs,
    same_values,
    saved_values,
    tensorboard_events,
    wait_for,
    wandb_runs,
    without_times,
)

from cluster_work.compact_store import experiment_store
from cluster_work.expansion import expand_all
from cluster_work.export.source import Watch

SWEEP = """\
name: DEFAULT
repetitions: 2
iterations: 5
path: out
params: {{fail_at: 3, fail_rep: 1}}
{store}
---
name: walk
grid: {{step: [1.0, 2.0]}}
---
name: single
params: {{step: 0.5}}
"""
LAYOUTS = ["folders", "compact"]


def _sweep(folder: Path, layout: str, *args: str) -> Path:
    """The sweep in `folder` in `layout`; run (rep 1 of every point fails at iteration 3: 3 rows, FAILED)."""
    folder.mkdir(exist_ok=True)
    (folder / "config.yml").write_text(SWEEP.format(store="store: compact" if layout == "compact" else ""))
    assert run_cli("Deterministic", "config.yml", *args, cwd=folder).returncode == 1
    return folder


def _export(kind: str, folder: Path, *options: str) -> subprocess.CompletedProcess:
    extra = ["--tracking-uri", f"sqlite:///{folder}/mlflow.db"] if kind == "mlflow" else []
    result = subprocess.run([sys.executable, "-m", "cluster_work", "export", kind, "config.yml", *extra, *options],
                            cwd=folder, env=script_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _held(kind: str, folder: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """What the tracker holds, {key: {metric: [(step, value)]}}, read with its own readers."""
    if kind == "tensorboard":
        return tensorboard_events(folder / "out" / "tensorboard")
    if kind == "wandb":
        keys = {line["id"]: line["key"] for line in journal_lines(folder / "out", "wandb") if "id" in line}
        return {keys[run_id]: run["history"] for run_id, run in wandb_runs(folder / "out").items()}
    return {key: metrics for base in ("walk", "single")
            for key, metrics in mlflow_metrics(f"sqlite:///{folder}/mlflow.db", base).items()}


def _runs(kind: str, folder: Path) -> dict[str, tuple]:
    """Each run's name, parameters and state as the tracker holds them, by repetition key."""
    if kind == "mlflow":
        return {run.data.tags["cluster_work.key"]: (
            run.info.run_name, run.info.status, run.data.params,
            {k: v for k, v in run.data.tags.items() if k.startswith("cluster_work.")
             and k not in ("cluster_work.sweep_id", "cluster_work.sweep")})
            for base in ("walk", "single") for run in mlflow_runs(f"sqlite:///{folder}/mlflow.db", base)}
    if kind == "wandb":
        keys = {line["id"]: line["key"] for line in journal_lines(folder / "out", "wandb") if "id" in line}
        return {keys[run_id]: (run["group"], run["name"], run["project"], run["tags"], run["config"],
                               run.get("summary"), run["exits"]) for run_id, run in wandb_runs(folder / "out").items()}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for key in _held(kind, folder):
        accumulator = EventAccumulator(str(folder / "out" / "tensorboard" / key))
        accumulator.Reload()
        found[key] = accumulator.Tensors("cluster_work/state/text_summary")[-1].tensor_proto.string_val[0].decode()
    return found


def _exactly_the_rows(held, saved) -> None:
    assert set(held) == set(saved)
    for key, columns in saved.items():
        assert set(held[key]) == set(columns), key
        for column, values in columns.items():
            assert same_values(held[key][column], values), (key, column, held[key][column], values)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory, mlflow_sqlite):
    root = tmp_path_factory.mktemp("layouts")
    folders = {layout: _sweep(root / layout, layout) for layout in LAYOUTS}
    for folder in folders.values():
        mlflow_sqlite(folder)  # the store _export(mlflow) exports into, empty
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tensorboard", "mlflow", "wandb"])
def test_a_compact_sweep_exports_what_the_same_sweep_in_folders_exports(sweeps, kind):
    for folder in sweeps.values():
        assert "24 rows exported" in _export(kind, folder).stdout  # 3 points x (5 + 3) rows
        _exactly_the_rows(_held(kind, folder), saved_values(folder / "out"))  # each row once, timings too
    held = {layout: _held(kind, folder) for layout, folder in sweeps.items()}
    assert len(held["compact"]) == 6 and without_times(held["compact"]) == without_times(held["folders"])
    runs = {layout: _runs(kind, folder) for layout, folder in sweeps.items()}
    assert runs["compact"] == runs["folders"]
    assert "RuntimeError: boom at 3" in str(runs["compact"]["walk/s1.0/rep_01"])  # the state: failed, with its error
    again = _export(kind, sweeps["compact"])  # what was exported is not exported again
    assert "0 rows exported, 0 runs replaced" in again.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tensorboard", "mlflow"])
def test_a_continued_compact_sweep_exports_only_what_is_new_and_a_restarted_repetition_replaces_its_run(
        tmp_path, kind, mlflow_sqlite):
    folder = _sweep(tmp_path, "compact", "-e", "walk")
    if kind == "mlflow":
        mlflow_sqlite(folder)  # the store _export(mlflow) exports into, empty
    assert "16 rows exported" in _export(kind, folder).stdout  # walk's 2 points
    _sweep(tmp_path, "compact")  # then the rest (single); walk's failed repetitions fail again at 3: no new rows
    assert "8 rows exported, 0 runs replaced" in _export(kind, folder).stdout
    run_cli("Deterministic", "config.yml", "-e", "walk__s2.0", "-r", "0", "-i", "2", cwd=folder,
            check_rc=0)  # rows 2-4 of walk__s2.0 rep 0 written again
    assert "5 rows exported, 1 runs replaced" in _export(kind, folder).stdout
    _exactly_the_rows(_held(kind, folder), saved_values(folder / "out"))


@pytest.mark.slow
def test_an_export_block_follows_a_compact_run_live(tmp_path):
    (tmp_path / "config.yml").write_text(
        "name: live\nrepetitions: 2\niterations: 30\npath: out\nstore: compact\nparams: {sleep: 0.1}\n"
        "grid: {step: [1.0, 2.0]}\nexport: {tensorboard: {interval: 0.2}}\n")
    run = subprocess.Popen([sys.executable, str(Path(__file__).with_name("experiments.py")), "Deterministic",
                            "config.yml", "-n", "2"], cwd=tmp_path, env=script_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:  # rows reach the tracker while the run runs
        wait_for(lambda: any(len(tags.get("value", [])) >= 2 for tags in
                             tensorboard_events(tmp_path / "out" / "tensorboard").values()) or run.poll() is not None,
                 "rows in TensorBoard")
        assert run.poll() is None, "the run ended before a row reached TensorBoard"
    finally:
        _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    wait_for(lambda: len(tensorboard_events(tmp_path / "out" / "tensorboard")) == 4 and all(
        len(tags["value"]) == 30 for tags in tensorboard_events(tmp_path / "out" / "tensorboard").values()),
        "every row in TensorBoard")
    _exactly_the_rows(tensorboard_events(tmp_path / "out" / "tensorboard"), saved_values(tmp_path / "out"))


def _append(experiment, rep: int, rows: range) -> None:
    writer = experiment_store(experiment.path, experiment.config).repetition(rep).open_writer()
    for n in rows:
        writer.append({"iteration": n, "value": float(n)})
    writer.close(sync=False)


def test_the_watch_of_a_compact_store_looks_only_at_repetitions_with_new_events(tmp_path):
    experiments = expand_all([{"name": "g", "repetitions": 3, "iterations": 4, "path": str(tmp_path),
                               "store": "compact", "params": {"a": 0}, "grid": {"a": list(range(20))}}])
    for experiment in experiments:
        for rep in range(3):
            _append(experiment, rep, range(2))
            experiment_store(experiment.path, experiment.config).write_config(experiment.config, sync=False)
    watch, other = Watch([(str(tmp_path), None)]), Watch([(str(tmp_path), None)])  # (two exporters in a process)
    assert len(list(other.poll(now=0.0))) == 60
    first = {repetition.key: (repetition, sig) for repetition, sig in watch.poll(now=0.0)}
    assert len(first) == 60 and all(sig is not None for _, sig in first.values())
    assert first["g/a7/rep_02"][0].iterations == 4 and first["g/a7/rep_02"][0].params == {"a": 7}
    assert first["g/a7/rep_02"][0].experiment == "g__a7" and first["g/a7/rep_02"][0].base == "g"
    assert list(watch.poll(now=1.0)) == []  # nothing new: nothing looked at
    _append(experiments[7], 2, range(2, 3))
    [(changed, sig)] = watch.poll(now=2.0)
    assert changed.key == "g/a7/rep_02" and sig != first["g/a7/rep_02"][1]
    assert [(r.key, s) for r, s in other.poll(now=2.0)] == [(changed.key, sig)]  # each sees it
    experiment_store(experiments[3].path, experiments[3].config).delete()  # -d: its repetitions go, once
    gone = list(watch.poll(now=3.0))
    assert len(list(other.poll(now=3.0))) == 3
    assert sorted(r.key for r, _ in gone) == [f"g/a3/rep_0{rep}" for rep in range(3)] and {s for _, s in gone} == {None}
    assert list(watch.poll(now=4.0)) == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_repetition_exported_while_running_is_exported_again_when_its_lock_is_released(tmp_path, layout):
    """Its last row saved, a repetition is RUNNING until its writer lets go of it, which writes nothing: the
    tracker must not keep it RUNNING (in either layout)."""
    from cluster_work.export.engine import Exporter
    from cluster_work.export.spec import make_tracker

    [experiment] = expand_all([{"name": "e", "repetitions": 1, "iterations": 3, "path": str(tmp_path),
                                "store": layout}])
    store = experiment_store(experiment.path, experiment.config)
    store.write_config(experiment.config, sync=False)
    writer = store.repetition(0).open_writer()
    for n in range(3):
        writer.append({"iteration": n, "value": float(n)})
    exporter = Exporter(make_tracker("tensorboard", {}), [(str(tmp_path), None)])
    exporter.open()
    try:
        assert exporter.poll() == 3
        assert exporter.journals[str(tmp_path)].get("e/rep_00")["state"] == "running"
        writer.close(sync=False)
        exporter.poll()
        assert exporter.journals[str(tmp_path)].get("e/rep_00")["state"] == "finished"
    finally:
        exporter.close()
