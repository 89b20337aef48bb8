"""Which keys of a stored config follow the current config when a run continues its experiment (pure logic; the
writes are `ExperimentStore.refresh_config`'s and `compact_config.refresh_document_config`'s).

An experiment is identified by its parameters: a change of `params` is a change (skipped, `-o`, `-I`; see
`experiment_plan.changed_params`), and everything else its stored config holds is kept as its first job wrote
it. That left the stored config stale where a document's counts grew between runs: a rerun with `iterations`
raised from 10 to 20 continued every repetition to 20 rows, but `config.yml` (a compact store's
`document.json`) still said 10, and every reader of the stored config (the exporters' finished state, the
original API's `get_experiment_config` and `load_experiment_results`, `restore_experiment`, `stored_config`)
took the old counts.

REFRESHED holds the keys that never change what a repetition computes, so that rows saved under their old values and
rows saved under their new ones belong together: the counts (`iterations`, `repetitions`: a repetition's iteration n
is the same whatever the total) and cluster_work's own run settings, which no experiment reads to compute its
results (`max_failures`, `stall_timeout`, `slurm`, `export`, `keep_keys`). A run that continues an experiment (it
has a job for it, its parameters unchanged; `-I` stores the whole current config, as before) stores their current
values, before any row of its jobs; every other key keeps the value its first job stored (`command`, `files`, `gui`,
`plotting`, `log_path`...: today's behaviour, where a change may mix rows that do not belong together). An
experiment that no job of the run continues (done, skipped) keeps its stored config whole: a lowered count leaves
its saved rows and its config as they are.

Who writes, when: in the default layout every job of a continued experiment (`ConfigWrite.REFRESH`), holding its
repetition's lock, before its first row: it reads config.yml (~0.1 ms) and rewrites it only where these keys differ,
with `write_config` (a temporary file renamed over the old one, synced: a kill -9 at any instant leaves the old
config or the new one, whole). Jobs of one experiment in several processes (-n, MPI: only a group's leader writes;
an MPI leader's batch first brings its stale ones up to date with one sync for all, `store.refresh_configs`) write
the same bytes, derived from the same stored config and document. Not the launcher: a sweep whose 10^6 counts grew
would rewrite 10^6 configs before its first job. A compact store's document config (one for all its points) is the
launcher's alone (rank 0 under MPI), before any job (`planning.apply_plan`). The folder index records config.yml's
stat, so a rewritten one is read again by the next plan.

The original ClusterWork compared the whole stored `experiment.yml` with the current config and skipped an
experiment on any difference (unless `-I` or `-o`), rewriting it (in place) for every experiment it ran;
this one continues on a change of counts, and stores them.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from .rows import to_plain

REFRESHED = ("iterations", "repetitions", "max_failures", "stall_timeout", "slurm", "export", "keep_keys")


def stale_keys(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The keys of REFRESHED whose stored values differ from `current`'s (compared as stored: plain values)."""
    return [key for key in REFRESHED if not _same(stored, current, key)]


def _same(stored: Mapping[str, Any], current: Mapping[str, Any], key: str) -> bool:
    """Whether both have `key` with equal values, or neither has it: equal plain values at once (the usual
    case, ~100 ns), else as texts (NaN equals NaN, a tuple the list stored for it...)."""
    if (key in stored) != (key in current):
        return False
    if key not in stored:
        return True
    with contextlib.suppress(ValueError, TypeError):  # (an array's == is no truth value)
        if stored[key] == current[key]:
            return True
    return _text(stored[key]) == _text(current[key])


def _text(value: Any) -> str:
    return json.dumps(to_plain(value), sort_keys=True)


def refreshed(stored: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """`stored` with the REFRESHED keys' values of `current` (in `stored`'s order; one `current` has and
    `stored` had not goes last, one `current` no longer has is dropped); every other key as stored."""
    updated = {key: current[key] if key in REFRESHED else value for key, value in stored.items()
               if key not in REFRESHED or key in current}
    updated.update((key, current[key]) for key in REFRESHED if key in current and key not in stored)
    return updated
