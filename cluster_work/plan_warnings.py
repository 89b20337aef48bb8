"""What a run says about its plan before it starts: experiments whose parameters changed (warned, or refused
where nothing else would run), quarantined repetitions, and what -d/-o kept of the user's."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .kinds import kind
from .selection import Policy
from .vocabulary import ExperimentState

if TYPE_CHECKING:
    from .planning import Plan

log = logging.getLogger("cluster_work")


def warn_changed(plan: Plan, policy: Policy, warn: Any = log.warning, most: int = 20) -> None:
    """One warning per experiment whose parameters changed, `most` of them, then their number."""
    changed = 0
    for item in plan.experiments if plan.totals.changed else ():
        if item.state != ExperimentState.CHANGED:
            continue
        changed += 1
        if changed > most:
            continue
        keys = ", ".join(item.changed_keys)
        if policy.ignore_config:
            warn(f"{item.experiment.name}: parameters changed ({keys}); resuming anyway (-I)")
        else:
            warn(f"{item.experiment.name}: skipped, its parameters changed since its results were saved "
                 f"({keys}); use -o/--overwrite to delete its results and start over, or "
                 "-I/--ignore_config to continue with the new parameters")
    if changed > most:
        warn(f"... and {changed - most} more experiments whose parameters changed")


def refuse_changed_only(plan: Plan, policy: Policy, source: str, most: int = 3) -> None:
    """Raise a ConfigError (exit 2, before anything is written) when nothing would run but experiments whose
    parameters changed since their results were saved: a rerun after an edit of the config that silently
    did nothing and exited 0 looked like a success. Where anything else runs, the skipped ones are only
    warned about (`warn_changed`) and named in the summary."""
    if policy.ignore_config or plan.totals.jobs:
        return
    skipped = [item for item in plan.experiments if item.skipped] if plan.totals.skipped else []
    for campaign in plan.campaigns:
        changed = [item for item in campaign.plans if item.skipped]
        # a campaign run as a whole is skipped by one changed experiment; another runs the others
        if not changed or (not kind(campaign.kind).runs_as_whole and len(changed) < len(campaign.plans)):
            return  # the campaign runs (or decides itself that it has nothing left)
        skipped += changed
    if not skipped:
        return
    named = "; ".join(f"{item.experiment.name}: {', '.join(item.changed_keys)}" for item in skipped[:most])
    more = f"; and {len(skipped) - most} more" if len(skipped) > most else ""
    raise ConfigError(f"{source}: nothing to run: the parameters of {len(skipped)} experiment(s) changed since "
                      f"their results were saved ({named}{more}); rerun with -o/--overwrite to delete their results "
                      "and run them from scratch, or -I/--ignore_config to continue them with the new parameters")


def warn_quarantined(plan: Plan, policy: Policy, warn: Any = log.warning, most: int = 20) -> None:
    """One warning for the quarantined repetitions (up to `most` named), at a run's start."""
    quarantined = plan.totals.quarantined
    if not quarantined:
        return
    shown = "; ".join(f"{label}: {suspicion.describe()}" for label, suspicion in quarantined[:most])
    more = f"; and {len(quarantined) - most} more" if len(quarantined) > most else ""
    if policy.retry_failed:
        warn(f"running {len(quarantined)} quarantined repetition(s) again (--retry-failed): {shown}{more}")
    else:
        warn(f"{len(quarantined)} repetition(s) quarantined, not run: {shown}{more}; "
             "run with --retry-failed to run them again")


KEPT_SHOWN = 5  # experiments whose kept files -d/-o names one by one; the rest in one line


def warn_kept(kept: Sequence[tuple[str, list[str]]], warn: Any = log.warning) -> None:
    """Name what -d/-o kept in each experiment's folder (files cluster_work did not write), for the first
    KEPT_SHOWN experiments, then the rest in one line: a grid whose every point wrote into its `_log_path_rep`
    gets a few lines, not one per point. The one wording of it: `apply_plan`'s, and a steered campaign's of the
    points it added (`steering.campaign.forget_campaign`)."""
    for name, left in kept[:KEPT_SHOWN]:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        warn(f"{name}: -d/-o kept what cluster_work did not write: {shown}")
    rest = kept[KEPT_SHOWN:]
    if rest:
        names = sorted({entry for _, left in rest for entry in left})
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        warn(f"-d/-o kept what cluster_work did not write in {len(rest)} more experiments' folders too ({shown})")
