import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "tests" / "experiments.py")

# The two tiers: `pytest -m "not slow and not processes"` is the fast, in-process tier; the rest starts real
# processes (the CLI as a subprocess, mpiexec, kernels, Slurm, local worker processes). A test declares it:
# `pytestmark = pytest.mark.processes` in its module, or `@pytest.mark.processes` on it. The declaration is
# checked: in a test marked neither `processes` nor `slow`, starting a process fails the test (see below).


def _refuse_processes(monkeypatch, nodeid: str) -> None:
    """Make every way this process starts another one raise: subprocess (and what is built on it: asyncio's
    subprocesses, Jupyter's kernels, mpiexec), multiprocessing (local workers, forkservers) and os.fork.
    Only `git`, which every run's provenance record asks (see cluster_work.provenance), may start."""
    import multiprocessing.process

    def refuse(*args, **kwargs):
        raise AssertionError(f"{nodeid} starts a process: mark it @pytest.mark.processes (or slow)")

    popen = subprocess.Popen.__init__

    def popen_git_only(self, args, *more, **kwargs):  # a run's provenance record asks git for the commit
        if not (isinstance(args, (list, tuple)) and args and args[0] == "git"):
            refuse()
        popen(self, args, *more, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", popen_git_only)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)


def pytest_configure(config):
    """Libraries' own one-time probes that start a process, done once here, before the guard below: finding
    libc for syncfs (`ldconfig -p`, at cluster_work's import), the processor's name (`uname -p`, cached by
    the platform module; a run's provenance record asks for it) and matplotlib's font cache (`fc-list`).

    Under pytest-xdist each worker gets temporary folders of its own (`TMPDIR`, and PMIx's for its system
    rendezvous), inherited by every process it starts: two workers' `mpiexec`s never share Open MPI's session
    folders or PMIx's sockets (a short path: a Unix socket's path has at most 107 bytes).

    The checkout's Python files are compiled to bytecode first (`_compile_checkout`)."""
    import platform

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:  # (the controller, before its workers start; or the only process, without xdist)
        _compile_checkout()
    else:
        private = Path(f"/tmp/cw-{worker}-{os.getpid()}")
        private.mkdir(exist_ok=True)
        for name in ("TMPDIR", "PMIX_SYSTEM_TMPDIR", "PMIX_SERVER_TMPDIR"):
            os.environ[name] = str(private)
        config.add_cleanup(lambda: shutil.rmtree(private, ignore_errors=True))

    import cluster_work.durability  # noqa: F401

    platform.platform()
    _build_font_cache()


def _compile_checkout() -> None:
    """Write the bytecode of the checkout's Python files (cluster_work, plotwork, the tests' clients, examples,
    benchmarks), where it is missing or stale. Where `PYTHONDONTWRITEBYTECODE` is set (as on our build machines)
    no process writes it on import, and each of the suite's hundreds of processes (a CLI run, an MPI rank)
    would compile every module it imports: 0.2 s of each start, minutes of the suite. Reading bytecode is
    unaffected by the variable; bytecode is checked against its source's time and size on every import."""
    import compileall

    for folder in ("cluster_work", "plotwork", "tests", "examples", "benchmarks"):
        compileall.compile_dir(str(ROOT / folder), quiet=1, workers=1)


def _build_font_cache() -> None:
    """matplotlib's font cache, built where none is yet (a fresh machine): building it asks `fc-list`, a process
    that the fast tier's guard would blame on the first test that draws. Workers racing to build it each write
    it whole (matplotlib writes it to a temporary file and renames it)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib.font_manager  # noqa: F401  (its import loads the cache, or builds and saves it)


@pytest.fixture(autouse=True)
def _declared_tier(request, monkeypatch):
    """The fast tier holds what it says: a test not marked `processes` or `slow` cannot start a process."""
    if request.node.get_closest_marker("processes") is None and request.node.get_closest_marker("slow") is None:
        _refuse_processes(monkeypatch, request.node.nodeid)
    yield


@pytest.fixture(autouse=True)
def _fresh_stop_flag():
    """Every test ends with this process's stop flag clear: some request a stop on purpose (a stop's
    conformance case, a console that went away), and an executor obeys the process's flag by default."""
    from cluster_work import stopping

    yield
    stopping.clear_stop_request()


@pytest.fixture
def cli(monkeypatch):
    """`tests/experiments.py EXPERIMENT ARGS` run in this process, as `run_cli` runs it in a new one (same
    arguments, same result: returncode, stdout, stderr); sequential only (see in_process.run_main)."""
    from in_process import run_main

    def run(experiment: str, *args: str, cwd: Path, check_rc: int | None = None) -> subprocess.CompletedProcess:
        result = run_main(experiment, list(args), cwd, monkeypatch)
        if check_rc is not None:
            assert result.returncode == check_rc, result.stdout + result.stderr
        return result
    return run


EXTRAS = {"matplotlib": "plot", "IPython": "plot", "nbclient": "test", "nbformat": "test", "ipykernel": "test",
          "optuna": "optuna", "pyarrow": "fast", "mpi4py": "mpi"}


def requires(*modules: str):
    """Skip, saying why, where an optional dependency is not installed: a mark for a test or a module
    (`pytestmark = requires("matplotlib")`). Found without importing it: collecting stays quick."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    extras = ",".join(sorted({EXTRAS.get(name, "test") for name in missing}))
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}: pip install -e '.[{extras}]'")


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
            script: str = SCRIPT, env: dict[str, str] | None = None, **popen) -> subprocess.CompletedProcess:
    """Run `tests/experiments.py EXPERIMENT ARGS` (or another `script`) as a user would, in `cwd` (`env`: more
    environment variables, e.g. experiments.NO_SLEEP)."""
    result = subprocess.run([sys.executable, script, experiment, *args], cwd=cwd, env={**script_env(), **(env or {})},
                            capture_output=True, text=True, timeout=timeout, **popen)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


@pytest.fixture(scope="session")
def mlflow_sqlite(tmp_path_factory):
    """`(folder) -> tracking URI` of an empty MLflow SQLite store `folder/mlflow.db`, a copy of one made once a
    run of the suite (shared by pytest-xdist's workers): MLflow makes a new database by running its schema
    migrations (1 - 8 s, by the load), which a test of what an export writes into it (or of a server over it)
    need not pay each time (test_export's README commands still export into a store their exporter creates)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # (each worker's base is a folder in the run's)
    template = shared / "mlflow-template.db"

    def empty_store(folder: Path) -> str:
        with open(shared / "mlflow-template.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker makes it, the others wait for it
            if not template.exists():
                from mlflow import MlflowClient

                making = shared / f"mlflow-template-{os.getpid()}.db"
                MlflowClient(f"sqlite:///{making}").search_experiments()  # (creates it)
                os.replace(making, template)
        shutil.copyfile(template, folder / "mlflow.db")
        return f"sqlite:///{folder}/mlflow.db"
    return empty_store


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
