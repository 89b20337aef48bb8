"""Weighted ensembles in a run: the campaign driver (see `kind`) of each expanded
experiment of a document with an `ensemble:` block, around its `WeightedEnsemble`.

A driver never raises out of `start` or `on_outcome`, so the run goes on with its other experiments;
what went wrong is kept and shows in `exit_status` and `summary_line`:

    held by another run (EnsembleBusy)    skipped, exit 0 (as a plain repetition another run holds)
    its store failed (StoreError)         exit 3; the step of the block outcome whose commit failed says so
                                          (`Step.store_failed`): the run stops at once, as for a plain segment
    an iteration failed (a walker raised) exit 1 (2 for InvalidParameterArgument); a rerun retries it
    its `ensemble:` block changed         exit 2: resuming would mix two ensembles; -d starts it over
    stopped (a signal, a store failure    exit 130; a rerun continues from the last committed iteration
    elsewhere: blocks never sent)

Planning (`Plan.count`) plans each experiment as a plain one (`CampaignPlan.plans`): -d/-o delete it
with the others, and changed parameters skip it unless -I (then its config.yml is replaced). The driver
writes the experiment's config.yml before its first block, so that `load_results`, -p and -d find it.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StoreError, config_error
from ..exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STORE, EXIT_USAGE
from ..planning import changed_params
from ..store import ExperimentStore, to_plain
from ..vocabulary import ConfigSource, ExperimentState, Outcome, OutcomeKind, RunSettings, Step
from .analysis import ensemble_progress
from .driver import WeightedEnsemble
from .spec import EnsembleSpec, check_ensemble_block
from .store import EnsembleBusy, EnsembleStore
from .worker import BlockOutcome, WalkerBlock, state_hooks_missing

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..expansion import ExpandedExperiment
    from ..planning import CampaignPlan, ExperimentPlan

log = logging.getLogger("cluster_work")


def check_experiment_class(experiment_class: type, documents: Sequence[Mapping[str, Any]],
                           source: ConfigSource) -> None:
    """Refuse (ConfigError: one line, exit 2, before anything is written) a class that cannot run the
    walkers of an `ensemble:` document: it lacks get_state or set_state."""
    problem = state_hooks_missing(experiment_class)
    for document in documents:
        if problem and "ensemble" in document:
            raise config_error(source, problem, experiment=document["name"], key="ensemble")


def drivers(campaign: CampaignPlan, settings: RunSettings, workers: int) -> list[EnsembleCampaign]:
    """One driver per expanded experiment of the campaign, each with its own ensemble and store."""
    plans: Sequence[ExperimentPlan | None] = campaign.plans or [None] * len(campaign.experiments)
    return [EnsembleCampaign(experiment, plan, settings, workers, campaign.spec) for experiment, plan in
            zip(campaign.experiments, plans)]


class EnsembleCampaign:
    """The campaign driver of one ensemble (see the module docstring). `plan`: the experiment as
    planning saw it (None: as a new or partial one); `spec`: its document's, as validation parsed it (None:
    parse it here)."""

    def __init__(self, experiment: ExpandedExperiment, plan: ExperimentPlan | None, settings: RunSettings,
                 workers: int, spec: EnsembleSpec | None = None):
        self.experiment, self.plan, self.settings = experiment, plan, settings
        self.source = settings.config_file or "the config"
        spec = spec or check_ensemble_block(experiment.config["ensemble"], self.source, experiment.base_name)
        self.ensemble = WeightedEnsemble(spec, experiment, EnsembleStore(experiment.path, sync=settings.sync), workers)
        self._status, self._error = EXIT_OK, ""
        self._note: str | None = None  # why it ended before its last iteration, where it did not fail
        self._first = -1  # the first iteration this run ran (-1: it did not start)

    # --- the Driver protocol ---------------------------------------------------------------------------

    def start(self) -> list[WalkerBlock]:
        if self.plan is not None and self.plan.skipped:
            self._note = (f"skipped, its parameters changed ({', '.join(self.plan.changed_keys)}); -o starts it "
                          "over, -I continues it")
            return []
        try:
            blocks = self.ensemble.start()
            if self.ensemble.error is None:
                self._write_config()
        except EnsembleBusy:
            self._note = "skipped, held by another run"
            blocks = []
        except StoreError as exc:
            self._fail(EXIT_STORE, f"store failure: {exc}")
            blocks = []
        except ConfigError as exc:
            self._fail(EXIT_USAGE, str(exc))
            blocks = []
        if self.ensemble.error is not None:
            self._fail(EXIT_FAILED, self.ensemble.error)
        if blocks:
            self._first = self.ensemble.iteration
        elif self._status != EXIT_OK or self._note:
            self.ensemble.close()
        return blocks

    def on_outcome(self, outcome: Outcome) -> Step:
        failed_before = self.ensemble.error is not None
        try:
            if not isinstance(outcome, BlockOutcome):
                raise ValueError(f"{outcome.label}: not a block's outcome")
            blocks = self.ensemble.on_outcome(outcome)
        except StoreError as exc:
            self.ensemble.close()
            self._fail(EXIT_STORE, f"store failure: {exc}")
            return Step(store_failed=True)  # campaign.drive stops the run, as for a plain segment
        except ValueError as exc:  # an outcome this ensemble did not hand out: the engine's mistake, not the user's
            self.ensemble.close()
            self._fail(EXIT_FAILED, str(exc))
            return Step()
        if self.ensemble.error is not None and not failed_before:
            bad_parameter = outcome.kind is OutcomeKind.BAD_PARAMETER
            self._fail(EXIT_USAGE if bad_parameter else EXIT_FAILED, self.ensemble.error)
            log.error("%s: iteration %d failed: %s", self.experiment.name, self.ensemble.iteration, self.ensemble.error)
        return Step(blocks)

    # --- the CampaignDriver protocol -------------------------------------------------------------------

    def exit_status(self) -> int:
        if self._status != EXIT_OK:
            return self._status
        if self._note is not None or self.ensemble.finished:
            return EXIT_OK
        return EXIT_INTERRUPTED  # stopped, or blocks were never sent because the run stopped

    def summary_line(self) -> str:
        name, total = self.experiment.name, self.experiment.iterations
        progress = ensemble_progress(self.experiment.path)
        done = progress["iterations_done"]
        if self._note is not None:
            return f"ensemble {name}: {self._note}"
        if self._status != EXIT_OK:
            return f"ensemble {name}: failed ({done} of {total} iterations committed): {self._error}"
        if not self.ensemble.finished:
            return (f"ensemble {name}: interrupted after {done} of {total} iterations (committed); a rerun "
                    "continues it")
        now = f"{done - self._first} this run" if self._first >= 0 else "already finished"
        return (f"ensemble {name}: {done} iterations ({now}), {progress['walkers']} walkers, "
                f"{progress['occupied_bins']} bins occupied, mean flux {progress['flux_mean']:.4g} per iteration")

    def iterations_planned(self) -> int:
        """Ensemble iterations this run runs, done and left (the live display's total): fixed once started,
        whatever the number of walkers, which changes as they split and merge."""
        return self.experiment.iterations - self._first if self._first >= 0 else 0

    def iterations_apart(self) -> int:
        """Ensemble iterations committed this run (its walkers do not count through the executor)."""
        return self.ensemble.iteration - self._first if self._first >= 0 else 0

    def close(self) -> None:
        self.ensemble.close()

    # ---------------------------------------------------------------------------------------------------

    def _fail(self, status: int, error: str) -> None:
        if self._status == EXIT_OK:
            self._status, self._error = status, error

    def _write_config(self) -> None:
        """Store the effective config (while the ensemble's lock is held): if it is missing, or -I continues
        with changed parameters. Refuse to resume committed iterations under a changed `ensemble:` block."""
        store = ExperimentStore(self.experiment.path)
        stored = store.read_config()
        current = to_plain(self.experiment.config["ensemble"])
        if stored is not None and self.ensemble.iteration > 0:
            changed = changed_params(stored.get("ensemble") or {}, current)
            if changed:
                raise config_error(self.source, f"changed since its {self.ensemble.iteration} iterations were saved "
                                                f"({', '.join(changed)}); -d starts it over",
                                   experiment=self.experiment.name, key="ensemble")
        replace = self.plan is not None and self.plan.state is ExperimentState.CHANGED
        if stored is None or replace:
            store.write_config(self.experiment.config, sync=self.settings.sync)
