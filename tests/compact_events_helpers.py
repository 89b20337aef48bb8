"""Random event sequences of a compact store's segments, for the tests of its index's extension by tails
(compact_tails): several writers and runs, claims (re-claims by later runs, now and then a clock behind),
rows with and without `iteration_time` (some that do not continue their repetition's rows), keeps, statuses
with and without a mean iteration time or a claim's fields, drops, torn lines (a writer killed while it wrote,
or one still writing), damaged lines. Written with the store's own encoder, as its writers write them."""
from __future__ import annotations

import os
import random
from typing import Any

from cluster_work.paths import segment_name
from cluster_work.rows import encode_row

NAMES = ("a", "b", "c")


class Writers:
    """The writers of one store in `root`, driven by `rng`; `phase` appends a few events."""

    def __init__(self, root: str, rng: random.Random):
        self.root, self.rng = root, rng
        self.clock = 1000.0
        self.segments: list[str] = []
        self.dead: set[str] = set()
        self.torn: dict[str, bytes] = {}  # a live writer's line cut short: its rest comes in the next phase
        self.claimed: dict[str, list[tuple[str, int]]] = {}
        self.rows: dict[tuple[str, int], int] = {}  # what the rows of a repetition likely number (a guess)
        os.makedirs(root, exist_ok=True)

    def _time(self) -> float:
        self.clock += self.rng.choice((0.5, 1.0, 1e-6, 3.25))
        return self.clock - self.rng.choice((10.0, 0.0)) if self.rng.random() < 0.05 else self.clock

    def _write(self, segment: str, data: bytes) -> None:
        with open(os.path.join(self.root, segment), "ab") as handle:
            handle.write(data)

    def _event(self, segment: str) -> dict[str, Any] | None:
        rng = self.rng
        claimed = self.claimed.setdefault(segment, [])
        roll = rng.random()
        if roll < 0.17 or not claimed:
            key = (rng.choice(NAMES), rng.randrange(3))
            claimed.append(key)
            event: dict[str, Any] = {"c": list(key), "t": self._time(), "base": "doc", "at": f"at-{key[0]}"}
            if rng.random() < 0.93:
                event["params"] = {"x": key[0]} if rng.random() < 0.93 else {"x": "changed"}
            if rng.random() < 0.03:
                event["at"] = "elsewhere"
            return event
        key = claimed[-1] if rng.random() < 0.85 else rng.choice(claimed) if rng.random() < 0.7 else (
            rng.choice(NAMES), rng.randrange(3))
        rows = self.rows.get(key, 0)
        if roll < 0.62:
            iteration = rows if rng.random() < 0.85 else rng.randrange(5)
            row: dict[str, Any] = {"iteration": iteration, "y": rng.random()}
            if rng.random() < 0.75:
                row["iteration_time"] = rng.choice((0.1, 0.2, 1e-3, rng.random(), 2, 1e17))
            if iteration == rows:
                self.rows[key] = rows + 1
            return {"w": list(key), "row": row}
        if roll < 0.68:
            count = rng.randrange(rows + 2)
            self.rows[key] = min(rows, count)
            return {"k": list(key), "n": count}
        if roll < 0.97:
            status: dict[str, Any] = {"state": rng.choice(("finished", "failed", "running")), "iterations_done": rows}
            if rng.random() < 0.5:
                status["mean_iteration_time"] = rng.choice((0.5, 1, None))
            event = {"s": list(key), "t": self._time(), "status": status}
            if rng.random() < 0.15:
                event.update(params={"x": key[0]} if rng.random() < 0.8 else {"x": "other"}, base="doc",
                             at=f"at-{key[0]}")
            return event
        return {"d": rng.choice(NAMES), "t": self._time()}

    def phase(self) -> None:
        """A few events: the live writers go on (a torn line of one first finished), some die, new ones start
        (a new run), a line may be left torn or damaged."""
        rng = self.rng
        for segment, rest in list(self.torn.items()):
            self._write(segment, rest)
            del self.torn[segment]
        for _ in range(rng.randrange(3)):
            self.segments.append(segment_name("host", rng.randrange(10**6), f"{len(self.segments):08x}"))
        live = [segment for segment in self.segments if segment not in self.dead]
        for _ in range(rng.randrange(1, 25)):
            if not live:
                break
            segment = rng.choice(live)
            event = self._event(segment)
            if event is not None:
                self._write(segment, encode_row(event))
        for segment in live:
            roll = rng.random()
            if roll < 0.1:  # killed while it wrote: its torn line stays
                self._write(segment, encode_row({"w": ["a", 0], "row": {"iteration": 0}})[:7])
                self.dead.add(segment)
            elif roll < 0.2:  # caught while it wrote: the rest of the line comes later
                line = encode_row({"w": ["b", 0], "row": {"iteration": self.rows.get(("b", 0), 0)}})
                cut = rng.randrange(1, len(line) - 1)
                self._write(segment, line[:cut])
                self.torn[segment] = line[cut:]
            elif roll < 0.22:  # a power loss's zeros, then it went on
                self._write(segment, b"\0\0\0\n")
            elif roll < 0.3:
                self.dead.add(segment)
