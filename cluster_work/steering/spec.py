"""The `steer:` block of an experiment document, validated into a `SteerSpec`.

    steer:
      policy: successive_halving   # | hyperband | median_stopping | threshold | optuna | "mymodule:MyPolicy"
      metric: loss                 # a column iterate() returns
      mode: min                    # or max
      min_iterations: 1            # the first rung / check
      reduction_factor: 3          # successive_halving, hyperband (and optuna's halving pruners)
      interval: 1                  # median_stopping, threshold, optuna's pruner: iterations between checks
                                   # (default 1: every iteration after min_iterations, as Optuna's and Ray's)
      reduce: mean                 # over an experiment's repetitions: mean | min | max | median
      bound: 0.5                   # threshold: stop where the metric is worse than this
      # optuna: sampler (tpe | random), seed, trials, batch, pruner (none | median | successive_halving |
      #         hyperband), space (distributions as under `random.params`)
      # a user's policy: columns (more columns its results carry), seed (of campaign.rng), options
      #                  (keyword arguments of the policy's constructor)

Every problem is one line naming the file, the experiment and the key (`'steer.<key>'`), raised before
anything is written. A user's policy class is loaded here, so that a typo is a config error too.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import sampling
from ..config import dotted
from ..errors import config_error
from ..vocabulary import ConfigSource

BUILT_IN = ("successive_halving", "hyperband", "median_stopping", "threshold", "optuna")
MODES = ("min", "max")
REDUCERS = ("mean", "min", "max", "median")
SAMPLERS = ("tpe", "random")
PRUNERS = ("none", "median", "successive_halving", "hyperband")
_COMMON = frozenset({"policy", "metric", "mode", "reduce"})
_HALVING = frozenset({"min_iterations", "reduction_factor"})
_CHECKS = frozenset({"min_iterations", "interval"})
KEYS = {
    "successive_halving": _COMMON | _HALVING,
    "hyperband": _COMMON | _HALVING,
    "median_stopping": _COMMON | _CHECKS,
    "threshold": _COMMON | _CHECKS | {"bound"},
    "optuna": _COMMON | _HALVING | _CHECKS | {"sampler", "seed", "trials", "batch", "pruner", "space"},
}
USER_KEYS = _COMMON | {"columns", "seed", "options"}
_CLASS_NAME = re.compile(r"[\w.]+:[\w.]+")


@dataclass(frozen=True)
class SteerSpec:
    """A validated `steer:` block; `to_json()` is what a campaign's journal records of it."""

    policy: str
    metric: str | None = None
    mode: str = "min"
    reduce: str = "mean"
    min_iterations: int = 1
    reduction_factor: int = 3
    interval: int = 1
    bound: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    trials: int = 0
    batch: int = 1
    pruner: str = "none"
    space: dict[str, Any] = field(default_factory=dict)
    extra_columns: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    policy_class: Any = field(default=None, compare=False, repr=False)  # a user's Policy subclass

    @property
    def is_user_policy(self) -> bool:
        return self.policy not in BUILT_IN

    @property
    def columns(self) -> tuple[str, ...]:
        """The result columns every segment of the campaign carries back in its outcome."""
        return tuple(dict.fromkeys(((self.metric,) if self.metric else ()) + self.extra_columns))

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "metric": self.metric, "mode": self.mode, "reduce": self.reduce,
                "min_iterations": self.min_iterations, "reduction_factor": self.reduction_factor,
                "interval": self.interval, "bound": self.bound, "sampler": self.sampler, "seed": self.seed,
                "trials": self.trials, "batch": self.batch, "pruner": self.pruner, "space": self.space,
                "columns": list(self.extra_columns), "options": self.options}


def default_seed(name: str) -> int:
    """The seed of a campaign that names none: from its experiment's name, so stable from run to run."""
    return int.from_bytes(hashlib.blake2b(f"steer\x00{name}".encode(), digest_size=4).digest(), "little")


def check_steer_block(block: Any, source: ConfigSource | str, name: str) -> SteerSpec:
    """Validate experiment `name`'s `steer:` block; raise a one-line ConfigError on the first problem."""

    def error(key: str, message: str) -> Exception:
        return config_error(source, message, experiment=name, key=f"steer.{key}" if key else "steer")

    if not isinstance(block, Mapping):
        raise error("", f"must be a mapping with a 'policy' (one of {', '.join(BUILT_IN)}, or 'module:Class')")
    policy = block.get("policy")
    if not isinstance(policy, str) or not (policy in BUILT_IN or _CLASS_NAME.fullmatch(policy)):
        raise error("policy", f"must be one of {', '.join(BUILT_IN)}, or a class as 'module:Class', got {policy!r}")
    known = USER_KEYS if policy not in BUILT_IN else KEYS[policy]
    for key in block:
        if key not in known:
            what = "a user's policy" if policy not in BUILT_IN else f"the {policy} policy"
            raise error(str(key), f"{what} takes no '{key}' (its keys: {', '.join(sorted(known))})")
    values: dict[str, Any] = {"policy": policy}
    metric = block.get("metric")
    if metric is not None or policy in BUILT_IN:
        if not isinstance(metric, str) or not metric:
            raise error("metric", f"must name a column that iterate() returns, got {metric!r}")
        values["metric"] = metric
    values["mode"] = _choice(block, "mode", MODES, "min", error)
    values["reduce"] = _choice(block, "reduce", REDUCERS, "mean", error)
    values["min_iterations"] = _count(block, "min_iterations", 1, 1, error)
    values["reduction_factor"] = _count(block, "reduction_factor", 3, 2, error)
    values["interval"] = _count(block, "interval", 1, 1, error)  # every iteration after min_iterations
    values["seed"] = _integer(block, "seed", default_seed(name), error)
    if policy == "threshold":
        bound = block.get("bound")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise error("bound", f"must be a finite number (stop where {metric} is worse), got {bound!r}")
        values["bound"] = float(bound)
    if policy == "optuna":
        values.update(_check_optuna(block, error))
    if policy not in BUILT_IN:
        values.update(_check_user(block, policy, error))
    return SteerSpec(**values)


def check_steered_document(experiment: Mapping[str, Any], source: ConfigSource) -> SteerSpec:
    """Validate an experiment document's `steer:` block, and what it says of the document: optuna runs only
    the points it asks for (set on the document's params), so a grid, list, random or custom block of
    points that would never run is refused rather than silently ignored."""
    name = experiment["name"]
    spec = check_steer_block(experiment["steer"], source, name)
    swept = [key for key in ("grid", "list", "random", "custom") if experiment.get(key)]
    if spec.policy == "optuna" and swept:
        raise config_error(source, "policy optuna runs only the points it asks for (from steer.space), so these "
                                   "would never run: give their parameters a range under steer.space, or one value "
                                   "under params", experiment=name, key=swept[0])
    return spec


def _choice(block: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str, error: Any) -> str:
    value = block.get(key, default)
    if value not in choices:
        raise error(key, f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _integer(block: Mapping[str, Any], key: str, default: int, error: Any) -> int:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(key, f"must be an integer, got {value!r}")
    return value


def _count(block: Mapping[str, Any], key: str, default: int, least: int, error: Any) -> int:
    value = _integer(block, key, default, error)
    if value < least:
        raise error(key, f"must be an integer of at least {least}, got {value!r}")
    return value


def _check_optuna(block: Mapping[str, Any], error: Any) -> dict[str, Any]:
    if importlib.util.find_spec("optuna") is None:
        raise error("policy", "optuna needs the optional dependency optuna: pip install 'cluster_work[optuna]'")
    if "trials" not in block:
        raise error("trials", "is required: how many points optuna suggests")
    values = {"sampler": _choice(block, "sampler", SAMPLERS, "tpe", error),
              "pruner": _choice(block, "pruner", PRUNERS, "none", error),
              "trials": _count(block, "trials", 1, 1, error), "batch": _count(block, "batch", 1, 1, error)}
    space = block.get("space")
    if not isinstance(space, Mapping) or not space:
        raise error("space", "must be a non-empty mapping of parameters to distributions (as under random.params)")
    for path, spec in sampling.leaves(space).items():
        problem = sampling.problem(spec)
        if problem is None:
            distribution = sampling.Distribution.of(spec)
            if distribution.kind == "choice" and not all(
                    value is None or isinstance(value, (bool, int, float, str)) for value in distribution.arguments):
                problem = "optuna chooses only among None, booleans, numbers and strings"
        if problem:
            raise error(f"space.{dotted(path)}", problem)
    values["space"] = dict(space)
    return values


def _check_user(block: Mapping[str, Any], policy: str, error: Any) -> dict[str, Any]:
    from .policy import Policy

    columns = block.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) and c for c in columns):
        raise error("columns", f"must be a list of column names, got {columns!r}")
    options = block.get("options", {})
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise error("options", f"must be a mapping of keyword arguments of the policy class, got {options!r}")
    module_name, _, attribute = policy.partition(":")
    try:
        loaded: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            loaded = getattr(loaded, part)
    except Exception as exc:  # the user's module: any failure to import it is theirs to see, in one line
        raise error("policy", f"cannot load {policy!r} ({type(exc).__name__}: {exc})") from None
    if not (isinstance(loaded, type) and issubclass(loaded, Policy)):
        raise error("policy", f"{policy!r} must be a subclass of cluster_work.steering.Policy")
    return {"extra_columns": tuple(columns), "options": dict(options), "policy_class": loaded}
