"""Running code cells in a real Jupyter kernel (nbclient + ipykernel), for the tests of what notebooks use."""
from __future__ import annotations

import base64
import os
from pathlib import Path

from conftest import ROOT


def execute(notebook, folder: Path, timeout: float = 180):
    """Execute `notebook` (nbformat's) in a fresh python3 kernel whose working folder is `folder`, with
    cluster_work and tests/ importable; return it, executed. A cell that raises fails the call
    (CellExecutionError)."""
    from nbclient import NotebookClient

    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), previous or ""])  # the kernel's
    try:
        client.execute()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return notebook


def run_notebook(folder: Path, cells: list[str]):
    """Execute `cells` as a new notebook (see `execute`); the executed notebook."""
    import nbformat

    return execute(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells]), folder)


def run_cells(folder: Path, cells: list[str]) -> list[str]:
    """Execute `cells` as a new notebook (see `execute`); each cell's printed text."""
    return [text_of(cell) for cell in run_notebook(folder, cells).cells]


def text_of(cell) -> str:
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def pngs_of(cell) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in cell.outputs if "image/png" in o.get("data", {})]
