"""Which reserved config key an unknown document key looks like a typo of (`gird` -> `grid`).

A document may hold keys of its own (the original passes them to the experiment), so an unknown key is
only refused when it is one slip away from a reserved one: then the sweep would silently run without
what the user meant (`gird:` runs the defaults only). "One slip" is judged on the key folded to lower
case with `-` read as `_`:

- the same key but for case, `-` or `_` (`Grid`, `log-path`, `logpath`);
- a key of 6 or more letters one edit away (insertion, deletion, substitution, or two neighbours
  swapped), 8 or more letters two edits away (`repititons`, `iteration`);
- a shorter key one edit away that is not a substitution (`gird`, `grd`, `lists`, `nam`, `pth`): a
  substitution there turns one common word into another (`grad`, `last`, `game`, `gpu`), so those stay
  the user's own keys, as in the original.

Pure functions; the config reader decides what a match means.
"""
from __future__ import annotations

from collections.abc import Iterable


def lookalike(key: str, reserved: Iterable[str]) -> str | None:
    """The reserved key that `key` (itself not reserved) looks like a typo of, or None. Ties go to the
    first in sorted order, so the answer depends only on the two arguments."""
    folded = key.lower().replace("-", "_")
    best: tuple[int, str] | None = None
    for known in sorted(reserved):
        if folded.replace("_", "") == known.replace("_", ""):
            return known
        distance = edit_distance(folded, known)
        if distance <= _allowed_edits(known) and not _short_substitution(folded, known, distance):
            best = min(best or (distance, known), (distance, known))
    return best[1] if best else None


def _allowed_edits(known: str) -> int:
    return 2 if len(known) >= 8 else 1


def _short_substitution(key: str, known: str, distance: int) -> bool:
    """One letter of a short key replaced by another (not two neighbours swapped)."""
    return len(known) < 6 and distance == 1 and len(key) == len(known) and sorted(key) != sorted(known)


def edit_distance(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn `a` into `b` (the optimal
    string alignment distance; difflib's ratio has no threshold that tells `gird` from `grad`)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]
