"""A steered campaign's files as tests/test_steering_cli.py checks them, in either store (`STORES`): the
default layout (a folder per point) or the compact store (`store: compact`, segment files). What a test
reads goes through cluster_work's own readers (load_results, the stores), so that one test checks both."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cluster_work import load_results
from cluster_work.compact_store import find_compact
from cluster_work.paths import COMPACT_FOLDER
from cluster_work.steering import Journal
from cluster_work.store import ExperimentStore

STORES = [pytest.param("folders", id="folders"), pytest.param("compact", id="compact")]


def write_config(folder: Path, grid: list[int] | None, iterations: int, steer: dict[str, Any],
                 params: dict[str, Any] | None = None, store: str = "folders") -> Path:
    """The steered document `search` (results in `results/search/`), in the store `store` names."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {"name": "search", "repetitions": 1, "iterations": iterations, "path": "results",
                "params": params or {}, "steer": steer, **({"grid": {"c": grid}} if grid is not None else {}),
                **({"store": "compact"} if store == "compact" else {})}
    (folder / "config.yml").write_text(json.dumps(document))  # JSON is YAML
    return folder


def rows_on_disk(folder: Path) -> dict[str, int]:
    """Saved rows per point (`c0`, `c5_add0`, ...: the experiment's name after its base), points with rows only."""
    if not (folder / "results").is_dir():
        return {}
    counts = load_results(folder / "results").groupby("experiment").size()
    return {str(name).split("__", 1)[1]: int(count) for name, count in counts.items()}


def calls(folder: Path) -> int:
    """Iterations computed, over all runs (Steered adds a byte to `<_log_path_rep>/calls` per iterate call)."""
    return sum(os.path.getsize(p) for p in (folder / "results" / "search").glob("*/log/rep_00/calls"))


def status(folder: Path, point: str, rep: int = 0) -> dict[str, Any]:
    """The status of repetition `rep` of point `point` (`c1`), as its store holds it."""
    path = str(folder / "results" / "search" / point)
    return (find_compact(path) or ExperimentStore(path)).repetition(rep).read_status()


def journal_file(folder: Path) -> Path:
    return folder / "results" / "search" / ".cluster_work_campaign.jsonl"


def decisions(folder: Path) -> Counter[str]:
    """The journal's decisions without job numbers (their order follows the order outcomes came in)."""
    records = Journal(str(journal_file(folder))).read()
    return Counter(json.dumps({k: v for k, v in r.items() if k != "job"}, sort_keys=True)
                   for r in records if r["k"] in ("run", "stop", "add", "finish"))


def assert_compact(folder: Path) -> None:
    """What cluster_work wrote per point in the compact store: nothing (a point's folder holds the
    experiment's own files, `_log_path_rep`'s, and the rep.log of a repetition that logged)."""
    base = folder / "results" / "search"
    assert (base / COMPACT_FOLDER).is_dir()
    written = [p.relative_to(base) for name in ("config.yml", "results.jsonl", "status.json", "rep_*.jsonl")
               for p in base.rglob(name)]
    assert written == [], written
