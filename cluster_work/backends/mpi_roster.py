"""Rank 0's roster of the group leaders it hands items to: what each holds, who is gone, who stalled.

Pure bookkeeping, no MPI: the executor sends and receives, the roster decides to whom and says what a
death means. A leader holds its items in order, the running one first (the others were prefetched: see
`MPIExecutor._dispatch`). When a leader dies (ULFM), only its running item was under way: it fails,
and the prefetched ones go back to the queue, innocent. When a group loses a member, its leader
retires: rank 0 hands it nothing more, but it is alive and still releases at the end.
"""
from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..busy import BusyClock
from ..liveness import Liveness, Silence
from ..vocabulary import WorkItem


def item_kind(item: WorkItem) -> str:
    """What an item's iteration times are learnt per: its experiment (an expanded one), else its class."""
    experiment = getattr(item, "experiment", None)  # tests' items may have none
    return str(getattr(experiment, "name", None) or type(item).__name__)


@dataclass
class Roster:
    """The leaders rank 0 talks to (world ranks), their hosts (by world rank) and their items."""

    leaders: list[int]
    hosts: list[str] = field(default_factory=list)
    liveness: Liveness = field(default_factory=Liveness)
    held: dict[int, collections.deque[WorkItem]] = field(init=False)
    serving: list[int] = field(init=False)  # the leaders rank 0 may send items to: alive, not retired
    dead: dict[int, str] = field(default_factory=dict)  # world rank -> what it was doing when it died
    retired: set[int] = field(default_factory=set)
    busy_clock: BusyClock = field(default_factory=BusyClock)  # leaders holding an item, over time

    def __post_init__(self) -> None:
        self.held = {leader: collections.deque() for leader in self.leaders}
        self.serving = list(self.leaders)
        self._holding = 0  # items held in all (kept, not summed: rank 0 asks several times per job)

    def host(self, rank: int) -> str:
        return self.hosts[rank] if 0 <= rank < len(self.hosts) else "?"

    def where(self, rank: int) -> str:
        return f"MPI rank {rank} on {self.host(rank)}"

    # --- handing out ----------------------------------------------------------------------------------

    def assign(self, leader: int, item: WorkItem) -> None:
        items = self.held[leader]
        items.append(item)
        self._holding += 1
        if len(items) == 1:
            self.liveness.started(leader, item_kind(item))
            self.busy_clock.change(+1)

    def holding(self) -> int:
        return self._holding

    def busy(self) -> int:
        return sum(1 for items in self.held.values() if items)

    def holder_of(self, index: int) -> int | None:
        return next((leader for leader, items in self.held.items() if any(i.index == index for i in items)), None)

    # --- what comes back ------------------------------------------------------------------------------

    def heard(self, leader: int, iterations: int = 0) -> None:
        self.liveness.heard(leader, iterations)

    def ended(self, leader: int, iterations: int) -> WorkItem:
        """Leader's running item ended (its outcome came): return it; its next item, if any, runs now."""
        self.liveness.heard(leader, iterations)
        items = self.held[leader]
        item = items.popleft()
        self._holding -= 1
        if items:
            self.liveness.started(leader, item_kind(items[0]))
        else:
            self.liveness.idle(leader)
            self.busy_clock.change(-1)
        return item

    def died(self, rank: int) -> tuple[WorkItem | None, list[WorkItem]]:
        """World rank `rank` died: (the item it was running, or None; the items it held beyond it, to run
        elsewhere). A rank that led no group, or that rank 0 has already written off, held nothing."""
        if rank in self.dead:
            return None, []
        items = self._drop(rank)
        self.dead[rank] = "running an item" if items else "idle"
        return (items[0] if items else None), items[1:]

    def retire(self, leader: int) -> list[WorkItem]:
        """The group of `leader` broke (it lost a member): it gets nothing more. Return what it still held
        beyond the item whose outcome just came, to run elsewhere."""
        self.retired.add(leader)
        return self._drop(leader)

    def _drop(self, rank: int) -> list[WorkItem]:
        """Take `rank` off the serving leaders; return what it held."""
        self.liveness.idle(rank)
        if rank in self.serving:
            self.serving.remove(rank)
        items = list(self.held.get(rank, ()))
        self._holding -= len(items)
        if items:
            self.busy_clock.change(-1)
        if rank in self.held:
            self.held[rank].clear()
        return items

    def releasable(self, contacts: Iterable[int]) -> list[int]:
        """The contacts to release at the end: every one still alive."""
        return [rank for rank in contacts if rank not in self.dead]

    # --- reporting ------------------------------------------------------------------------------------

    def stalled(self) -> list[Silence]:
        hosts = {rank: self.host(rank) for rank in self.held}
        return [s for s in self.liveness.stalled(hosts) if s.worker not in self.dead]

    def lost_line(self) -> str | None:
        """One line naming the ranks lost during the run and their hosts (None: none was lost)."""
        if not self.dead:
            return None
        ranks = ", ".join(f"{rank} ({self.host(rank)})" for rank in sorted(self.dead))
        return f"MPI ranks lost during the run: {ranks}"
