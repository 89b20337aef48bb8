"""The worker side of a weighted ensemble: run one segment of each walker of a block.

A `WalkerBlock` is a picklable work item (it has an `index`, `run` and `lost`, as the executors and
`runner.ExperimentTask` expect): the walkers of one iteration that one worker runs, each as (walker id, its
pickled state, or None to start from a basis state). For each walker, in the block's order:

    reset(config, walker)          for a basis state, and before the first walker an instance runs
    set_state(state)               for the others
    self._seed = seed of (experiment, ensemble seed, walker, iteration); `random` and numpy's global generator
                                   seeded (lazily: a segment that draws from them is run again, seeded; see seeding)
    row = iterate(config, walker, iteration); state = get_state()

One instance of the user's class runs the whole block, so the framework's cost per walker is a few
microseconds (seeds, pickling; see benchmarks/weighted_ensemble.py). The contract that makes results
independent of how walkers are grouped into blocks: `set_state` restores everything `iterate` depends
on, and `iterate` draws its random numbers from `self._seed` (or the global generators, seeded per
walker). Seeds are derived here (`walker_seed`), not sent: the same on every backend.
"""
from __future__ import annotations

import logging
import pickle
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameterArgument
from ..runner import flatten_result, interruption
from ..seeding import LazySeeding, seed_for
from ..task_context import TaskContext
from ..vocabulary import Outcome, OutcomeKind, RunSettings

if TYPE_CHECKING:
    from ..expansion import ExpandedExperiment
    from ..experiment import ClusterWork

log = logging.getLogger("cluster_work")


@dataclass(frozen=True)
class WalkerBlock:
    """Walkers of one iteration for one worker. `part` numbers the blocks of the iteration (the driver
    matches outcomes by (iteration, part)); `index` is the executor's, unique among items in flight,
    and may be renumbered (`dataclasses.replace`) by whoever submits it."""

    index: int
    experiment: ExpandedExperiment
    iteration: int
    part: int
    walkers: tuple[tuple[int, bytes | None], ...]
    seed: int = 0  # the ensemble's seed: it goes into every walker's seeds

    @property
    def label(self) -> str:
        return f"{self.experiment.name} iteration {self.iteration} block {self.part}"

    def run(self, experiment_class: type[ClusterWork], settings: RunSettings, context: TaskContext) -> BlockOutcome:
        return run_walker_block(experiment_class, self, context, settings)

    def lost(self, stopping: bool, cause: str) -> BlockOutcome:
        """The outcome of this block when its worker process died under it for `cause` (see
        runner.ExperimentTask.lost): interrupted if the run is stopping, else a failure of its iteration,
        which a rerun retries."""
        outcome = BlockOutcome(self.index, self.label, OutcomeKind.INTERRUPTED, iteration=self.iteration,
                               part=self.part)
        if not stopping:
            outcome.kind = OutcomeKind.FAILED
            outcome.error = f"{self.label}: {cause}"
        return outcome


@dataclass
class BlockOutcome(Outcome):
    """What a block sends back: for each walker it ran, in the block's order, the row and the pickled
    state after its segment. `kind` is FINISHED only if every walker of the block ran."""

    iteration: int = 0
    part: int = 0
    walkers: tuple[int, ...] = ()
    rows: list[dict[str, Any]] = field(default_factory=list)
    states: list[bytes] = field(default_factory=list)


def walker_seed(name: str, seed: int, walker: int, iteration: int, basis: bool = False, rank: int = 0) -> int:
    """The seed walker `walker` of `iteration` sees in `iterate` (or, `basis`, in `reset`): keys of their own
    (never those of a repetition of a plain run), different for every ensemble seed. In an MPI group each
    rank has its own, as in a repetition; rank 0's is the seed a run without MPI has."""
    return seed_for(_seed_key(name, seed, basis), walker, iteration, rank)


def _seed_key(name: str, seed: int, basis: bool) -> str:
    return f"{name}\x00ensemble {seed}{' basis' if basis else ''}"


def state_hooks_missing(experiment_class: type) -> str | None:
    """Why `experiment_class` cannot run walkers (it lacks get_state or set_state), or None."""
    missing = [hook for hook in ("get_state", "set_state") if not callable(getattr(experiment_class, hook, None))]
    if not missing:
        return None
    return (f"{experiment_class.__name__} needs {' and '.join(missing)} for a weighted ensemble: get_state() returns "
            "the walker's state (picklable), set_state(state) restores it")


def run_walker_block(experiment_class: type[ClusterWork], block: WalkerBlock, context: TaskContext = TaskContext(),
                     settings: RunSettings = RunSettings()) -> BlockOutcome:
    """Run one segment of every walker of `block`; never raises for the experiment's errors (they fail
    the block: FAILED, or BAD_PARAMETER for InvalidParameterArgument). A stop or a cancel ends the block
    before its next walker (INTERRUPTED / CANCELLED); its rows so far come back but are not committed."""
    started = time.perf_counter()
    experiment, n = block.experiment, block.iteration
    config, name = experiment.config, experiment.name
    outcome = BlockOutcome(block.index, block.label, OutcomeKind.FINISHED, iteration=n, part=block.part)
    rows, states, ran = outcome.rows, outcome.states, []
    comm = context.comm
    rank = comm.Get_rank() if comm is not None and comm.Get_size() > 1 else 0
    iterate_key, basis_key = _seed_key(name, block.seed, False), _seed_key(name, block.seed, True)
    stage, walker, instance = "__init__", -1, None
    try:
        problem = state_hooks_missing(experiment_class)
        if problem:
            raise TypeError(problem)
        instance = experiment_class()
        _bind(instance, experiment, context, settings, n)
        hooks: Any = instance  # get_state and set_state are the user's (checked above), not ClusterWork's
        get_state, set_state = hooks.get_state, hooks.set_state
        seeding = LazySeeding(experiment_class, allowed=comm is None or comm.Get_size() == 1)

        def segment(state: bytes | None, reset: bool) -> tuple[Any, float]:
            """One walker's segment from its state: reset (a basis state, or the instance's first walker),
            set_state, iterate; the global generators seeded before reset and iterate (see LazySeeding)."""
            nonlocal stage
            if reset:
                stage = "reset"
                instance._seed = seed_for(basis_key, walker, n, rank)
                seeding.seed(instance._seed)
                instance.reset(config, walker)
            if state is not None:
                stage = "set_state"
                set_state(pickle.loads(state))
            instance._seed = seed_for(iterate_key, walker, n, rank)
            seeding.seed(instance._seed)
            stage = "iterate"
            began = time.perf_counter()
            result = instance.iterate(config, walker, n)
            return result, time.perf_counter() - began

        fresh = True
        for walker, state in block.walkers:
            stop = interruption(context)  # in an MPI group, the leader's answer: every rank stops alike
            if stop is not None:
                outcome.kind = stop
                break
            instance._rep = walker
            result, seconds = segment(state, state is None or fresh)
            if not seeding.clean():  # it drew from unseeded global generators: again, seeded, from its state
                result, seconds = segment(state, state is None or fresh)
            fresh = False
            stage = "get_state"
            states.append(pickle.dumps(get_state(), protocol=pickle.HIGHEST_PROTOCOL))
            row = flatten_result(result or {})
            row.setdefault("iteration_time", seconds)
            rows.append(row)
            ran.append(walker)  # no `context.iteration_done()`: the display counts whole ensemble iterations
    except InvalidParameterArgument as exc:
        outcome.kind, outcome.error = OutcomeKind.BAD_PARAMETER, f"{name}: {exc}"
    except Exception as exc:  # the experiment's own error: it fails this iteration, which a rerun retries
        first_line = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        log.error("%s: walker %d failed in %s:\n%s", block.label, walker, stage,
                  "".join(traceback.format_exception(exc)))
        outcome.kind = OutcomeKind.FAILED
        outcome.error = (f"walker {walker} of iteration {n}: {first_line} (in {stage})" if walker >= 0
                         else f"{first_line} (in {stage})")
        del rows[len(ran):], states[len(ran):]
    finally:
        try:
            if instance is not None:
                instance.finalize()
        except Exception:
            log.exception("%s: finalize() raised", block.label)
    outcome.walkers = tuple(ran)
    outcome.iterations_run = len(ran)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _bind(instance: ClusterWork, experiment: ExpandedExperiment, context: TaskContext, settings: RunSettings,
          iteration: int) -> None:
    """The fields a repetition's instance has (see `ClusterWork`), for walkers: `_rep` is the walker's id,
    `_it` the iteration; walkers have no folders of their own (`_log_path_rep` is None)."""
    config = experiment.config
    instance._name = experiment.name
    instance._params = config["params"]
    instance._path = config["path"]
    instance._log_path = config["log_path"]
    instance._log_path_rep = None
    instance._it = iteration
    instance._repetitions = config["repetitions"]
    instance._iterations = config["iterations"]
    instance._plotting = config.get("plotting", True)
    instance._no_gui = settings.no_gui or instance._NO_GUI or not config.get("gui", True)
    instance._COMM = context.comm
    instance._config_file = settings.config_file
