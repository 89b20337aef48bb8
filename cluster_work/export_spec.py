"""The `export:` block of an experiment document: which trackers a run exports its results to, as it runs.

    export:
      mlflow: {tracking_uri: "http://127.0.0.1:5000", experiment_name: "{base}"}
      tensorboard: {logdir: tb}          # default: <path>/tensorboard
      wandb: {project: "{base}"}         # offline runs below <dir>/wandb; dir: <path> by default
      # every tracker also takes interval: seconds between two looks at the results (default 1)

`{base}` is the base experiment's name, `{sweep}` the sweep folder's. Every problem is one line naming the
file, the experiment and the key (`'export.mlflow.tracking_uri'`), raised before anything is written. The
trackers' packages are not imported here: a config is checked where they are not installed.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import config_error
from .vocabulary import ConfigSource

KEYS = {"mlflow": ("tracking_uri", "experiment_name", "interval"), "tensorboard": ("logdir", "interval"),
        "wandb": ("project", "dir", "interval")}
REQUIRED = {"mlflow": ("tracking_uri",)}
TEMPLATES = ("experiment_name", "project")
DEFAULT_INTERVAL = 1.0


def check_export_block(block: Any, source: ConfigSource, name: str) -> dict[str, dict[str, Any]]:
    """The block as {tracker: options}; a ConfigError on the first problem."""
    if not isinstance(block, Mapping) or not block:
        raise config_error(source, f"must be a mapping of trackers ({', '.join(KEYS)}) to their options",
                           experiment=name, key="export")
    checked = {}
    for kind, options in block.items():
        if kind not in KEYS:
            raise config_error(source, f"unknown tracker (known: {', '.join(KEYS)})", experiment=name,
                               key=f"export.{kind}")
        checked[kind] = check_options(kind, {} if options is None else options, source, name)
    return checked


def check_options(kind: str, options: Any, source: ConfigSource | str, name: str) -> dict[str, Any]:
    where = f"export.{kind}"
    if not isinstance(options, Mapping):
        raise config_error(source, f"must be a mapping of {', '.join(KEYS[kind])}, got {options!r}",
                           experiment=name, key=where)
    for key, value in options.items():
        if key not in KEYS[kind]:
            raise config_error(source, f"unknown key (known: {', '.join(KEYS[kind])})", experiment=name,
                               key=f"{where}.{key}")
        if key == "interval":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise config_error(source, f"must be a number of seconds from 0 to 3600, got {value!r}",
                                   experiment=name, key=f"{where}.{key}")
        elif not isinstance(value, str) or not value.strip():
            raise config_error(source, f"must be a non-empty string, got {value!r}", experiment=name,
                               key=f"{where}.{key}")
        elif key in TEMPLATES:
            try:
                value.format(base="b", sweep="s")
            except (KeyError, IndexError, ValueError) as exc:
                raise config_error(source, f"may hold {{base}} and {{sweep}} only, got {value!r} ({exc!r})",
                                   experiment=name, key=f"{where}.{key}") from None
    for key in REQUIRED.get(kind, ()):
        if key not in options:
            raise config_error(source, "is required (e.g. http://127.0.0.1:5000 or sqlite:///mlflow.db)",
                               experiment=name, key=f"{where}.{key}")
    return dict(options)
