"""Weights & Biases, offline: one W&B run per repetition, written as offline run folders below
`<dir>/wandb/` (dir: the sweep folder by default), to be uploaded with `wandb sync` where a W&B server can
be reached (W&B syncs the folders of one run id in order, as one run).

- project = `project` ("{base}" by default), group = the expanded experiment, name = "<expanded> rep <r>",
  config = the expanded parameters (flattened), history = each row's numeric columns with step = iteration,
  tags and summary `cluster_work.state` (+ `cluster_work.reason` / `cluster_work.error`); a failed repetition
  exits with code 1.
- A W&B run cannot take steps it already has, nor be edited offline: rows go in *segments*, each one offline
  run folder (`wandb.init` ... `finish`) of the same run id, named `offline-run-<time>-<id>-cw<n>`. A segment
  holds the rows new since the last one; while a repetition runs, at most one segment per `min_gap` seconds.
- Exactly once: the journal lists the finished segments. After a kill, `recover` removes the segment folders
  of the run that it does not list (a segment cut short), and their rows go out again. A repetition whose
  rows were rewritten gets a new run id (its generation's), and its old segment folders are removed.
"""
from __future__ import annotations

import glob
import os
import shutil
from typing import Any, ClassVar

from ..vocabulary import RepetitionState
from .engine import digest
from .source import Repetition, Snapshot, numeric_columns


class WandbTracker:
    kind: ClassVar[str] = "wandb"
    min_gap: ClassVar[float] = 30.0

    def __init__(self, project: str = "{base}", folder: str | None = None):
        os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        self.project = project
        self.folder = os.path.abspath(folder) if folder else None

    def _dir(self, sweep: str) -> str:
        return self.folder or os.path.abspath(sweep)

    def destination(self, sweep: str) -> str:
        return f"{self._dir(sweep)} {self.project}"

    def output_folders(self, sweep: str) -> list[str]:
        return [os.path.join(self._dir(sweep), "wandb")]

    def unavailable(self, error: BaseException) -> bool:
        return False  # offline: nothing to reach

    @staticmethod
    def run_id(repetition: Repetition, sweep_id: str, gen: int) -> str:
        return digest(f"{sweep_id}/{repetition.key}/{gen}".encode())[:16]

    def _segments(self, repetition: Repetition, run_id: str) -> list[str]:
        pattern = os.path.join(glob.escape(self._dir(repetition.sweep)), "wandb", f"offline-run-*-{run_id}-cw*")
        return sorted(glob.glob(pattern))

    def recover(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> None:
        """Remove the segment folders of this run that the journal does not list (cut short by a kill)."""
        kept = set(entry.get("segments", []))
        for folder in self._segments(repetition, self.run_id(repetition, sweep_id, entry.get("gen", 0))):
            if os.path.basename(folder) not in kept:
                shutil.rmtree(folder)

    def drop(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> dict[str, Any]:
        old = self.run_id(repetition, sweep_id, entry.get("gen", 0))
        for folder in self._segments(repetition, old):
            shutil.rmtree(folder)
        return {"replaces": old}

    def append(self, repetition: Repetition, entry: dict[str, Any], snapshot: Snapshot, sweep_id: str,
               maybe_partial: bool) -> dict[str, Any]:
        import wandb

        segments = list(entry.get("segments", []))
        run_id = self.run_id(repetition, sweep_id, entry.get("gen", 0))
        settings = wandb.Settings(silent=True, console="off", x_save_requirements=False, disable_git=True,
                                  x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True,
                                  save_code=False, x_sync_dir_suffix=f"cw{len(segments)}")
        state = snapshot.state.value
        tags = [state] + ([f"replaces:{entry['replaces']}"] if entry.get("replaces") else [])
        run = wandb.init(mode="offline", dir=self._dir(repetition.sweep), id=run_id,
                         project=self.project.format(base=repetition.base, sweep=os.path.basename(repetition.sweep)),
                         group=repetition.experiment, name=f"{repetition.experiment} rep {repetition.rep}",
                         config=dict(repetition.params), tags=tags, reinit="create_new", settings=settings)
        try:
            for row in snapshot.rows[entry["rows"]:]:
                run.log(numeric_columns(row), step=row["iteration"])
            summary = {"cluster_work.state": state, "cluster_work.rep": repetition.rep}
            if snapshot.state is RepetitionState.STOPPED:
                summary["cluster_work.reason"] = snapshot.detail
            if snapshot.state is RepetitionState.FAILED:
                summary["cluster_work.error"] = snapshot.detail
            run.summary.update(summary)
        finally:
            run.finish(exit_code=1 if snapshot.state is RepetitionState.FAILED else 0)
        segments.append(os.path.basename(run.settings.sync_dir))
        return {"id": run_id, "segments": segments}

    def close(self) -> None:
        pass
