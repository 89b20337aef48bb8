"""The options an experiment script's `--plot` passes to its plotter: `--plot-option NAME=VALUE ...` (values
read as YAML: n=5, param=learning_rate) and `--mode min|max`.

A plotter that ranks (it takes a `mode`, as best_n) is never left to guess which end of a column is best:
the direction is `--mode`, else the `mode` of the experiment's `steer:` block where it steers by that
column, else a ValueError asking for it. Everything is checked before a file is written.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .plotters import MODES, check_options, get_plotter, plotter_options


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """`lr=0.1 model.width=8` -> {'lr': 0.1, 'model.width': 8} (values read as YAML)."""
    parsed = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ValueError(f"{item!r} must look like name=value")
        parsed[key] = yaml.safe_load(value)
    return parsed


@dataclass(frozen=True)
class PlotOptions:
    """What the command line says of the plotter `plotter`; `of` gives its options for one plot."""

    plotter: str
    given: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, plotter: str, assignments: Sequence[str], mode: str | None) -> PlotOptions:
        """From `--plotter`, `--plot-option` and `--mode`; KeyError for an unknown plotter, ValueError for an
        option it does not take, a bad mode or two different modes."""
        get_plotter(plotter)
        given = parse_assignments(assignments)
        if mode is not None:
            if given.get("mode", mode) != mode:
                raise ValueError(f"--mode {mode} and --plot-option mode={given['mode']} disagree")
            given["mode"] = mode
        if "mode" in given and given["mode"] not in MODES:
            raise ValueError(f"mode must be min or max, got {given['mode']!r}")
        check_options(plotter, given)
        return cls(plotter, given)

    @property
    def ranks(self) -> bool:
        """Whether the plotter takes a direction (a `mode` option)."""
        return "mode" in (plotter_options(get_plotter(self.plotter)) or [])

    def of(self, column: str, steer: Mapping[str, Any] | None) -> dict[str, Any]:
        """The options for a plot of `column` of experiments with this `steer:` block (None: none)."""
        if not self.ranks or "mode" in self.given:
            return dict(self.given)
        if isinstance(steer, Mapping) and steer.get("metric") == column:
            from cluster_work.steering.spec import SteerSpec

            return {**self.given, "mode": steer.get("mode", SteerSpec(policy="").mode)}
        raise ValueError(f"{self.plotter} ranks experiments by their final {column}: say which end is best, "
                         "--mode min or --mode max")
