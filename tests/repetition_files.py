"""Where the tests find a repetition's files in the default layout, read with plain json (not the store's reader):
`log/rep_NN.jsonl` holds its rows and its status records (`{"cluster_work.status": {...}}` lines, the last one
wins); a repetition an earlier version began keeps `log/rep_NN/results.jsonl` and `status.json`
(`write_folder_layout` makes one, as that version wrote it)."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

STATUS_KEY = "cluster_work.status"  # the key of a status record's line (cluster_work.rows.STATUS_KEY)


def repetition_file(experiment: Any, rep: int) -> Path:
    """`<experiment>/log/rep_NN.jsonl` (`experiment`: its folder, or an expanded experiment)."""
    return Path(_folder(experiment)) / "log" / f"rep_{rep:02d}.jsonl"


def rep_folder(experiment: Any, rep: int) -> Path:
    """`<experiment>/log/rep_NN/`: the experiment's own files and rep.log (and an earlier version's results)."""
    return Path(_folder(experiment)) / "log" / f"rep_{rep:02d}"


def lines(experiment: Any, rep: int) -> list[str]:
    """The complete lines of the repetition's file, status records included."""
    text = repetition_file(experiment, rep).read_text()
    return text[:text.rfind("\n") + 1].splitlines()


def is_status(line: str) -> bool:
    return line.startswith('{"' + STATUS_KEY + '":')


def rows(experiment: Any, rep: int) -> list[dict[str, Any]]:
    """Its rows (every complete line that is not a status record), [] where it has no file."""
    if not repetition_file(experiment, rep).exists():
        return []
    return [json.loads(line) for line in lines(experiment, rep) if not is_status(line)]


def status(experiment: Any, rep: int) -> dict[str, Any] | None:
    """Its last status record, None where it has none."""
    if not repetition_file(experiment, rep).exists():
        return None
    found = [json.loads(line)[STATUS_KEY] for line in lines(experiment, rep) if is_status(line)]
    return found[-1] if found else None


def results_files(folder: Any) -> list[Path]:
    """Every repetition's file below `folder` (either layout), sorted."""
    root = Path(folder)
    return sorted([*root.rglob("log/rep_*.jsonl"), *root.rglob("log/rep_*/results.jsonl")])


def row_lines(path: Path) -> int:
    """How many rows a repetition's file holds (its complete lines that are not status records)."""
    return sum(1 for line in path.read_text().splitlines(keepends=True) if line.endswith("\n") and not is_status(line))


def saved_rows(folder: Any) -> int:
    """The rows saved below `folder`, all repetitions together."""
    return sum(row_lines(path) for path in results_files(folder))


def statuses(folder: Any) -> Iterator[dict[str, Any]]:
    """The status of every repetition below `folder` that has one (either layout)."""
    for path in results_files(folder):
        if path.name == "results.jsonl":
            if (path.parent / "status.json").exists():
                yield json.loads((path.parent / "status.json").read_text())
            continue
        found = [line for line in path.read_text().splitlines() if is_status(line)]
        if found:
            yield json.loads(found[-1])[STATUS_KEY]


def write_folder_layout(experiment: Any, rep: int, rows: Iterable[Mapping[str, Any]] = (),
                        status: Mapping[str, Any] | None = None) -> Path:
    """Make repetition `rep` as an earlier version left it: `log/rep_NN/results.jsonl` (one row a line) and, where
    given, `status.json`; its folder."""
    folder = rep_folder(experiment, rep)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(dict(row)) + "\n" for row in rows))
    if status is not None:
        (folder / "status.json").write_text(json.dumps(dict(status)))
    return folder


def _folder(experiment: Any) -> str:
    return experiment.path if hasattr(experiment, "path") else os.fspath(experiment)


def to_folder_layout(experiment: Any, rep: int) -> Path:
    """Turn repetition `rep` into what an earlier version would have left: its rows and status moved from
    `rep_NN.jsonl` into `rep_NN/results.jsonl` and `status.json`; its folder."""
    found_rows, found_status = rows(experiment, rep), status(experiment, rep)
    repetition_file(experiment, rep).unlink()
    return write_folder_layout(experiment, rep, found_rows, found_status)


def repetition_key(path: Path, root: Any) -> str:
    """`walk/s1.0/log/rep_02`: the repetition whose file (either layout) is `path`, relative to `root`."""
    folder = path.parent if path.name == "results.jsonl" else path.with_suffix("")
    return str(folder.relative_to(root))
