"""Weighted ensembles as in WESTPA and DeepDriveWE: walkers that advance one segment per iteration together
and are resampled (split and merged by bins of a progress coordinate) between iterations.

`spec` (the `ensemble:` block), `resampling` (Huber-Kim, pure), `worker` (a block of walkers on a worker),
`driver` (rank 0: dispatch, resample, commit), `store` (one append-only file per ensemble), `analysis`
(frames, flux, progress; pandas inside the functions only), `campaign` (the driver a run makes of each
ensemble: errors as exit statuses, config.yml), `progress` (the table `-p` shows).
"""
from .analysis import ensemble_flux, ensemble_progress, load_ensemble
from .driver import WeightedEnsemble
from .resampling import HuberKim, NextWalker, Walker
from .spec import EnsembleSpec, check_ensemble_block
from .store import EnsembleBusy, EnsembleStore, IterationRecord, delete_ensemble, read_records
from .worker import BlockOutcome, WalkerBlock, run_walker_block

__all__ = ["BlockOutcome", "EnsembleBusy", "EnsembleSpec", "EnsembleStore", "HuberKim", "IterationRecord", "NextWalker",
           "Walker", "WalkerBlock", "WeightedEnsemble", "check_ensemble_block", "delete_ensemble", "ensemble_flux",
           "ensemble_progress", "load_ensemble", "read_records", "run_walker_block"]
