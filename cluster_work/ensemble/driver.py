"""The driver of a weighted ensemble (rank 0's side): hand out blocks of walkers, collect their outcomes,
resample, commit, hand out the next iteration. Pure logic apart from its store.

    driver = WeightedEnsemble(spec, experiment, EnsembleStore(experiment.path), workers=executor.workers)
    for block in driver.start():
        executor.submit(block)
    while executor.in_flight():
        for block in driver.on_outcome(executor.next_outcome()):
            executor.submit(block)
    # driver.finished, or driver.error / driver.stopped (resumable: a rerun continues it)

Iteration n's walkers are numbered 0 .. W-1 (the canonical order). When every block of iteration n is
back, the driver reads each walker's coordinate from its row, recycles the walkers that reached the
target (their weight is the iteration's flux; their successors restart from a basis state), resamples
with the generator of (seed, n), and commits iteration n (its walkers, rows, states and the next
iteration's walkers) before it returns a single block of iteration n + 1. So a restart continues from
the last committed iteration with exactly the walkers an uninterrupted run would have had, and nothing
depends on block sizes, worker counts or the order in which outcomes arrive.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..vocabulary import OutcomeKind
from .resampling import Walker, check_next, make_resampler, rng_for
from .spec import EnsembleSpec
from .store import EnsembleStore, IterationRecord
from .worker import BlockOutcome, WalkerBlock

if TYPE_CHECKING:
    from ..expansion import ExpandedExperiment

BLOCKS_PER_WORKER = 2  # a worker that drew slow walkers holds up the iteration less


class WeightedEnsemble:
    """One ensemble's iterations; see the module docstring. After `start()`:

    `finished`: every iteration is committed (no more blocks come);
    `error`: an iteration failed (a walker raised, a bad coordinate, a resampler's mistake): no more
    blocks are handed out, nothing of that iteration is committed, and a rerun retries it;
    `stopped`: a block was interrupted or cancelled: likewise, resumable;
    `done`: none of the above is pending any more (every handed-out block is back, or finished).
    """

    def __init__(self, spec: EnsembleSpec, experiment: ExpandedExperiment, store: EnsembleStore, workers: int = 1):
        self.spec, self.experiment, self.store = spec, experiment, store
        self.workers = max(1, workers)
        self.resampler: Any = None
        self.iteration = 0
        self.finished = self.stopped = False
        self.error: str | None = None
        self.flux_total = 0.0
        self._walkers: list[tuple[int, float, bytes | None]] = []  # (parent, weight, state) of this iteration
        self._pending: set[int] = set()
        self._outcomes: list[BlockOutcome] = []
        self._next_index = 0

    @property
    def label(self) -> str:
        return self.experiment.name

    @property
    def walkers(self) -> int:
        """The number of walkers of the current iteration."""
        return len(self._walkers)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def done(self) -> bool:
        return self.finished or ((self.error is not None or self.stopped) and not self._pending)

    def start(self) -> list[WalkerBlock]:
        """Lock the store and return the blocks of the first uncommitted iteration ([] if none is left).
        Raises EnsembleBusy if another run holds the ensemble, StoreError if its file cannot be used; a user
        resampler that cannot be made is an `error` (and no blocks)."""
        try:
            self.resampler = make_resampler(self.spec)
        except Exception as exc:  # the user's class, checked when the config was: it changed, or its __init__ raised
            self.error = (f"{self.experiment.name}: cannot make the resampler {self.spec.resampler}: "
                          f"{type(exc).__name__}: {exc}")
            return []
        last = self.store.open()
        if last is None:
            self.iteration, weight = 0, 1.0 / self.spec.walkers
            self._walkers = [(-1, weight, None)] * self.spec.walkers
        else:
            self.iteration, self.flux_total = last.iteration + 1, last.flux_total
            self._walkers = [(parent, weight, None if parent < 0 else last.states[parent])
                             for parent, weight in zip(last.next_parents, last.next_weights)]
        return self._blocks()

    def close(self) -> None:
        """Release the store (also done by the driver itself once it is done)."""
        self.store.close()

    def on_outcome(self, outcome: BlockOutcome) -> list[WalkerBlock]:
        """Take one block's outcome; once the iteration's last one is in, resample, commit and return the next
        iteration's blocks. [] otherwise, and at the end. A StoreError of the commit propagates."""
        if outcome.iteration != self.iteration or outcome.part not in self._pending:
            raise ValueError(f"{outcome.label}: not a block this driver is waiting for")
        self._pending.discard(outcome.part)
        if outcome.kind is OutcomeKind.FINISHED:
            self._outcomes.append(outcome)
        elif outcome.kind in (OutcomeKind.INTERRUPTED, OutcomeKind.CANCELLED):
            self.stopped = True
        elif self.error is None:
            self.error = outcome.error or f"{outcome.label}: {outcome.kind.value}"
        if self._pending:
            return []
        if self.error is not None or self.stopped:
            self.close()
            return []
        try:
            record = self._resample()
        except ValueError as exc:
            self.error = f"{self.experiment.name} iteration {self.iteration}: {exc}"
            self.close()
            return []
        self.store.commit(record)
        self.flux_total = record.flux_total
        self._walkers = [(parent, weight, None if parent < 0 else record.states[parent])
                         for parent, weight in zip(record.next_parents, record.next_weights)]
        self.iteration += 1
        return self._blocks()

    def _resample(self) -> IterationRecord:
        """This iteration's record: its walkers, rows and states by id, and the resampled next walkers."""
        count = len(self._walkers)
        rows: list[dict[str, Any] | None] = [None] * count
        states: list[bytes] = [b""] * count
        for outcome in self._outcomes:
            for walker, row, state in zip(outcome.walkers, outcome.rows, outcome.states):
                rows[walker], states[walker] = row, state
        walkers = []
        column, bin_of, reaches_target = self.spec.coordinate, self.spec.bin_of, self.spec.reaches_target
        for walker, ((_, weight, _), maybe_row) in enumerate(zip(self._walkers, rows)):
            if maybe_row is None:
                raise ValueError(f"no row came back for walker {walker}")
            coordinate = _coordinate(maybe_row, column, walker)
            walkers.append(Walker(walker, weight, coordinate, bin_of(coordinate), reaches_target(coordinate),
                                  maybe_row))
        try:
            result = self.resampler.resample(walkers, rng_for(self.spec.seed, self.iteration))
        except Exception as exc:  # the user's resampler
            raise ValueError(f"the resampler raised {type(exc).__name__}: {exc}") from None
        children = check_next(walkers, result)
        names = dict.fromkeys(key for w in walkers for key in w.row)  # a column a row lacks is None there
        columns = {name: [w.row.get(name) for w in walkers] for name in names}
        recycled = [w.recycled for w in walkers]
        occupied = {w.bin for w in walkers}
        flux = math.fsum(w.weight for w in walkers if w.recycled)
        return IterationRecord(
            self.iteration, [w.weight for w in walkers], [parent for parent, _, _ in self._walkers], recycled,
            [w.bin for w in walkers], columns, states,
            [-1 if recycled[c.parent] else c.parent for c in children], [c.weight for c in children],
            flux_total=self.flux_total + flux, occupied_bins=len(occupied))

    def _blocks(self) -> list[WalkerBlock]:
        """The current iteration's walkers in contiguous blocks (siblings together: a state split into
        copies is pickled once per block), up to BLOCKS_PER_WORKER per worker; [] after the last one."""
        self._outcomes = []
        if self.iteration >= self.experiment.iterations:
            self.finished = True
            self.close()
            return []
        count = len(self._walkers)
        parts = 1 if self.workers == 1 else min(count, BLOCKS_PER_WORKER * self.workers)
        blocks = []
        for part in range(parts):
            ids = range(part * count // parts, (part + 1) * count // parts)
            blocks.append(WalkerBlock(self._next_index, self.experiment, self.iteration, part,
                                      tuple((w, self._walkers[w][2]) for w in ids), self.spec.seed))
            self._next_index += 1
        self._pending = set(range(parts))
        return blocks


def _coordinate(row: dict[str, Any], column: str, walker: int) -> float:
    value = row.get(column)
    try:
        coordinate = math.nan if value is None else float(value)
    except (TypeError, ValueError):
        coordinate = math.nan
    if isinstance(value, bool) or not math.isfinite(coordinate):
        known = ", ".join(sorted(row)) or "none"
        raise ValueError(f"walker {walker}'s row has no finite number in {column!r} (the ensemble's coordinate), "
                         f"got {value!r} (columns: {known})")
    return coordinate
