"""A user's policy (Colmena's Thinker), named in the config as `policy: "mymodule:MyPolicy"`.

    class GoldenSection(Policy):
        def start(self, campaign):                # before any work
            campaign.add({"x": 0.382})
        def on_results(self, campaign, results):  # one experiment's repetitions, in job order
            campaign.add({"x": ...})

The configured experiments run (all repetitions, every iteration) unless `start` stops them; then the
points `start` added. Results are told per *group* (the repetitions one decision asked for of one
experiment), once all of them ended, and groups in the order they were asked for: never in the order
they happen to end, so a policy sees the same calls sequentially, with `-n`, under MPI and after a
resume. On resume the policy is built anew and driven through the journal's results again, so it must
depend on nothing but its results and `campaign.rng` (seeded by `steer.seed`). A repetition it stops
before it was told its results is not told them; one that was still running is cancelled (how many
rows it saved then depends on timing; the decision does not).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .actions import PolicyError, SteeringError
from .points import point_params

if TYPE_CHECKING:
    import numpy as np

    from ..expansion import ExpandedExperiment
    from .core import Steering
    from .jobs import Ended
    from .spec import SteerSpec


class Policy:
    """Base of a user's policy; override `start` and `on_results` (both do nothing by default)."""

    def start(self, campaign: Campaign) -> None:
        """Called once, before any work: add points, stop configured experiments."""

    def on_results(self, campaign: Campaign, results: list[Result]) -> None:
        """Called with the results of one group of repetitions (sorted by repetition)."""


class Result:
    """One repetition's run as a policy is told it: `row` is the campaign's columns in its last saved row
    (`iteration`), `rows` every row it saved in this run; `kind` 'finished', 'failed' or 'bad_parameter'."""

    __slots__ = ("experiment", "rep", "iteration", "row", "rows", "kind", "error", "_of")

    def __init__(self, ended: Ended):
        self.experiment, self.rep = ended.job.experiment.name, ended.job.rep
        self.kind, self.error = ended.kind.value, ended.error
        self.rows = list(ended.rows)
        self.row = dict(self.rows[-1]) if self.rows else {}
        self.iteration = self.rows[-1]["iteration"] if self.rows else ended.job.start - 1
        self._of = ended.job.experiment

    @property
    def params(self) -> dict[str, Any]:
        """The experiment's params (the document's, with its own values set)."""
        return self._of.params

    def __repr__(self) -> str:
        return f"Result({self.experiment!r}, rep={self.rep}, iteration={self.iteration}, kind={self.kind!r})"


class Campaign:
    """What a policy may do: `add` points, `stop` experiments or repetitions, `finish`; `rng`, `experiments`."""

    def __init__(self, strategy: PolicyStrategy, rng: np.random.Generator):
        self._strategy, self.rng = strategy, rng

    @property
    def experiments(self) -> Sequence[ExpandedExperiment]:
        """Every experiment of the campaign, configured then added, in order."""
        return self._strategy.board.experiments

    def add(self, params: Mapping[str, Any], repetitions: int = 1, iterations: int | None = None) -> str:
        """A new experiment with the document's params and these values; its name."""
        return self._strategy.add(params, repetitions, iterations)

    def stop(self, name: str, rep: int | None = None, reason: str = "stopped by the campaign's policy") -> None:
        """Stop experiment `name` (every repetition not told yet) or its repetition `rep`."""
        self._strategy.stop(name, rep, reason)

    def finish(self) -> None:
        """Ask for nothing more: the campaign ends when what was asked for has ended."""
        self._strategy.board.finish()


@dataclass
class _Group:
    point: int
    pending: int
    results: dict[int, Result] = field(default_factory=dict)


class PolicyStrategy:
    """Drives a user's Policy: issues runs, tells results in job order (see the module docstring)."""

    def __init__(self, spec: SteerSpec, board: Steering):
        import numpy as np

        self.spec, self.board = spec, board
        try:
            self.policy = spec.policy_class(**spec.options)
        except Exception as exc:
            raise PolicyError(f"steer.policy {spec.policy!r} cannot be built: {type(exc).__name__}: {exc}") from exc
        self.campaign = Campaign(self, np.random.default_rng(spec.seed))
        self.groups: dict[int, _Group] = {}
        self.order: deque[int] = deque()
        self.job_group: dict[int, int] = {}
        self.told: set[tuple[int, int]] = set()
        self.calling = self.starting = False
        self.deferred: list[int] = []
        self.made = 0  # groups made so far (a group's key)

    def start(self) -> None:
        self.starting = True
        self._call(self.policy.start)
        self.starting = False
        if not self.board.finished:  # a policy that finishes in `start` runs nothing
            for point in [*range(self.board.configured_count()), *self.deferred]:
                self._issue(point)

    def add(self, params: Mapping[str, Any], repetitions: int, iterations: int | None) -> str:
        if self.board.finished:
            raise SteeringError("campaign.add after campaign.finish")
        for key, value, least in (("repetitions", repetitions, 1), ("iterations", iterations, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise SteeringError(f"campaign.add: {key} must be a positive integer, got {value!r}")
        point = self.board.add(point_params(params), repetitions, iterations, "add")
        if self.starting:
            self.deferred.append(point)
        else:
            self._issue(point)
        return self.board.name(point)

    def stop(self, name: str, rep: int | None, reason: str) -> None:
        point = self.board.index_of(name)
        if point is None:
            raise SteeringError(f"campaign.stop: no experiment is named {name!r}")
        reps = range(self.board.repetitions(point)) if rep is None else [rep]
        if rep is not None and not 0 <= rep < self.board.repetitions(point):
            raise SteeringError(f"campaign.stop: {name!r} has no repetition {rep}")
        for job in self.board.stop(point, [r for r in reps if (point, r) not in self.told], reason):
            self.groups[self.job_group.pop(job.number)].pending -= 1

    def _issue(self, point: int) -> None:
        reps = self.board.alive_reps(point)
        if not reps:
            return
        key = self.made = self.made + 1
        self.groups[key] = _Group(point, len(reps))
        self.order.append(key)
        for rep in reps:
            self.job_group[self.board.run(point, rep, self.board.iterations(point)).number] = key

    def on_ended(self, ended: Ended) -> None:
        key = self.job_group.pop(ended.job.number)
        group = self.groups[key]
        group.pending -= 1
        group.results[ended.job.rep] = Result(ended)
        self._tell()

    def _tell(self) -> None:
        """Tell every group at the head of the order whose repetitions all ended."""
        while not self.calling and not self.board.finished and self.order and not self.groups[self.order[0]].pending:
            group = self.groups.pop(self.order.popleft())
            self.told.update((group.point, rep) for rep in group.results)
            results = [group.results[rep] for rep in sorted(group.results)
                       if self.board.rep(group.point, rep).closed != "stopped"]
            if results:
                self._call(self.policy.on_results, results)

    def _call(self, method: Callable[..., None], *args: Any) -> None:
        self.calling = True
        try:
            method(self.campaign, *args)
        except Exception as exc:
            raise PolicyError(f"steer.policy {self.spec.policy!r} raised in {method.__name__}: "
                              f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.calling = False

    def planned(self, restores: bool) -> int:
        return sum(job.until - (job.start if restores else 0) for job in self.board.jobs())

    def rungs(self) -> list[dict[str, Any]]:
        return []
