"""Which strategy carries out a campaign's policy; what every strategy offers the core.

A strategy gets the `Steering` it serves (the board: `run`, `stop`, `add`, `finish`, the points) and
is told `start()` once and `on_ended(ended)` for every run that ended, in the order the core processes
them; it must decide only where a unit of its own is complete (see `core`), so that its decisions do
not depend on that order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .core import Steering
    from .jobs import Ended
    from .spec import SteerSpec


class Strategy(Protocol):
    def start(self) -> None: ...

    def on_ended(self, ended: Ended) -> None: ...

    def planned(self, restores: bool) -> int: ...

    def rungs(self) -> list[dict[str, Any]]: ...


def make_strategy(spec: SteerSpec, board: Steering) -> Strategy:
    if spec.policy == "optuna":
        from .optuna_search import OptunaStrategy

        return OptunaStrategy(spec, board)
    if spec.is_user_policy:
        from .policy import PolicyStrategy

        return PolicyStrategy(spec, board)
    from .builtin import RungStrategy

    return RungStrategy(spec, board)
