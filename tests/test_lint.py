"""The code stays clean: ruff (pyflakes, pycodestyle, bugbear, pyupgrade) and mypy, as configured in
pyproject.toml, and `import cluster_work` stays light. Part of the test command, so CI and a contributor
run the same checks."""
import os
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.processes  # every test here starts real processes


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_import_contracts_hold():
    """The layers, the independence of the campaign kinds and no new cycle, as pyproject.toml's
    [tool.importlinter] states them."""
    lint_imports = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_cluster_work_imports_no_pandas():
    """Every worker imports the experiment's script and with it cluster_work: pandas (0.3 s, 40 MB) is for
    load_results and PlotWork only."""
    code = "import sys, cluster_work; print(sorted({'pandas', 'matplotlib', 'IPython'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
