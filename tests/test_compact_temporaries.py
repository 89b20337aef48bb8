"""What a kill -9 while a compact store's document config (`document.json`, compact_config) is written leaves:
the old file or the new one, whole, and a temporary named by its writer that the next write of that file, or of
the store's index, removes; never the temporary of a writer still alive, nor one of another host, nor a user's."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from huge_sweep_helpers import expand, run_some
from kills import kill_a_writer

from cluster_work import compact_catalog, compact_config, compact_index
from cluster_work.compact_config import read_shared, write_document_config
from cluster_work.compact_index import summary, write_index
from cluster_work.paths import COMPACT_FOLDER, DOCUMENT_CONFIG_FILE, DOCUMENT_CONFIG_TEMPORARY_PREFIX
from cluster_work.planning import make_plan
from cluster_work.selection import Policy, Selection


def document_config_writer(root: str, shared: dict) -> Callable[[], object]:
    """For kill_a_writer: what a first job of each new process does, again and again (`shared` from the test,
    not read in the writer: a writer killed before may have left none)."""
    def write() -> None:
        compact_config.forget_document_config(root)
        compact_config.write_document_config(root, shared, sync=True)
    return write


def as_a_new_process():
    """Forget what this process read and wrote of the stores (as a new process starts)."""
    compact_config._written.clear()
    compact_index._summaries.clear()
    compact_catalog._catalogs.clear()


def walk_root(tmp_path) -> str:
    return str(tmp_path / "out" / "walk" / COMPACT_FOLDER)


def temporaries(root: str) -> list[str]:
    return sorted(name for name in os.listdir(root) if name.endswith(".tmp"))


@pytest.mark.processes
def test_a_writer_killed_while_it_writes_the_document_config_leaves_nothing_after_the_next_run(tmp_path):
    run_some(tmp_path, (0, 40), "compact")
    root = walk_root(tmp_path)
    shared = read_shared(root)
    assert shared is not None and temporaries(root) == []
    instants, deadline = random.Random(25), time.monotonic() + 120
    while not temporaries(root):  # kill at random instants until one kill fell inside a write
        assert time.monotonic() < deadline, "no kill fell inside a write of the document config"
        kill_a_writer(lambda: document_config_writer(root, shared), instants.uniform(0.0, 0.05))
        assert read_shared(root) in (None, shared)  # the file whole, or none (between a -d and a write)
    as_a_new_process()
    run_some(tmp_path, (40, 80), "compact")  # writes the config where the kill left none
    make_plan(expand(tmp_path, "compact"), Selection(), Policy(), "test")  # writes the index: the store grew
    assert temporaries(root) == []
    assert read_shared(root) == shared


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def write_config(root: str) -> None:
    write_document_config(root, {"name": "x", "params": {}, "path": "x", "iterations": 3})


@pytest.mark.processes  # (a process that ran and died gives a dead pid)
@pytest.mark.parametrize("written", [False, True], ids=["config-written-then", "config-there-index-written"])
def test_only_dead_writers_temporaries_of_this_host_are_removed(tmp_path, written):
    """By the first job's write of the document config, or where the config is there (a writer killed after
    another wrote it) by the next write of the index."""
    root = str(tmp_path / COMPACT_FOLDER)
    os.makedirs(root)
    if written:
        write_config(root)
    host = socket.gethostname()
    dead = f"{DOCUMENT_CONFIG_TEMPORARY_PREFIX}{host}-{dead_pid()}-0a1b2c3d.tmp"
    kept = [f"{DOCUMENT_CONFIG_TEMPORARY_PREFIX}{host}-{os.getpid()}-0a1b2c3d.tmp",  # a writer alive
            f"{DOCUMENT_CONFIG_TEMPORARY_PREFIX}elsewhere-{dead_pid()}-0a1b2c3d.tmp",  # another host's
            f"{DOCUMENT_CONFIG_TEMPORARY_PREFIX}notes.tmp", ".document.json.mine.tmp", "notes.tmp"]  # a user's
    for name in [dead, *kept]:
        with open(os.path.join(root, name), "w") as handle:
            handle.write("{")
    as_a_new_process()
    write_config(root)  # a new process's first job: writes the config where there is none
    if written:
        assert temporaries(root) == sorted([dead, *kept])  # (found there: not written)
        assert write_index(root, summary(root, write=False))
    assert os.path.exists(os.path.join(root, DOCUMENT_CONFIG_FILE))
    assert temporaries(root) == sorted(kept)
