"""The Deterministic test experiment as a plain script (`python deterministic_exp.py config.yml ...`),
the way a user's experiment script looks: generated batch scripts call it like that."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from experiments import Deterministic  # noqa: E402

if __name__ == "__main__":
    Deterministic.run()
