"""What a steered campaign asks of the engine (`Run`, `Stop`, `Add`, `Finish`), and its errors.

Each action has a journal record (`record()`): plain JSON, compared byte for byte on replay, so
that a campaign resumed from its journal can prove it makes the decisions it made before. The
`experiment` objects an action carries are for the engine only and never journaled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ClusterWorkError

if TYPE_CHECKING:
    from ..expansion import ExpandedExperiment


class SteeringError(ClusterWorkError):
    """A campaign cannot go on: its journal does not match its config, an outcome lacks the metric."""


class PolicyError(SteeringError):
    """A user's policy raised; `__cause__` holds its exception (and its traceback)."""


@dataclass(frozen=True)
class Run:
    """Run repetition `rep` of `experiment_name` from its saved rows up to `until` saved iterations.

    `job` numbers the runs of one campaign in the order they were decided (the "job order" in which a
    policy is told results); pass it back with the outcome (`Steering.on_outcome(outcome, job)`), or
    build the Segment with `index=job`. The segment's `columns` are `Steering.columns`.
    """

    experiment_name: str
    rep: int
    until: int
    job: int
    experiment: ExpandedExperiment | None = field(default=None, compare=False, repr=False)

    def record(self) -> dict[str, Any]:
        return {"k": "run", "job": self.job, "e": self.experiment_name, "rep": self.rep, "until": self.until}


@dataclass(frozen=True)
class Stop:
    """Record repetition `rep` of `experiment_name` as stopped (with `reason`), cancelling it if it runs.

    `rep` None: every repetition of the experiment that has not failed (all of them are paused then: a
    built-in policy stops an experiment only where it waits at a rung). A user's policy stops named
    repetitions whose results it has not been told yet: one that finished meanwhile is stopped too, so
    that its record does not depend on timing (its rows stay).
    """

    experiment_name: str
    rep: int | None
    reason: str

    def record(self) -> dict[str, Any]:
        return {"k": "stop", "e": self.experiment_name, "rep": self.rep, "reason": self.reason}


@dataclass(frozen=True)
class Add:
    """A new point of the campaign: `experiment` (see `points.expand_added`), built from the document.

    `params`: the point's own values, as (key path, value) pairs in the order the policy gave them.
    """

    experiment_name: str
    params: tuple[tuple[tuple[str, ...], Any], ...]
    repetitions: int
    iterations: int
    experiment: ExpandedExperiment | None = field(default=None, compare=False, repr=False)

    def record(self) -> dict[str, Any]:
        return {"k": "add", "e": self.experiment_name, "params": [[list(path), value] for path, value in self.params],
                "repetitions": self.repetitions, "iterations": self.iterations}


@dataclass(frozen=True)
class Finish:
    """The campaign asks for nothing more: it is over once the runs already asked for have ended."""

    def record(self) -> dict[str, Any]:
        return {"k": "finish"}


Action = Run | Stop | Add | Finish
DECISION_KINDS = frozenset({"run", "stop", "add", "finish"})
