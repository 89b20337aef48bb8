"""`policy: optuna`: optuna suggests the points, told their results in job order (optional extra).

The study sees exactly what this plain loop would show it, whatever order runs end in (so its points
are the same sequentially, with `-n`, under MPI and after a resume):

    while asked < trials:
        batch = [study.ask(space) for _ in range(min(batch_size, trials - asked))]
        alive, previous = list(batch), 0
        for end in checkpoints + [R]:        # checkpoints: min_iterations, +interval, ... (with a pruner)
            for trial in list(alive):        # in the order asked
                for step in range(previous, end):
                    trial.report(metric(trial, step), step)
                if end == R:
                    study.tell(trial, metric(trial, R - 1))
                elif trial.should_prune():
                    study.tell(trial, state=PRUNED); alive.remove(trial)
            previous = end

`metric(trial, step)` is the metric of the trial's row of iteration `step`, reduced over its
repetitions. A trial's next segment starts as soon as the loop would have gone past it, so workers
wait only for the trials asked before it at the same checkpoint. Each trial is an added point named
`<base>__<values>_trial<k>`. Only what optuna asks runs: the document's own point (its params, the
base every trial's values are set on) is no experiment of the campaign (a document with a grid, list,
random or custom block is refused by `spec.check_steered_document`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import dotted
from ..sampling import Distribution, leaves
from .points import Params, metric_value, reduce

if TYPE_CHECKING:  # the core makes strategies (strategies.make_strategy): they name its types, never import it
    from .core import Steering
    from .jobs import Ended
    from .spec import SteerSpec


def distributions(spec: SteerSpec) -> dict[str, Any]:
    """Optuna's distributions of `steer.space`, by dotted name (randint's high is excluded, as under `random`)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {}
    for path, given in leaves(spec.space).items():
        distribution = Distribution.of(given)
        arguments = distribution.arguments
        if distribution.kind == "choice":
            found[dotted(path)] = CategoricalDistribution(list(arguments))
        elif distribution.kind == "randint":
            found[dotted(path)] = IntDistribution(int(arguments[0]), int(arguments[1]) - 1)
        else:
            found[dotted(path)] = FloatDistribution(float(arguments[0]), float(arguments[1]),
                                                    log=distribution.kind == "loguniform")
    return found


def make_study(spec: SteerSpec) -> Any:
    """The study of a campaign: its direction, seeded sampler and pruner from `spec`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    pruners = {"none": lambda: optuna.pruners.NopPruner(),
               "median": lambda: optuna.pruners.MedianPruner(),
               "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
                   min_resource=spec.min_iterations, reduction_factor=spec.reduction_factor),
               "hyperband": lambda: optuna.pruners.HyperbandPruner(
                   min_resource=spec.min_iterations, reduction_factor=spec.reduction_factor)}
    return optuna.create_study(direction="minimize" if spec.mode == "min" else "maximize",
                               sampler=samplers[spec.sampler](seed=spec.seed), pruner=pruners[spec.pruner]())


class _Trial:
    __slots__ = ("trial", "point", "level", "waiting", "rows")

    def __init__(self, trial: Any, point: int):
        self.trial, self.point, self.level, self.waiting = trial, point, 0, 0
        self.rows: dict[int, tuple[dict[str, Any], ...]] = {}  # rep -> rows of the segment that just ended


class OptunaStrategy:
    """Asks optuna for batches of points and tells it their results in the loop's order (module docstring)."""

    def __init__(self, spec: SteerSpec, board: Steering):
        from optuna.trial import TrialState

        self.spec, self.board, self.states = spec, board, TrialState
        self.study, self.space = make_study(spec), distributions(spec)
        self.paths = {dotted(path): path for path in leaves(spec.space)}
        self.by_point: dict[int, _Trial] = {}
        end = board.iterations(0)
        checks = list(range(spec.min_iterations, end, spec.interval)) if spec.pruner != "none" else []
        self.ends = [*checks, end]  # where each segment of a trial ends: the pruner's checks, then R
        self.asked = 0
        self.queue: list[_Trial] = []  # the trials of the batch still alive at `level`, in the order asked
        self.position = 0  # how many of `queue` were told at `level`
        self.going_on: list[_Trial] = []
        self.level = 0

    def start(self) -> None:
        self._ask()

    def _ask(self) -> None:
        count = min(self.spec.batch, self.spec.trials - self.asked)
        batch = []
        for _ in range(count):
            trial = self.study.ask(self.space)
            params: Params = tuple((self.paths[name], trial.params[name]) for name in self.space)
            point = self.board.add(params, self.board.repetitions(0), None, "trial")
            batch.append(self.by_point.setdefault(point, _Trial(trial, point)))
        self.asked += count
        self.queue, self.position, self.going_on, self.level = batch, 0, [], 0
        for trial in batch:
            self._run(trial)

    def _run(self, trial: _Trial) -> None:
        reps = self.board.alive_reps(trial.point)
        trial.waiting, trial.rows = len(reps), {}
        for rep in reps:
            self.board.run(trial.point, rep, self.ends[trial.level])

    def on_ended(self, ended: Ended) -> None:
        trial = self.by_point[ended.job.point]
        trial.waiting -= 1
        if ended.reached:
            trial.rows[ended.job.rep] = ended.rows
        while self.queue:  # tell, in the loop's order, every trial that is ready
            if self.position == len(self.queue):
                if not self.going_on:  # the batch is told: ask the next one
                    self._ask()
                    if not self.queue:
                        return
                    continue
                self.queue, self.position, self.going_on = self.going_on, 0, []
                self.level += 1
                continue
            head = self.queue[self.position]
            if head.waiting or head.level != self.level:
                return
            self.position += 1
            self._tell(head)

    def _tell(self, trial: _Trial) -> None:
        start = self.ends[trial.level - 1] if trial.level else 0
        value, where = None, f"experiment {self.board.name(trial.point)!r}"
        for step in range(start, self.ends[trial.level]):
            values = [metric_value(row, self.spec.metric or "", where) for rows in trial.rows.values()
                      for row in rows if row["iteration"] == step]
            if values:
                value = reduce(values, self.spec.reduce)
                trial.trial.report(value, step)
        final = trial.level + 1 == len(self.ends)
        if value is None:
            self.study.tell(trial.trial, state=self.states.FAIL)
        elif final:
            self.study.tell(trial.trial, value)
        elif trial.trial.should_prune():
            self.study.tell(trial.trial, state=self.states.PRUNED)
            self.board.stop(trial.point, None, f"optuna: pruned after {self.ends[trial.level]} iterations, "
                                               f"{self.spec.metric} {value:.6g}")
        else:
            trial.level += 1
            self.going_on.append(trial)
            self._run(trial)

    def planned(self, restores: bool) -> int:
        """The running segments' rest, the later segments of the batch's live trials, the trials not asked."""
        reps = self.board.repetitions(0)
        later = [sum(self.ends[level + 1:]) if not restores else self.ends[-1] - self.ends[level]
                 for level in [t.level for t in self.queue[self.position:] + self.going_on]]
        unasked = (self.spec.trials - self.asked) * (self.ends[-1] if restores else sum(self.ends))
        running = sum(job.until - (job.start if restores else 0) for job in self.board.jobs())
        return running + (sum(later) + unasked) * reps

    def rungs(self) -> list[dict[str, Any]]:
        return []
