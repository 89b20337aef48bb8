"""Expanding experiment documents by `grid` (product) and `list` (zip) into named parameter sets.

A worked example:

    name: fit
    path: out
    params: {batch_size: 32}
    grid: {learning_rate: [0.1, 0.01]}
    list: {model: {width: [8, 16]}, seed_offset: [0, 1]}

expands to grid x list = 2 x 2 experiments; the first is named `fit__lr0.1_mod.w8_so0`, lives in
`out/fit/lr0.1_mod.w8_so0/` and has params {batch_size: 32, learning_rate: 0.1, model: {width: 8},
seed_offset: 0}. Names and folders are the original ClusterWork's (its `shorten_param` and its
clean-up of the value text), so scripts and notebooks written for it find them. Where the original's
rule would give two experiments one name, or a name no folder can have, cluster_work keeps them apart
with a longer form and says so. Names depend only on the config, so they are stable from run to run.

Its modules, each one idea:

    experiment   `ExpandedExperiment`: one parameter set, the unit that owns a results folder
    names        the name and folder of a parameter set (the original's, else a longer form)
    document     `ExpandedDocument`: the experiments of one document by grid, list, random or custom points
    whole        `expand_all` and `Expansion`: every document of a config, and the checks across documents

Pure: no module reads a file (a `custom:` document's frozen points come in from `cluster_work.design`).
"""
from __future__ import annotations

from .document import DesignedPoints, ExpandedDocument
from .experiment import ExpandedExperiment, expand_path
from .names import (
    MAX_FOLDER_NAME,
    NAME_SEPARATOR,
    escape,
    folder_safe,
    original_token,
    shorten_param,
    stable_repr,
)
from .whole import CustomPoints, Expansion, expand_all, sweep_paths

__all__ = [
    "MAX_FOLDER_NAME", "NAME_SEPARATOR", "CustomPoints", "DesignedPoints", "ExpandedDocument", "ExpandedExperiment",
    "Expansion", "escape", "expand_all", "expand_path", "folder_safe", "original_token", "shorten_param",
    "stable_repr", "sweep_paths",
]
