"""Steered campaigns: policies that stop hopeless runs, let good ones go on and add points, reproducibly.

The engine's side of it:

    spec = check_steer_block(document["steer"], source, name)     # at config time (one-line errors)
    steering = Steering(spec, expanded_document, Journal(journal_path(expanded_document.base_folder)))
    for action in steering.start(): ...                           # Run / Stop / Add / Finish
    for action in steering.on_outcome(outcome, job=run.job): ...  # for each outcome of a Run

A user's policy subclasses `Policy` (see `policy`). `core` states the invariants: decisions depend only
on results, are journaled before they are acted on, and replay to the same place after a crash.
`campaign` is the run's side (the campaign driver that turns actions into segments and statuses, -d, the
selection), `progress` what -p and `cluster_work.stop_reasons` read from a campaign's files.
"""
from .actions import Action, Add, Finish, PolicyError, Run, SteeringError, Stop
from .core import Steering
from .journal import JOURNAL_FILE, Journal, journal_path
from .points import expand_added, read_added
from .policy import Campaign, Policy, Result
from .spec import SteerSpec, check_steer_block

__all__ = ["JOURNAL_FILE", "Action", "Add", "Campaign", "Finish", "Journal", "Policy", "PolicyError", "Result", "Run",
           "SteerSpec", "Steering", "SteeringError", "Stop", "check_steer_block", "expand_added", "journal_path",
           "read_added"]
