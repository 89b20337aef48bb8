"""The trackers an exporter writes to, made from their checked options (see cluster_work/export_spec.py, which
the config's validation uses without importing this package: the trackers' packages are imported here,
by the exporter only)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..export_spec import DEFAULT_INTERVAL, KEYS, check_export_block, check_options

__all__ = ["DEFAULT_INTERVAL", "KEYS", "check_export_block", "check_options", "make_tracker"]


def make_tracker(kind: str, options: Mapping[str, Any]) -> Any:
    """The tracker of `kind` with these (checked) options; imports its package."""
    if kind == "mlflow":
        from .mlflow_tracker import MlflowTracker

        return MlflowTracker(options["tracking_uri"], options.get("experiment_name", "{base}"))
    if kind == "tensorboard":
        from .tensorboard_tracker import TensorBoardTracker

        return TensorBoardTracker(options.get("logdir"))
    from .wandb_tracker import WandbTracker

    return WandbTracker(options.get("project", "{base}"), options.get("dir"))
