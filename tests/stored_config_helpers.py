"""What the tests of a stored config's counts share (test_stored_config): a sweep's config before and after its counts
change, the counts its stored config holds (config.yml per point, or a compact store's document.json), and what
every reader of the stored config makes of them."""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import yaml
from experiments import Deterministic

from cluster_work.export.source import Watch
from cluster_work.paths import COMPACT_FOLDER, CONFIG_FILE, DOCUMENT_CONFIG_FILE
from cluster_work.restoring import restore_experiment
from cluster_work.results import stored_config

POINTS = ("s1.0", "s2.0")  # the params parts of the sweep's two points


def sweep_config(store: str, repetitions: int, iterations: int, extra: str = "") -> str:
    """A two-point sweep of Deterministic in `store` ('folders' or 'compact') with these counts."""
    return textwrap.dedent(f"""\
        name: fit
        repetitions: {repetitions}
        iterations: {iterations}
        path: out
        store: {store}
        grid: {{step: [1.0, 2.0]}}
        """) + extra


def point_folders(sweep: Path) -> list[Path]:
    return [sweep / "fit" / part for part in POINTS]


def stored_counts_on_disk(sweep: Path, store: str) -> list[tuple[int, int]]:
    """(repetitions, iterations) as the files hold them: each point's config.yml, or the compact store's
    document.json (once per point, for the same shape)."""
    if store == "compact":
        shared = json.loads((sweep / "fit" / COMPACT_FOLDER / DOCUMENT_CONFIG_FILE).read_text())
        return [(shared["repetitions"], shared["iterations"])] * len(POINTS)
    found = []
    for folder in point_folders(sweep):
        config = yaml.safe_load((folder / CONFIG_FILE).read_text())
        found.append((config["repetitions"], config["iterations"]))
    return found


def counts_readers_see(sweep: Path) -> dict[str, list[tuple[int, int]]]:
    """(repetitions, iterations) per point as each reader of the stored config takes them: `stored_config`, the
    original API's `get_experiment_config` (and how many repetitions of rows its `load_experiment_results` then
    finds), `restore_experiment` (the instance's counts) and the exporters' watch (per repetition it finds)."""
    seen: dict[str, list[tuple[int, int]]] = {"stored_config": [], "get_experiment_config": [],
                                              "load_experiment_results": [], "restore_experiment": [], "export": []}
    for folder in point_folders(sweep):
        config = stored_config(str(folder))
        assert config is not None
        seen["stored_config"].append((config["repetitions"], config["iterations"]))
        original = Deterministic.get_experiment_config(str(folder))
        seen["get_experiment_config"].append((original["repetitions"], original["iterations"]))
        frame = Deterministic.load_experiment_results(original)
        assert frame is not None
        reps = sorted(set(frame.index.get_level_values(0)))
        seen["load_experiment_results"].append((len(reps), frame.groupby(level=0).size().min()))
        instance = restore_experiment(Deterministic, str(folder), 0, 0)
        seen["restore_experiment"].append((instance._repetitions, instance._iterations))
    watched: dict[str, set[int]] = {}
    for repetition, _ in Watch([(str(sweep), None)]).poll(everything=True):
        watched.setdefault(os.path.basename(repetition.folder), set()).add(repetition.iterations)
        watched.setdefault(os.path.basename(repetition.folder) + "/reps", set()).add(repetition.rep)
    for part in POINTS:
        [iterations] = watched[part]
        seen["export"].append((len(watched[part + "/reps"]), iterations))
    return seen


def config_files(sweep: Path, store: str) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of each stored config file: what a rewrite changes."""
    paths = [sweep / "fit" / COMPACT_FOLDER / DOCUMENT_CONFIG_FILE] if store == "compact" else \
        [folder / CONFIG_FILE for folder in point_folders(sweep)]
    return {str(path): (path.stat().st_ino, path.stat().st_mtime_ns) for path in paths}
