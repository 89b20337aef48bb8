import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "tests" / "experiments.py")

# The two tiers: `pytest -m "not slow and not processes"` is the fast, in-process tier (seconds); the
# rest starts real processes (the CLI, mpiexec, kernels, Slurm). A test is marked `processes` when its
# code, its fixtures' or that of the module's functions it calls (two calls deep) starts one.
STARTS_PROCESSES = re.compile(r"\b(run_cli|run_mpi|run_mpiexec|mpi_command|subprocess\.|Popen|NotebookClient"
                              r"|execute_notebook|LocalProcessExecutor|make_processes|mpiexec\(\))")


def _code_reached(function, module, depth: int = 2) -> str:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return ""
    if depth:
        for name in set(re.findall(r"\b([a-z_][a-z0-9_]*)\(", source)):
            called = getattr(module, name, None)
            if inspect.isfunction(called) and called is not function and called.__module__ == module.__name__:
                source += _code_reached(called, module, depth - 1)
    return source


def pytest_collection_modifyitems(config, items):
    for item in items:
        function, module = getattr(item, "function", None), getattr(item, "module", None)
        if function is None or module is None:
            continue
        code = _code_reached(function, module)
        for name in getattr(item, "fixturenames", ()):
            for definition in item._fixtureinfo.name2fixturedefs.get(name, ()):
                code += _code_reached(definition.func, module)
        if STARTS_PROCESSES.search(code):
            item.add_marker(pytest.mark.processes)


def comparable(path):
    """A sweep's results in a fixed order, without the timing columns: equal for equal runs."""
    from cluster_work import load_results
    frame = load_results(path).sort_values(["experiment", "rep", "iteration"]).reset_index(drop=True)
    return frame.drop(columns=["iteration_time", "repetition_time"])


def script_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(experiment: str, *args: str, cwd: Path, timeout: float = 120, check_rc: int | None = None,
            script: str = SCRIPT, **popen) -> subprocess.CompletedProcess:
    """Run `tests/experiments.py EXPERIMENT ARGS` (or another `script`) as a user would, in `cwd`."""
    result = subprocess.run([sys.executable, script, experiment, *args], cwd=cwd, env=script_env(),
                            capture_output=True, text=True, timeout=timeout, **popen)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


@pytest.fixture
def write_config(tmp_path):
    def write(text: str, name: str = "config.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write


MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe"}


def mpiexec() -> str:
    """The venv's mpiexec (Open MPI from PyPI), or $CW_MPIEXEC to test against a system MPI."""
    import shutil
    name = os.environ.get("CW_MPIEXEC", "mpiexec")
    found = shutil.which(name, path=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    if found is None:
        pytest.fail("no mpiexec: install the test extras (pip install -e '.[test]'), which bring Open MPI")
    return found


def mpi_command(ranks: int, experiment: str, *args: str, script: str = SCRIPT) -> list[str]:
    return [mpiexec(), "-n", str(ranks), sys.executable, "-m", "mpi4py", script, experiment, *args, "-c"]


def run_mpi(ranks: int, experiment: str, *args: str, cwd: Path, check_rc: int | None = None,
            timeout: float = 120, script: str = SCRIPT) -> subprocess.CompletedProcess:
    """Run the experiment under a real mpiexec with `ranks` ranks (oversubscribed where needed)."""
    result = run_mpiexec(mpi_command(ranks, experiment, *args, script=script), cwd=cwd, timeout=timeout)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


def run_mpiexec(command: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """subprocess.run of an mpiexec command line, with the MPI test environment.

    Open MPI 5's launcher now and then fails its own start-up ("The PMIx server's listener thread failed
    to start", exit 213: once in CI, once in about ten launches here while other launches ran). No rank
    has run then, so nothing of ours was tested: launch again, at most twice."""
    for _ in range(3):
        result = subprocess.run(command, cwd=cwd, env={**script_env(), **MPI_ENV}, capture_output=True, text=True,
                                timeout=timeout)
        if not launcher_failed_to_start(result):
            break
    return result


def launcher_failed_to_start(result: subprocess.CompletedProcess) -> bool:
    """Whether mpiexec itself failed before starting any rank (see `run_mpi`)."""
    return result.returncode == 213 and "listener thread failed to start" in result.stdout + result.stderr


def descendants(root: int) -> list[int]:
    """Every live process below `root` in the process tree (ranks of any MPI, whatever their session)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
