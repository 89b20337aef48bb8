"""A sweep started from Python (a notebook, a script), as SmartSim's `Experiment` and Ray's `Tuner`:

    from cluster_work import Sweep
    sweep = Sweep(MyExperiment, "config.yml", workers=2, overrides=["params.lr=0.1"])
    sweep.start()        # returns at once: the sweep runs in a process of its own
    sweep.progress()     # the figures of `-p --json`, read from the files on disk
    sweep.stop()         # as Ctrl-C: the iterations in flight finish, a later run resumes
    sweep.wait()         # the exit status, as the command line's (0, 1, 2, 3, 130)
    sweep.results()      # the frame of `load_results`
    sweep.run()          # start() and wait(), printing the run's output as it comes

The sweep is the command line: its process runs `cli.main(MyExperiment, argv)` with the argv the options
make (`Sweep.argv`), so it has the command line's durability, exit statuses, signals (its own: a stop is
SIGINT to it) and worker processes, and a notebook's kernel never holds its state. The class travels to
that process with cloudpickle: one defined in a notebook or a script's `__main__` by value, one in an
importable module by reference (the child gets this process's `sys.path` first).

The sweep's process belongs to the Python process that started it: when that one dies (a kernel restart,
kill -9), the sweep stops cleanly after the iterations in flight, as on SIGTERM; `run()` resumes it.
Its output (the log lines and the summary of the command line) goes to `log_file`, a file of its own (a
temporary file unless given), readable with `output()`.
"""
from __future__ import annotations

import contextlib
import json
import operator
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from .experiment import ClusterWork
from .stopping import STOP_SIGNALS

if TYPE_CHECKING:
    import pandas as pd

    from .expansion import ExpandedExperiment

POLL_SECONDS = 0.1  # how often wait() looks at the sweep's process and output
PARENT_CHECK_SECONDS = 1.0  # how often the sweep's process looks whether its starter is alive


def _job_words(jobs: Sequence[int] | range | int) -> list[str]:
    """`-j`'s words: one job, a `range` as its START STOP STEP (its members, as words, would be read as a
    slice: range(0, 9, 3) as -j 0 3 6, job 0 alone), or the words as given (IDX, or START STOP [STEP])."""
    if isinstance(jobs, range):
        if not jobs:  # no -j at all would run every job
            raise ValueError(f"Sweep's jobs: {jobs!r} holds no job")
        return [str(jobs.start), str(jobs.stop), str(jobs.step)]
    if isinstance(jobs, int):
        return [str(int(jobs))]
    return [str(job) for job in jobs]


class Sweep:
    """A sweep of `experiment_class` over `config`, with the options of the command line:

    `workers` (-n), `experiments` (-e), `jobs` (-j), `delete` (-d), `overwrite` (-o), `ignore_config` (-I),
    `overrides` (`KEY.PATH=VALUE`, as on the command line) and `options`, any other words of the command
    line (`["--restart_full_repetitions", "-l", "DEBUG"]`). Relative paths are taken from the working
    folder at construction, for the run and for `progress()` and `results()` alike."""

    def __init__(self, experiment_class: type[ClusterWork], config: str | os.PathLike[str], *, workers: int = 1,
                 experiments: Sequence[str] = (), jobs: Sequence[int] | range | int = (), delete: bool = False,
                 overwrite: bool = False, ignore_config: bool = False, overrides: Sequence[str] = (),
                 options: Sequence[str] = (), log_file: str | os.PathLike[str] | None = None):
        if not (isinstance(experiment_class, type) and issubclass(experiment_class, ClusterWork)):
            raise TypeError(f"Sweep needs a ClusterWork subclass, got {experiment_class!r}")
        for label, words in (("experiments", experiments), ("jobs", jobs), ("overrides", overrides),
                             ("options", options)):
            if isinstance(words, (str, bytes)):  # a string is a sequence of its characters: never meant here
                raise TypeError(f"Sweep's {label} must be a list, got the string {words!r}; write [{words!r}]")
        try:
            if isinstance(workers, bool):
                raise TypeError
            workers = operator.index(workers)  # an int, or numpy's
        except TypeError:
            raise TypeError(f"Sweep's workers must be a positive integer, got {workers!r}") from None
        if workers < 1:
            raise ValueError(f"Sweep's workers must be a positive integer, got {workers!r}")
        self.experiment_class = experiment_class
        self.config = os.fspath(config)
        self.cwd = os.getcwd()
        self.argv = [self.config, *overrides]
        for flag, values in (("-e", experiments), ("-j", _job_words(jobs))):
            if values:
                self.argv += [flag, *values]
        if workers != 1:
            self.argv += ["-n", str(workers)]
        self.argv += [flag for flag, given in (("-d", delete), ("-o", overwrite), ("-I", ignore_config)) if given]
        self.argv += list(options)
        self.log_file = os.fspath(log_file) if log_file is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._echoed = 0

    def __repr__(self) -> str:
        state = "not started" if self._process is None else (
            "running" if self.running else f"exited with status {self.returncode}")
        return f"Sweep({self.experiment_class.__name__}, {' '.join(self.argv)!r}: {state})"

    # --- running ------------------------------------------------------------------------------------------

    def start(self) -> Sweep:
        """Start the sweep in a process of its own and return at once (an error if it is running already)."""
        if self.running:
            raise RuntimeError("this sweep is running already: wait() or stop() it first")
        import cloudpickle

        payload = pickle.dumps((os.getpid(), list(sys.path), _program(self.experiment_class), self.argv,
                                cloudpickle.dumps(self.experiment_class)))
        if self.log_file is None:
            handle, self.log_file = tempfile.mkstemp(prefix=f"cluster_work-{self.experiment_class.__name__}-",
                                                     suffix=".log")
            os.close(handle)
        # the child starts with the stop signals blocked, and unblocks them once it handles them: a stop() at
        # any moment is then one line and exit status 130, never a traceback from the interpreter's start-up
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            with open(self.log_file, "ab") as log:
                self._echoed = log.tell()
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "cluster_work.api"], cwd=self.cwd, stdin=subprocess.PIPE, stdout=log,
                    stderr=subprocess.STDOUT, env=_environment(),
                    start_new_session=True)  # a notebook's interrupt (SIGINT to its process group) is no stop
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        assert self._process.stdin is not None
        with self._process.stdin:
            self._process.stdin.write(payload)
        return self

    def run(self) -> int:
        """Start the sweep and wait for it, printing its output as it comes; return its exit status. A
        KeyboardInterrupt (Ctrl-C, a notebook's interrupt) stops it as Ctrl-C stops the command line: the
        first after the iterations in flight, a second one at once (a third is raised here)."""
        self.start()
        interrupts = 0
        while True:
            try:
                status = self._wait(None, sys.stdout)
                assert status is not None  # no timeout
                return status
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 2:
                    raise
                self.stop()

    def wait(self, timeout: float | None = None, echo: bool = False) -> int | None:
        """The exit status once the sweep has ended (None when `timeout` seconds passed first); with `echo`,
        its output is printed meanwhile. A status is the command line's: 0 all done, 1 a repetition failed,
        2 a usage or config error, 3 the results could not be written, 130 stopped; 128+N for a death by
        signal N."""
        return self._wait(timeout, sys.stdout if echo else None)

    def stop(self) -> None:
        """Ask the sweep to stop, as Ctrl-C does: it finishes the iterations in flight, keeps every saved row
        and exits with status 130; `run()` again resumes it. Asked twice, it stops at once."""
        if self.running:
            assert self._process is not None
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGINT)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status (see `wait`), or None before the sweep has ended."""
        if self._process is None or self._process.poll() is None:
            return None
        status = self._process.returncode
        return 128 - status if status < 0 else status

    def output(self) -> str:
        """What the sweep's process printed so far (its log lines and summary)."""
        if self.log_file is None or not os.path.exists(self.log_file):
            return ""
        with open(self.log_file, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def _wait(self, timeout: float | None, echo: IO[str] | None) -> int | None:
        if self._process is None:
            raise RuntimeError("this sweep was not started: start() or run() it")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._process.poll() is None and (deadline is None or time.monotonic() < deadline):
            self._echo(echo)
            time.sleep(POLL_SECONDS)
        self._echo(echo)
        return self.returncode

    def _echo(self, stream: IO[str] | None) -> None:
        if stream is None or self.log_file is None:
            return
        with open(self.log_file, "rb") as handle:
            handle.seek(self._echoed)
            text = handle.read()
        text = text[:text.rfind(b"\n") + 1]  # whole lines only
        if text:
            self._echoed += len(text)
            stream.write(text.decode("utf-8", "replace"))
            stream.flush()

    # --- looking --------------------------------------------------------------------------------------------

    def progress(self, full: bool = False) -> dict[str, Any]:
        """The figures `-p --json` prints (`-P --json` with `full`), read from disk: safe while it runs, and
        the same from any process that sees the files."""
        from .expansion import sweep_paths
        from .provenance import read_runs
        from .reporting import progress_json

        with _working_folder(self.cwd):
            _, selected = self._selected()
            runs = [run for path in sweep_paths(selected) for run in read_runs(path)]
            figures: dict[str, Any] = json.loads(progress_json(selected, full, runs))
        return figures

    def results(self) -> pd.DataFrame:
        """The results of the selected experiments of the effective config (`load_results`' frame: one row per
        saved iteration); the rows saved so far while it runs. Empty, with a warning, before any was saved."""
        import warnings

        import pandas as pd

        from .expansion import sweep_paths
        from .results import INDEX_COLUMNS, load_configured_results

        with _working_folder(self.cwd):
            names, selected = self._selected()
            frames = [load_configured_results(folder, names) for folder in sweep_paths(selected)
                      if os.path.isdir(folder)]
        if not frames:
            warnings.warn(f"{self.config}: no results yet (has the sweep run?)", stacklevel=2)
            return pd.DataFrame(columns=INDEX_COLUMNS)
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _selected(self) -> tuple[list[str], Sequence[ExpandedExperiment]]:
        """The names `-e` gave (else the config's base names), and the experiments they select."""
        from .cli import load_sweep, parse_arguments
        from .selection import select_experiments

        args = parse_arguments(self.argv)
        documents, expanded = load_sweep(self.experiment_class, args, warn=lambda message: None)
        names = list(args.experiments) or [document["name"] for document in documents]
        return names, select_experiments(expanded, args.experiments, args.config)


def _environment() -> dict[str, str]:
    """This process's environment for the sweep's, less what a notebook's kernel sets for its own output
    (forced colours, matplotlib's inline backend): the sweep writes plain lines to its log file."""
    environment = {name: value for name, value in os.environ.items() if name not in ("FORCE_COLOR", "CLICOLOR_FORCE")}
    if environment.get("MPLBACKEND", "").startswith("module://matplotlib_inline"):
        del environment["MPLBACKEND"]
    return {**environment, "PYTHONUNBUFFERED": "1"}


def _program(experiment_class: type[ClusterWork]) -> list[str]:
    """The sweep's process's sys.argv[0:], before the options: `cli._program` makes the line that resumes it
    of them (and runs.jsonl records them). For an importable class, a command that runs it:
    `python -m cluster_work.api module:Class`; else the label `Sweep(Class)`."""
    if _importable(experiment_class):
        return [os.path.abspath(__file__), f"{experiment_class.__module__}:{experiment_class.__qualname__}"]
    return [f"Sweep({experiment_class.__qualname__})"]


def _importable(experiment_class: type[ClusterWork]) -> bool:
    try:
        return _import(f"{experiment_class.__module__}:{experiment_class.__qualname__}") is experiment_class
    except (ImportError, AttributeError):
        return False


def _import(spec: str) -> Any:
    import importlib

    module, _, qualname = spec.partition(":")
    if module == "__main__" or not qualname:
        raise ImportError(spec)
    value: Any = importlib.import_module(module)
    for name in qualname.split("."):
        value = getattr(value, name)
    return value


def _stop_with_parent(parent: int) -> None:
    """In the sweep's process: SIGTERM to itself (a clean stop) once the process that started it is gone,
    which makes this process an orphan (checked every PARENT_CHECK_SECONDS, by a daemon thread)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="cluster_work-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _working_folder(folder: str) -> Iterator[None]:
    """The config's relative paths are the run's: taken from `folder` (contextlib.chdir from Python 3.11)."""
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _child(arguments: Sequence[str]) -> None:
    """The sweep's process. `python -m cluster_work.api module:Class config.yml [options]` runs an importable
    class from the command line; without arguments, the parent's pickled (pid, sys.path, program, argv,
    class) come on stdin."""
    from .stopping import stop_signals_handled

    with stop_signals_handled():  # a stop while the class is read: one line, exit 130, nothing written
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by Sweep.start until here
        if arguments:
            program, argv = [os.path.abspath(__file__), arguments[0]], list(arguments[1:])
            sys.path.insert(0, os.getcwd())
            try:
                experiment_class = _import(arguments[0])
            except (ImportError, AttributeError) as exc:
                print(f"error: cannot import the experiment class {arguments[0]!r} (module:Class): {exc}",
                      file=sys.stderr)
                raise SystemExit(2) from None
        else:
            parent, path, program, argv, pickled_class = pickle.loads(sys.stdin.buffer.read())
            _stop_with_parent(parent)
            sys.path[:0] = [entry for entry in path if entry not in sys.path]
            import cloudpickle

            experiment_class = cloudpickle.loads(pickled_class)
        sys.argv = [*program, *argv]
        experiment_class.run(argv)


if __name__ == "__main__":
    _child(sys.argv[1:])
