"""A claim in a compact store sees every other process's events of its repetition, though it parses only the
lines that name it (compact_catalog.Catalog.claimed): the others are read at the next refresh."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import script_env

from cluster_work.compact_catalog import catalog
from cluster_work.compact_store import CompactExperimentStore, CompactRepetition
from cluster_work.paths import COMPACT_FOLDER

# another process's writes: claims of repetitions, rows, a status, a drop, through the store itself
OTHER = textwrap.dedent("""\
    import sys
    from cluster_work.compact_store import CompactExperimentStore, CompactRepetition
    from cluster_work.vocabulary import Record
    root, path, *orders = sys.argv[1:]
    for order in orders:
        what, name, count = order.split(":")
        if what == "drop":
            CompactExperimentStore(root, name, path).delete()
            continue
        repetition = CompactRepetition(root, name, path, 0)
        writer = repetition.open_writer()
        for n in range(len(writer.read()), len(writer.read()) + int(count)):
            writer.append({"iteration": n, "by": "other"})
        repetition.write_status(Record.INTERRUPTED, sync=False, iterations_done=len(writer.read()))
        writer.close(sync=False)  # another process reads the page cache: no sync needed here
""")


def other_process(root: Path, *orders: str) -> None:
    subprocess.run([sys.executable, "-c", OTHER, str(root), str(root.parent), *orders], env=script_env(),
                   check=True, timeout=60)


def claim(root: Path, name: str, rows: int = 0) -> list[dict]:
    """Claim (name, 0) in this process, append `rows` rows, release it; the rows it found."""
    repetition = CompactRepetition(str(root), name, str(root.parent), 0)
    writer = repetition.open_writer()
    found = writer.read().rows
    for n in range(len(found), len(found) + rows):
        writer.append({"iteration": n, "by": "this"})
    writer.close()
    return found


@pytest.mark.processes
def test_a_claim_parses_only_the_lines_that_name_its_repetition_and_misses_none(tmp_path):
    root = tmp_path / "doc" / COMPACT_FOLDER
    assert claim(root, "a", rows=1) == []
    other_process(root, "write:b:3", "write:c:2")
    assert claim(root, "d") == []
    held = catalog(str(root), refresh=False)
    assert ("b", 0) not in held.repetitions and held.mentioned  # read for their keys only, not parsed
    assert [row["iteration"] for row in claim(root, "c", rows=1)] == [0, 1]  # named: parsed, its rows seen
    assert ("b", 0) in held.repetitions  # the rest came with them
    other_process(root, "write:e:1", "drop:c:0")  # a drop is no keyed line: everything is parsed
    assert claim(root, "c") == []
    assert [row["by"] for row in CompactRepetition(str(root), "e", str(root.parent), 0).read_results().rows] == [
        "other"]
    other_process(root, "write:f:1")
    assert claim(root, "g") == []
    assert catalog(str(root), force=True) is held and ("f", 0) in held.repetitions  # a refresh takes in the rest
    assert CompactExperimentStore(str(root), "b", str(root.parent)).repetition_numbers() == [0]
