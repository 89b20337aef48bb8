"""Which MPI ranks run repetitions together: pure arithmetic on the world size and the command line.

Every rank computes the same layout from the same command line, so no rank has to be told its group.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ClusterWorkError

SELF, WORLD, SPLIT = "self", "world", "split"  # what a group's `self._COMM` is: see Layout


@dataclass(frozen=True)
class Layout:
    """The groups of world ranks that run repetitions, and the ranks that run nothing.

    `groups` holds each group's world ranks, its leader first: only the leader hears from rank 0 and
    writes results. `idle` are worker ranks in no group. `comm` is what the experiment gets as
    `self._COMM`: SELF (MPI.COMM_SELF: each worker alone), WORLD (MPI.COMM_WORLD: one group of every rank,
    led by rank 0, which then runs the jobs itself one after the other) or SPLIT (a communicator of the
    group's ranks). No groups at all: rank 0 runs every job alone.
    """

    groups: tuple[tuple[int, ...], ...]
    idle: tuple[int, ...] = ()
    comm: str = SELF

    @property
    def rank0_leads(self) -> bool:
        return self.comm == WORLD

    def group_of(self, rank: int) -> tuple[int, ...] | None:
        return next((group for group in self.groups if rank in group), None)

    def contacts(self) -> list[int]:
        """The ranks that wait for rank 0's messages: the leaders of the groups rank 0 is not in, the
        members of the group it leads, the idle ranks."""
        direct = [rank for group in self.groups for rank in (group[1:] if group[0] == 0 else group[:1])]
        return direct + list(self.idle)


def mpi_layout(world_size: int, groups: int | None = None, group_size: int | None = None) -> Layout:
    """The layout of `world_size` ranks for `-g groups` or `--group_size group_size` (at most one).

    Neither: each worker (ranks 1..size-1) runs alone, as in the original. `-g 1`: every rank, rank 0
    included, runs each repetition (the original's meaning). `-g G`: the workers form G groups of
    (size - 1) // G ranks; G above the number of workers is an error. `--group_size S`: as many groups of S
    ranks as the workers fill (none: rank 0 runs every job alone). Groups are contiguous blocks of ranks,
    so that a group stays on one node (mpiexec places consecutive ranks together); the original
    interleaved them (worker r in group (r - 1) % G). Workers left over idle.
    """
    if groups is not None and group_size is not None:
        raise ClusterWorkError("-g/--mpi_groups (the number of groups) and --group_size (ranks per group) "
                               "exclude each other")
    for flag, value in (("-g/--mpi_groups", groups), ("--group_size", group_size)):
        if value is not None and value < 1:
            raise ClusterWorkError(f"{flag} must be at least 1, got {value}")
    workers = list(range(1, world_size))
    if groups == 1:
        return Layout((tuple(range(world_size)),), (), WORLD)
    if groups is None and group_size is None:
        return Layout(tuple((rank,) for rank in workers), (), SELF)
    if groups is not None and groups > len(workers):
        raise ClusterWorkError(f"-g/--mpi_groups {groups}: more groups than the {len(workers)} worker ranks "
                               f"of {world_size} MPI ranks (rank 0 schedules); start more with mpiexec -n")
    size = group_size if group_size is not None else len(workers) // (groups or 1)
    count = len(workers) // size
    blocks = tuple(tuple(workers[k * size:(k + 1) * size]) for k in range(count))
    return Layout(blocks, tuple(workers[count * size:]), SPLIT)
