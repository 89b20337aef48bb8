"""Running code cells in a real Jupyter kernel (nbclient + ipykernel), for the tests of what notebooks use."""
from __future__ import annotations

import base64
import os
from pathlib import Path

from conftest import ROOT


def run_cells(folder: Path, cells: list[str], timeout: float = 180) -> list[str]:
    """Execute `cells` in a fresh python3 kernel whose working folder is `folder` (cluster_work and tests/
    importable); return each cell's printed text. A cell that raises fails the call (CellExecutionError)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = path  # the kernel inherits it
    try:
        client.execute()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return ["".join(output.get("text", "") + output.get("data", {}).get("text/plain", "") for output in cell.outputs)
            for cell in notebook.cells]


def run_notebook(folder: Path, cells: list[str]):
    """Execute `cells` in a fresh python3 kernel whose working folder is `folder`; the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
    return notebook


def text_of(cell) -> str:
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def pngs_of(cell) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in cell.outputs if "image/png" in o.get("data", {})]
