"""TensorBoard: an event file per repetition, in `<logdir>/<base>/<params>/rep_NN/` (logdir: `<sweep>/tensorboard`
by default), written with TensorBoard's own record format and protos (no TensorFlow needed).

- Scalars: each row's numeric columns, step = iteration, wall time = the file's start plus the row's
  `repetition_time`.
- HParams: a session start summary with the expanded parameters (flattened) and group name = the expanded
  experiment, so that TensorBoard's HParams table shows one row per parameter set (its repetitions
  aggregated) and the sweep can be compared there; a session end summary once the repetition is finished
  (SUCCESS), failed (FAILURE) or stopped by a campaign (UNKNOWN), with a text summary `cluster_work/state`
  that says which, and why.

Exactly once: the journal entry names the repetition's one event file and its size after the last
recorded export. After a kill, `recover` cuts the file back to that size and removes any other event file
of ours in the folder. A repetition whose rows were rewritten, or that gets new rows or a new state after
its session ended, is written to a new file from its first row, and the old file is removed (a running
TensorBoard purges the old steps too: the new file starts with a SessionLog START at step 0).
"""
from __future__ import annotations

import os
import re
import socket
import time
from typing import Any, ClassVar

from ..paths import SweepPaths
from ..vocabulary import RepetitionState
from .source import Repetition, Snapshot, numeric_columns, row_time

OUR_FILE = re.compile(r"^events\.out\.tfevents\.\d+\..*\.cluster_work\.\d+\.\d+$")


class TensorBoardTracker:
    kind: ClassVar[str] = "tensorboard"
    min_gap: ClassVar[float] = 0.0

    def __init__(self, logdir: str | None = None):
        self.logdir = os.path.abspath(logdir) if logdir else None
        self._written = 0  # files this process made, for unique names

    def _root(self, sweep: str) -> str:
        return self.logdir or SweepPaths(sweep).tensorboard_folder

    def destination(self, sweep: str) -> str:
        return self._root(os.path.abspath(sweep))

    def output_folders(self, sweep: str) -> list[str]:
        return [self._root(sweep)]

    def unavailable(self, error: BaseException) -> bool:
        return False  # a local folder: its errors (a full disk) are this repetition's, retried later

    def folder(self, repetition: Repetition) -> str:
        return os.path.join(self._root(repetition.sweep), *repetition.key.split("/"))

    def _ours(self, folder: str) -> list[str]:
        try:
            return sorted(name for name in os.listdir(folder) if OUR_FILE.match(name))
        except FileNotFoundError:
            return []

    def recover(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> None:
        """Cut the event file back to what the journal recorded; remove our other event files."""
        folder = self.folder(repetition)
        for name in self._ours(folder):
            path = os.path.join(folder, name)
            if name != entry.get("file"):
                os.remove(path)
            elif os.path.getsize(path) > entry.get("size", 0):
                os.truncate(path, entry.get("size", 0))

    def drop(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> dict[str, Any]:
        folder = self.folder(repetition)
        for name in self._ours(folder):
            os.remove(os.path.join(folder, name))
        return {}

    def append(self, repetition: Repetition, entry: dict[str, Any], snapshot: Snapshot, sweep_id: str,
               maybe_partial: bool) -> dict[str, Any]:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder = self.folder(repetition)
        name, size = entry.get("file"), entry.get("size", 0)
        path = os.path.join(folder, name) if name else ""
        fresh = not name or entry.get("ended") or not os.path.isfile(path) or os.path.getsize(path) < size
        t0 = entry.get("t0") or time.time()
        first = 0 if fresh else entry["rows"]
        if fresh:
            os.makedirs(folder, exist_ok=True)
            self._written += 1
            name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.cluster_work." \
                   f"{entry.get('gen', 0)}.{os.getpid() * 1000 + self._written % 1000}"
            path = os.path.join(folder, name)
        with open(path, "ab") as handle:
            writer = RecordWriter(handle)
            if fresh:
                writer.write(event_pb2.Event(wall_time=t0, file_version="brain.Event:2").SerializeToString())
                writer.write(event_pb2.Event(wall_time=t0, step=0, session_log=event_pb2.SessionLog(
                    status=event_pb2.SessionLog.START)).SerializeToString())
                writer.write(_event(t0, 0, _session_start(repetition, t0)))
            for row in snapshot.rows[first:]:
                writer.write(_event(row_time(t0, row), row["iteration"], _scalars(numeric_columns(row))))
            if snapshot.final:
                step = snapshot.rows[-1]["iteration"] if snapshot.rows else 0
                end = row_time(t0, snapshot.rows[-1] if snapshot.rows else {})
                writer.write(_event(end, step, _session_end(snapshot, end)))
            handle.flush()
            size = handle.tell()
        if fresh:  # the old file's rows are all in the new one
            for old in self._ours(folder):
                if old != name:
                    os.remove(os.path.join(folder, old))
        return {"file": name, "size": size, "t0": t0, "ended": snapshot.final}

    def close(self) -> None:
        pass


def _event(wall_time: float, step: int, summary: Any) -> bytes:
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary).SerializeToString()


def _scalars(values: dict[str, float]) -> Any:
    from tensorboard.compat.proto import summary_pb2

    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                      for tag, value in values.items()])


def _hparam_value(value: Any) -> bool | float | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value if isinstance(value, str) else str(value)


def _session_start(repetition: Repetition, t0: float) -> Any:
    from tensorboard.plugins.hparams import plugin_data_pb2

    info = plugin_data_pb2.SessionStartInfo(group_name=repetition.experiment, start_time_secs=t0)
    for name, value in repetition.params.items():
        value = _hparam_value(value)
        if isinstance(value, bool):
            info.hparams[name].bool_value = value
        elif isinstance(value, float):
            info.hparams[name].number_value = value
        else:
            info.hparams[name].string_value = value
    return _hparams_summary("session_start_info", plugin_data_pb2.HParamsPluginData(session_start_info=info))


def _session_end(snapshot: Snapshot, end: float) -> Any:
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from tensorboard.plugins.text import metadata as text_metadata
    from tensorboard.util import tensor_util

    status = {RepetitionState.FINISHED: api_pb2.STATUS_SUCCESS,
              RepetitionState.FAILED: api_pb2.STATUS_FAILURE}.get(snapshot.state, api_pb2.STATUS_UNKNOWN)
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=end)
    summary = _hparams_summary("session_end_info", plugin_data_pb2.HParamsPluginData(session_end_info=info))
    text = snapshot.state.value + (f": {snapshot.detail}" if snapshot.detail else "")
    summary.value.add(tag="cluster_work/state/text_summary", tensor=tensor_util.make_tensor_proto(text),
                      metadata=text_metadata.create_summary_metadata(display_name="cluster_work/state",
                                                                     description=""))
    return summary


def _hparams_summary(which: str, data: Any) -> Any:
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata

    summary = summary_pb2.Summary()
    summary.value.add(tag=getattr(metadata, f"{which.upper()}_TAG"), tensor=metadata.NULL_TENSOR,
                      metadata=metadata.create_summary_metadata(data))
    return summary
