"""Custom expansion strategies for the tests, with SmartSim's signature (param_names, param_values, n)."""
import itertools
import os
import random


def diagonal(names, values, n):
    """n points that walk each parameter's values in step, wrapping around."""
    return [{name: options[i % len(options)] for name, options in zip(names, values)} for i in range(n)]


def counted_random(names, values, n):
    """Draws from the OS (different on every call) and counts its calls in $DESIGN_CALLS."""
    with open(os.environ["DESIGN_CALLS"], "a") as handle:
        handle.write(".")
    generator = random.Random(os.urandom(16))
    return [{name: generator.choice(options) for name, options in zip(names, values)} for _ in range(n)]


def raises(names, values, n):
    raise RuntimeError("the design failed")


def not_a_list(names, values, n):
    return {"lr": 1}


def unknown_key(names, values, n):
    return [dict(zip(names, first), extra=1) for first in itertools.islice(itertools.product(*values), n)]
