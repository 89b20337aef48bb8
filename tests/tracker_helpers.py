"""Real trackers for the export tests, and what they hold read back with their own readers: an MLflow server
on 127.0.0.1 (SQLite backend) and MLflow's client, TensorBoard's event file loader and EventAccumulator,
and W&B's offline run files (its LevelDB-style log of `wandb_internal_pb2.Record`s)."""
from __future__ import annotations

import functools
import glob
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import polls

from cluster_work.store import ExperimentStore, find_experiment_folders

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# polls.wait_for as the tracker tests poll: each look asks a server (or reads its files) several times
wait_for = functools.partial(polls.wait_for, seconds=180.0, every=0.2)


class MlflowServer:
    """`mlflow server` with a SQLite backend on 127.0.0.1:`port`, in its own process group."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "server.log", "ab")
        self.process = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def up(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def wait(self) -> MlflowServer:
        """Until it answers, and has answered each kind of request the exporter makes once (a fresh server
        takes many seconds for its first requests, loading their code)."""
        wait_for(lambda: self.up() or (self.process.poll() is not None and _raise(self)), "the MLflow server",
                 seconds=240)
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = MlflowClient(self.uri)
        experiment = client.create_experiment(f"warm-up-{self.port}")
        run = client.create_run(experiment)
        client.log_batch(run.info.run_id, metrics=[Metric("m", 1.0, 0, 0)])
        client.search_runs([experiment], filter_string="tags.`a` = 'b'")
        client.get_metric_history(run.info.run_id, "m")
        client.set_terminated(run.info.run_id)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class Forwarder:
    """A port on 127.0.0.1 that nothing listens on (a tracker that is down) until `start()`; from then on it
    passes every connection through to a server's port, byte for byte (the tracker is back up)."""

    def __init__(self, target_port: int):
        self.port, self.target_port = free_port(), target_port
        self.uri = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None

    def start(self) -> Forwarder:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # stopped
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.target_port)) as upstream:
            back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            back.start()
            _pump(client, upstream)
            back.join()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy what `source` sends to `sink` until it closes its side, then close that side of `sink`."""
    try:
        while data := source.recv(1 << 16):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:  # the other side went away
        pass


def _raise(server: MlflowServer):
    raise AssertionError(f"mlflow server exited: {(server.folder / 'server.log').read_text()[-2000:]}")


def results(sweep: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every repetition's numeric columns from its results file: {key: {column: [(iteration, value)]}}."""
    from cluster_work.paths import export_key

    found: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for experiment in find_experiment_folders(str(sweep)):
        for rep in experiment.repetition_numbers():
            columns: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for row in ExperimentStore(experiment.path).repetition(rep).read_results().rows:
                for column, value in row.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and column != "iteration":
                        columns[column].append((row["iteration"], float(value)))
            found[export_key(experiment.path, str(sweep), rep)] = dict(columns)
    return found


def mlflow_runs(uri: str, experiment: str, deleted: bool = False) -> list:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], run_view_type=ViewType.DELETED_ONLY if deleted
                              else ViewType.ACTIVE_ONLY, max_results=1000)


def mlflow_metrics(uri: str, experiment: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{key: {metric: [(step, value)] sorted}} of the active runs, by their `cluster_work.key` tag."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    held: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run in mlflow_runs(uri, experiment):
        key = run.data.tags.get("cluster_work.key")
        if key is None:  # the file store writes a new run's tags one by one: a kill left one without them
            assert not run.data.metrics and uri.startswith("file:"), run
            continue
        assert key not in held, f"two active runs for {key}"
        held[key] = {name: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
                     for name in run.data.metrics}
    return held


def tensorboard_events(logdir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every scalar event in the event files below `logdir`, read raw (duplicates kept): {run: {tag: [...]}}."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto import event_pb2

    held: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(glob.glob(str(logdir / "**" / "*tfevents*"), recursive=True)):
        run = os.path.relpath(os.path.dirname(path), logdir)
        for record in RawEventFileLoader(path).Load():
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    held[run][value.tag].append((event.step, value.simple_value))
    return {run: {tag: sorted(values) for tag, values in tags.items()} for run, tags in held.items()}


def wandb_records(path: str):
    """The records of a W&B offline run file (`run-<id>.wandb`): a ':W&B' header, then LevelDB log blocks."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", data[:7]
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if position + 7 + length > len(data):  # cut short by a kill
            break
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_runs(folder: Path) -> dict[str, dict]:
    """The offline runs below `folder/wandb`, their segments merged by run id: config, group, name, project,
    tags, history {metric: [(step, value)]} (duplicates kept), summary and exit codes."""
    runs: dict[str, dict] = {}
    for path in sorted(glob.glob(str(folder / "wandb" / "offline-run-*" / "*.wandb"))):
        history: dict[str, list[tuple[int, float]]] = defaultdict(list)
        run: dict = {}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run = {"id": record.run.run_id, "group": record.run.run_group, "name": record.run.display_name,
                       "project": record.run.project, "tags": list(record.run.tags),
                       "config": {item.key: json.loads(item.value_json) for item in record.run.config.update
                                  if not item.key.startswith("_")}}
            elif kind == "history":
                step = record.history.step.num
                for item in record.history.item:
                    name = item.key or "/".join(item.nested_key)
                    if not name.startswith("_"):
                        history[name].append((step, float(json.loads(item.value_json))))
            elif kind == "summary":
                for item in record.summary.update:
                    name = item.key or "/".join(item.nested_key)
                    if name.startswith("cluster_work."):
                        run.setdefault("summary", {})[name] = json.loads(item.value_json)
            elif kind == "exit":
                run["exit"] = record.exit.exit_code
        if "id" not in run:  # a writer killed before it wrote its run's record: it sent nothing
            assert not run and not history, path
            continue
        merged = runs.setdefault(run["id"], {**run, "history": defaultdict(list), "exits": [], "segments": 0})
        merged.update({k: v for k, v in run.items() if k not in ("history", "exit")})
        merged["segments"] += 1
        merged["exits"].append(run.get("exit"))
        for name, values in history.items():
            merged["history"][name].extend(values)
    for run in runs.values():
        run["history"] = {name: sorted(values) for name, values in run["history"].items()}
    return runs


def same_values(held: list[tuple[int, float]], saved: list[tuple[int, float]], rel: float = 1e-6) -> bool:
    """Equal steps (each once) and values (TensorBoard keeps float32)."""
    return [s for s, _ in held] == [s for s, _ in saved] and all(
        math.isclose(a, b, rel_tol=rel, abs_tol=rel) or (math.isnan(a) and math.isnan(b))
        for (_, a), (_, b) in zip(held, saved))


def journal_lines(sweep: Path, kind: str) -> list[dict]:
    lines = []
    for path in glob.glob(str(sweep / ".cluster_work_export" / f"{kind}-*.jsonl")):
        for line in Path(path).read_bytes().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


TIMES = ("iteration_time", "repetition_time")  # measured, so different in any two runs of one sweep


def saved_values(sweep: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """`results` of any store (the default layout's folders or a compact store's segments), read through
    `load_results`: {key: {numeric column: [(iteration, value)]}}."""
    from cluster_work import ClusterWork, load_results
    from cluster_work.results import stored_config

    frame = load_results(sweep)
    found: dict[str, dict[str, list[tuple[int, float]]]] = {}
    folders = {stored_config(folder)["name"]: os.path.relpath(folder, sweep).replace(os.sep, "/")
               for folder in ClusterWork.get_experiments(str(sweep))}  # by the experiment's name
    for (name, rep), rows in frame.groupby(["experiment", "rep"], sort=False):
        relative = folders[name]
        columns: dict[str, list[tuple[int, float]]] = {}
        for column in rows.columns.drop(["experiment", "rep", "iteration"]):
            if column.startswith("params.") or rows[column].dtype.kind not in "if":
                continue
            values = [(int(i), float(v)) for i, v in zip(rows.iteration, rows[column]) if v == v]
            if values:
                columns[column] = values
        found[f"{relative}/rep_{int(rep):02d}"] = columns
    return found


def without_times(held: dict[str, dict[str, list[tuple[int, float]]]]) -> dict[str, dict[str, list]]:
    return {key: {column: values for column, values in columns.items() if column not in TIMES}
            for key, columns in held.items()}
