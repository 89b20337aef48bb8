"""MLflow: one MLflow experiment per base experiment, one run per repetition.

- The experiment is named by `experiment_name` ("{base}" by default; "{sweep}" is the sweep folder's name).
- A run is named "<expanded name> rep <r>" and tagged `cluster_work.experiment` (the expanded experiment: group
  the runs table by it to compare parameter sets), `cluster_work.base`, `cluster_work.rep`, `cluster_work.key`
  and `cluster_work.sweep_id` (how a restarted exporter finds its run again), `cluster_work.generation`.
- params = the expanded parameters, flattened (`model.width`); metrics = each row's numeric columns, step =
  iteration, timestamp = the run's start plus the row's `repetition_time` (deterministic: a row sent twice
  is the same metric, which MLflow's SQL stores keep once).
- State: `cluster_work.state` (pending, partial, running, finished, failed, stopped) with
  `cluster_work.reason` (why a campaign stopped it) or `cluster_work.error`; the run's status is RUNNING while
  it runs, SCHEDULED while it waits to be resumed, FINISHED, FAILED, or KILLED (stopped).
- A repetition whose rows were rewritten (`-r/-i`, `-d`) gets a new run, tagged `cluster_work.replaces` with the
  old run's id; the old run is deleted (MLflow's soft delete: hidden, restorable until `mlflow gc`).

The client's own retries are turned down (the exporter backs off itself, without blocking for minutes).
"""
from __future__ import annotations

import os
import posixpath
import re
from typing import Any, ClassVar

from ..vocabulary import RepetitionState
from .engine import digest
from .source import Repetition, Snapshot, numeric_columns, row_time

STATUS = {RepetitionState.RUNNING: "RUNNING", RepetitionState.PARTIAL: "SCHEDULED",
          RepetitionState.PENDING: "SCHEDULED", RepetitionState.FINISHED: "FINISHED",
          RepetitionState.FAILED: "FAILED", RepetitionState.STOPPED: "KILLED"}
METRICS_PER_BATCH = 1000  # MLflow's limits of one log_batch
PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
_BAD = re.compile(r"[^\w.\- /]")


def metric_name(column: str) -> str:
    """A result column as an MLflow metric or param name (which allow letters, digits, _ - . space /)."""
    name = _BAD.sub("_", column)
    if posixpath.normpath(name) != name or name.startswith(("/", ".")):
        name = "_" + name.replace("/", "_")
    return name[:250]


class MlflowTracker:
    kind: ClassVar[str] = "mlflow"
    min_gap: ClassVar[float] = 0.0

    def __init__(self, tracking_uri: str, experiment_name: str = "{base}"):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow import MlflowClient

        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.client = MlflowClient(tracking_uri)
        self._experiments: dict[str, str] = {}

    def destination(self, sweep: str) -> str:
        return f"{self.tracking_uri} {self.experiment_name}"

    def output_folders(self, sweep: str) -> list[str]:
        return []

    def unavailable(self, error: BaseException) -> bool:
        import requests

        if isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        text = str(error)
        return any(sign in text for sign in ("Max retries exceeded", "Connection refused", "Read timed out",
                                             "TEMPORARILY_UNAVAILABLE", "database is locked", " 502 ", " 503 "))

    def _experiment_id(self, repetition: Repetition) -> str:
        name = self.experiment_name.format(base=repetition.base, sweep=os.path.basename(repetition.sweep))
        if name not in self._experiments:
            from mlflow.exceptions import MlflowException

            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    # the UI then opens on the runs (a new experiment would open on GenAI traces)
                    self._experiments[name] = self.client.create_experiment(
                        name, tags={"mlflow.experimentKind": "custom_model_development"})
                except MlflowException:  # another exporter created it just now
                    experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                self._experiments[name] = experiment.experiment_id
        return self._experiments[name]

    def _tags(self, repetition: Repetition, sweep_id: str, gen: int) -> dict[str, str]:
        return {"cluster_work.sweep_id": sweep_id, "cluster_work.key": repetition.key,
                "cluster_work.key_id": digest(repetition.key.encode())[:16], "cluster_work.generation": str(gen),
                "cluster_work.experiment": repetition.experiment, "cluster_work.base": repetition.base,
                "cluster_work.rep": str(repetition.rep), "cluster_work.sweep": repetition.sweep}

    def _find(self, repetition: Repetition, sweep_id: str, gen: int) -> Any:
        """The run a killed exporter created for this generation (before it could record it), if any: its `info`."""
        experiment_id = self._experiment_id(repetition)
        tags = {"cluster_work.sweep_id": sweep_id, "cluster_work.key_id": digest(repetition.key.encode())[:16],
                "cluster_work.generation": str(gen)}
        try:
            runs = self.client.search_runs([experiment_id], max_results=1, filter_string=" and ".join(
                f"tags.`{key}` = '{value}'" for key, value in tags.items()))
        except ValueError:  # MLflow's file store, whose search reads every run's metrics: one a kill left empty
            return self._find_by_tags_in_file_store(experiment_id, tags)
        return runs[0] if runs else None

    def _find_by_tags_in_file_store(self, experiment_id: str, tags: dict[str, str]) -> Any:
        """`_find` in MLflow's file store by each run's tags alone: a metric file that a kill -9 left empty (created,
        its line not written yet) makes the store's search raise ("Metric ... is malformed. No data found."), for
        every run of the experiment, and its get_run too; the next `log_batch` into that run appends the line."""
        from types import SimpleNamespace

        from mlflow.entities import ViewType

        store = self.client._tracking_client.store  # (the file store's own listing: no public one skips metrics)
        for info in store._list_run_infos(experiment_id, ViewType.ACTIVE_ONLY):
            held = {tag.key: tag.value for tag in store._get_all_tags(info)}
            if all(held.get(key) == value for key, value in tags.items()):
                return SimpleNamespace(info=info)
        return None

    def recover(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> None:
        """Nothing to undo: `append` skips the metrics the run already holds."""

    def drop(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> dict[str, Any]:
        """Delete the run (a soft delete); the new run will say which one it replaces."""
        run_id = entry.get("run")
        if run_id is None:
            found = self._find(repetition, sweep_id, entry.get("gen", 0))
            run_id = found.info.run_id if found is not None else None
        if run_id is None:
            return {}
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_run(run_id)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc):
                raise
        return {"replaces": run_id}

    def append(self, repetition: Repetition, entry: dict[str, Any], snapshot: Snapshot, sweep_id: str,
               maybe_partial: bool) -> dict[str, Any]:
        from mlflow.entities import Metric, Param, RunTag

        gen = entry.get("gen", 0)
        run_id, t0 = entry.get("run"), float(entry.get("t0") or 0.0)
        if run_id is None:  # a new run, or one a killed exporter made but did not record
            run = self._find(repetition, sweep_id, gen)
            maybe_partial = maybe_partial or run is not None
            if run is None:
                tags = {**self._tags(repetition, sweep_id, gen), "mlflow.runName": self.run_name(repetition)}
                if gen:
                    tags["cluster_work.replaces"] = str(entry.get("replaces", ""))
                run = self.client.create_run(self._experiment_id(repetition), tags=tags,
                                             run_name=self.run_name(repetition))
            run_id, t0 = run.info.run_id, run.info.start_time / 1000.0
            params = [Param(metric_name(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(repetition.params.items())]
            for start in range(0, len(params), PARAMS_PER_BATCH):
                self.client.log_batch(run_id, params=params[start:start + PARAMS_PER_BATCH])
        rows = snapshot.rows[entry["rows"]:]
        metrics = [Metric(metric_name(column), value, int(row_time(t0, row) * 1000), row["iteration"])
                   for row in rows for column, value in numeric_columns(row).items()]
        if maybe_partial and metrics:
            held = {(m.key, m.step) for key in {m.key for m in metrics}
                    for m in self.client.get_metric_history(run_id, key)}
            metrics = [m for m in metrics if (m.key, m.step) not in held]
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + METRICS_PER_BATCH])
        if (entry.get("state"), entry.get("detail")) != (snapshot.state.value, snapshot.detail) or maybe_partial:
            state = [RunTag("cluster_work.state", snapshot.state.value)]
            if snapshot.state is RepetitionState.STOPPED:
                state.append(RunTag("cluster_work.reason", snapshot.detail[:8000]))
            if snapshot.state is RepetitionState.FAILED:
                state.append(RunTag("cluster_work.error", snapshot.detail[:8000]))
            self.client.log_batch(run_id, tags=state)
            status = STATUS[snapshot.state]
            if snapshot.final:  # its duration: the repetition's own time (the run started when the export did)
                end = int(row_time(t0, snapshot.rows[-1] if snapshot.rows else {}) * 1000)
                self.client.set_terminated(run_id, status, end_time=end)
            else:
                self.client.update_run(run_id, status=status)
        return {"run": run_id, "t0": t0}

    @staticmethod
    def run_name(repetition: Repetition) -> str:
        return f"{repetition.experiment} rep {repetition.rep}"

    def close(self) -> None:
        pass
