"""A compact store's index extended by its segments' tails: the bytes each segment gained since the index was
written (and new segments), applied to the index's per-repetition summary exactly as `Catalog` would apply them
after every segment's older bytes, so that a reader after a kill -9 (or of an index written while a run went on)
reads the tails only, not every segment.

The index holds what that takes besides its summary (see compact_index): `latest`, the latest time of any claim
or status it covers, and `open`, per segment, its last claim (repetition and time) where that claim is its
repetition's latest (then the segment's later rows and keeps of that repetition continue that repetition's rows).
The extension is exact where the tails are made of what runs write (each provably gives what a read of every
segment gives); for anything else it answers None and the reader reads every segment:
- a claim or status no later than `latest` (another host's clock behind: its order among the older ones is not
  known), a keep that cuts rows (their times are not in the index), a row or keep of a covered segment for a
  repetition other than its open claim's (which claim it continues is not known);
- a drop of an experiment the index or the tails hold, and any event of an experiment dropped before (a drop
  filters claims by time, and a repetition's parameters after one may be a dropped claim's: read them all);
- parameters (of a claim, or of a status without a claim) other than those the index holds for the experiment,
  a claim's `at` other than the index's, a new experiment's `at` that another one has, and any `at` where an
  experiment was ever given two folders or a folder two experiments (`plain_at`: which one a read of every
  segment keeps depends on the segments' order);
- a status without a mean iteration time after one with (the rows' times were not kept).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .compact_catalog import Catalog, Claim, SavedRepetition, iteration_of


class NotExtendable(Exception):
    """The tails hold something whose effect the index cannot tell (see the module's docstring)."""


def timed_sum(start: float, rows: Iterable[Any]) -> tuple[float, int]:
    """`start` plus the rows' numeric `iteration_time`s, added one by one (as the index's sums are made and
    extended: the same order gives the same float), and how many there were."""
    total, count = start, 0
    for row in rows:
        value = row.get("iteration_time")
        if isinstance(value, (int, float)):
            total, count = total + value, count + 1
    return total, count


def has_mean(status: Mapping[str, Any] | None) -> bool:
    return isinstance((status or {}).get("mean_iteration_time"), (int, float))


class TailCatalog(Catalog):
    """A Catalog of the bytes past `covered` only, whose open claims (`open`: segment -> (repetition, time))
    take that segment's rows and keeps; `unknown` is set by a covered segment's row or keep that no claim
    read here takes (the claim it continues, if any, is in the bytes not read)."""

    def __init__(self, root: str, covered: dict[str, int], dropped: dict[str, float],
                 open_claims: Mapping[str, tuple[tuple[str, int], float]]):
        super().__init__(root)
        self.offsets, self.dropped, self.covered = dict(covered), dict(dropped), covered
        self.seeded = {(segment, key): Claim(time) for segment, (key, time) in open_claims.items()}
        self.current.update(self.seeded)
        self.unknown = False

    def _check(self, segment: str, key: Any) -> None:
        key = (str(key[0]), int(key[1]))
        if self.covered.get(segment, 0) > 0 and (segment, key) not in self.current:
            self.unknown = True

    def _apply_row(self, segment: str, key: Any, row: bytes) -> None:
        self._check(segment, key)
        super()._apply_row(segment, key, row)

    def _apply(self, segment: str, event: Mapping[str, Any]) -> None:
        if "k" in event and not any(kind in event for kind in "dcs"):
            self._check(segment, event["k"])
        super()._apply(segment, event)


Old = tuple[Any, int, float, int]  # a repetition as the index holds it: status, rows, seconds, timed


def fold(old: Old | None, claims: list[Claim], status: tuple[float, dict[str, Any]] | None) -> list[Any]:
    """Repetition fields [status, rows, seconds, timed] after `old` (None: no events before) continued by the
    events of `claims` (in their order) and the latest `status` (None: the old one stays)."""
    old_status, rows, seconds, timed = old if old is not None else (None, 0, 0.0, 0)
    times_known = old is None or not has_mean(old_status)
    for claim in claims:
        for kind, value in claim.events:
            if kind == "k":
                if value < rows:
                    raise NotExtendable
            elif iteration_of(value) == rows:
                rows += 1
                seconds, count = timed_sum(seconds, [json.loads(value)])
                timed += count
    final = dict(status[1]) if status is not None else old_status
    if has_mean(final):
        return [final, rows, 0.0, 0]
    if not times_known:
        raise NotExtendable
    return [final, rows, float(seconds), timed]


Extended = tuple[dict[str, int], dict[str, float], float, dict[str, tuple[tuple[str, int], float]], dict[str, list]]


def extend(root: str, segments: dict[str, int], dropped: dict[str, float], latest: float,
           open_claims: Mapping[str, tuple[tuple[str, int], float]], plain_at: bool, entries: Mapping[str, list],
           folders: Callable[[], Mapping[str, str]], canonical: Callable[[Any], str]) -> Extended | None:
    """The index's (segments, dropped, latest, open claims) continued by the segments' tails, and the entries
    they changed or added (the others stay as `entries` holds them); None where they cannot be told from the
    tails alone (see the module's docstring). `folders`: each experiment's folder (`at`) -> its name, of all
    `entries` (asked only where the tails name a folder). `entries` is not changed."""
    tails = TailCatalog(root, segments, dropped, open_claims)
    tails.refresh(force=True)
    if tails.unknown or (tails.names_at and not plain_at) or tails.at_moved:
        return None
    try:
        return _merged(tails, dropped, latest, open_claims, entries, folders, canonical)
    except NotExtendable:
        return None


def _merged(tails: TailCatalog, dropped: dict[str, float], latest: float,
            open_claims: Mapping[str, tuple[tuple[str, int], float]], entries: Mapping[str, list],
            folders: Callable[[], Mapping[str, str]], canonical: Callable[[Any], str]) -> Extended:
    seeded = {key: claim for (_, key), claim in tails.seeded.items() if claim.events}
    touched: dict[str, set[int]] = {}
    for name, rep in [*tails.repetitions, *seeded]:
        touched.setdefault(name, set()).add(rep)
    for name, time in tails.dropped.items():
        if dropped.get(name) != time and (name in entries or name in touched):
            raise NotExtendable
    new_latest = latest
    for name in touched:
        if name in dropped:
            raise NotExtendable
    ats = {name: at for at, name in tails.names_at.items()}
    if ats:  # an `at` read names its experiment: it must be no other's
        taken = folders()
        if any(taken.get(at, name) != name for name, at in ats.items()):
            raise NotExtendable
    if len(set(tails.names_at.values())) != len(tails.names_at):
        raise NotExtendable  # one experiment at two places: which one a read of every segment keeps is its order's
    added: dict[str, list] = {}
    for name, reps in touched.items():
        entry = entries.get(name)
        if entry is not None and ats.get(name, entry[0]) != entry[0]:
            raise NotExtendable
        old = {rep: tuple(fields) for rep, *fields in entry[2]} if entry is not None else {}
        params: list[Any] = []
        summaries = {rep: list(fields) for rep, fields in old.items()}
        for rep in reps:
            saved = tails.repetitions.get((name, rep), SavedRepetition())
            for claim in saved.claims:
                if claim.time <= latest:
                    raise NotExtendable
                new_latest = max(new_latest, claim.time)
            if saved.status is not None:
                if saved.status[0] <= latest:
                    raise NotExtendable
                new_latest = max(new_latest, saved.status[0])
            if saved.params is not None:
                params.append((rep, saved.params))
            claims = ([seeded[name, rep]] if (name, rep) in seeded else []) + sorted(saved.claims, key=lambda c: c.time)
            if rep in old or saved.claims or saved.status is not None:
                summaries[rep] = fold(old.get(rep), claims, saved.status)
        if entry is not None:
            if any(canonical(value) != entry[1] for _, value in params):
                raise NotExtendable
            text = entry[1]
        else:
            text = canonical(min(params, key=lambda p: p[0])[1] if params else {})
        if summaries:
            added[name] = [ats.get(name, entry[0] if entry is not None else ""), text,
                           [[rep, *summaries[rep]] for rep in sorted(summaries)]]
    claimed = {key for key, saved in tails.repetitions.items() if saved.claims}
    new_open = {segment: claim for segment, claim in open_claims.items() if claim[0] not in claimed}
    for segment, key in tails.last_claim.items():
        claim = tails.current[segment, key]
        new_open.pop(segment, None)
        if all(other is claim or other.time < claim.time for other in tails.repetitions[key].claims):
            new_open[segment] = (key, claim.time)
    return dict(tails.offsets), dict(tails.dropped), new_latest, new_open, added
