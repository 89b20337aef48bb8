"""Logging set-up: one console format, a per-repetition log file that also gets what is printed, and a
console that may go away (a dead terminal or MPI launcher stops the run instead of failing the experiment)."""
from __future__ import annotations

import atexit
import contextlib
import faulthandler
import fcntl
import logging
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

from .stopping import request_stop

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
tool_log = logging.getLogger("cluster_work")
FILE_ONLY = {"console": False}  # `extra=` of a record for the repetition's log file, not the console
# Libraries that log a lot at DEBUG/INFO; the experiment's level applies to its own loggers, not theirs.
QUIET_LIBRARIES = ("matplotlib", "PIL", "urllib3", "asyncio", "numba", "h5py", "fsspec", "parso", "filelock",
                   "git", "jax", "tensorflow", "torch", "absl", "traitlets", "IPython")


def configure_console(experiment_level: str | int, tool_level: str | int) -> None:
    """Console logging: the experiment's loggers at `experiment_level`, cluster_work's at `tool_level`."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_cluster_work_console", False):
            root.removeHandler(handler)
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    handler._cluster_work_console = True  # type: ignore[attr-defined]
    handler.addFilter(lambda record: getattr(record, "console", True))
    root.addHandler(handler)
    root.setLevel(_level(experiment_level))
    tool_log.setLevel(_level(tool_level))
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, _level(experiment_level)))


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time, so that a live progress bar, which swaps it for
    a proxy, keeps log lines above the bar."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the console is gone (see _Console): no traceback
            request_stop()
        else:
            super().handleError(record)


def _level(level: str | int) -> int:
    return level if isinstance(level, int) else logging.getLevelName(str(level).upper())


class _Console:
    """A console stream (stdout or stderr) that may go away: once writing to it fails (EIO from a terminal
    that hung up, EPIPE from an MPI launcher killed with -9), the run is asked to stop and what is written
    from then on is dropped. The code that printed goes on: its repetition ends at the next iteration
    boundary as interrupted (resumable) and the process exits non-zero, instead of the print raising
    inside `iterate` and the repetition being recorded as failed."""

    def __init__(self, stream: IO[str]):
        self._stream, self._gone = stream, False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except OSError:
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError:
                self._lost()

    def _lost(self) -> None:
        self._gone = True
        request_stop()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _guarded(stream: Any) -> Any:
    return stream if isinstance(stream, (_Console, _Tee)) else _Console(stream)


@contextlib.contextmanager
def console_guard() -> Iterator[None]:
    """Within: prints and log lines to a console that is gone stop the run instead of raising (`_Console`)."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _guarded(stdout), _guarded(stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr


class _Tee:
    """A text stream that writes to the repetition's log file and to the (guarded) console stream."""

    def __init__(self, console: IO[str], log_file: _LazyFile):
        self._console, self._log_file = console, log_file

    def write(self, text: str) -> int:
        self._log_file.write(text)
        return self._console.write(text)

    def flush(self) -> None:
        self._log_file.flush()
        self._console.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self._console, name)


class _LazyFile:
    """A line-buffered append-only text file that is created on the first write, not before:
    most repetitions log nothing, and a file open costs more than a whole no-op iteration."""

    def __init__(self, path: str):
        self._path = path
        self._file: IO[str] | None = None

    def write(self, text: str) -> int:
        try:  # the log is best effort: a full disk must not fail the experiment's print()
            if self._file is None:
                os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)  # the repetition's folder may not
                self._file = open(self._path, "a", buffering=1, encoding="utf-8")  # exist (a compact store's)
            return self._file.write(text)
        except OSError:
            return len(text)

    def flush(self) -> None:
        try:
            if self._file is not None:
                self._file.flush()
        except OSError:
            pass

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass


class _RepetitionHandler(logging.StreamHandler):
    """The handler that copies log records into a repetition's log; kept for the next repetition when this one
    ends (`_spare_handlers`), since making a handler and its formatter costs more than a no-op iteration."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT))


_spare_handlers: list[_RepetitionHandler] = []  # this process's, not in use (one per repetition logging at once)
_fault_logs: dict[str, int] = {}  # this process's fault logs (`held_fault_log`), by path: open for its life
os.register_at_fork(after_in_child=_fault_logs.clear)  # the parent's: its child makes its own


@contextlib.contextmanager
def repetition_log(path: str, experiment_level: str | int, fault_log: str | None = None) -> Iterator[None]:
    """Copy log records and prints of the code inside into `path` (appended, line-buffered); a fatal signal
    inside leaves the Python stack in `path` (`fault_stacks_to`), or in `fault_log` where given (this
    process's file for it, see `held_fault_log`: no file opened per repetition)."""
    log_file = _LazyFile(path)
    handler = _spare_handlers.pop() if _spare_handlers else _RepetitionHandler()
    handler.stream = log_file
    handler.setLevel(_level(experiment_level))
    root = logging.getLogger()
    stdout, stderr = sys.stdout, sys.stderr
    with fault_stacks_to(path) if fault_log is None else _fault_stacks_to_held(fault_log):
        root.addHandler(handler)
        sys.stdout, sys.stderr = _Tee(_guarded(stdout), log_file), _Tee(_guarded(stderr), log_file)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stdout, stderr
            root.removeHandler(handler)
            log_file.close()
            handler.stream = None  # (logging's shutdown flushes every handler)
            _spare_handlers.append(handler)


def held_fault_log(path: str) -> int:
    """A descriptor on `path`, this process's fault log: created and opened by its first call, kept open for the
    process's life (faulthandler writes to a descriptor from its signal handler) and locked (`flock`) as long,
    and removed when the process exits if nothing was written into it (one killed, or ended by its MPI job
    without Python's exit, leaves it empty and unlocked: a later run's start removes it, `remove_dead_empty_fault_logs`
    in the attempts folder (`attempts.compact`) and in each compact store's (the cli)). A fatal signal ends the
    process, so the file holds at most one stack: that of the process's last repetition, which the attempts
    journal's last begin names."""
    fd = _fault_logs.get(path)
    if fd is None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:  # its folder (a run's attempts folder, a compact store's) not made yet
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, flags, 0o644)
        with contextlib.suppress(OSError):  # held for its life: a reader tells a dead process's log by its free lock
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fault_logs[path] = fd
        if len(_fault_logs) == 1:  # a local worker process leaves by os._exit after multiprocessing's finalizers,
            import multiprocessing.util  # not by atexit's: both, the second finds nothing left to do

            multiprocessing.util.Finalize(None, _remove_empty_fault_logs, exitpriority=0)
    return fd


@atexit.register
def _remove_empty_fault_logs() -> None:
    for path, fd in list(_fault_logs.items()):
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_size == 0:
                os.remove(path)
            os.close(fd)
    _fault_logs.clear()


@contextlib.contextmanager
def _fault_stacks_to_held(path: str) -> Iterator[None]:
    """`fault_stacks_to` into this process's fault log at `path` (`held_fault_log`); to stderr where it cannot
    be opened."""
    try:
        fd = held_fault_log(path)
    except OSError:
        with _fault_stacks_to_stderr():
            yield
        return
    with _fault_stacks_to_fd(fd):
        yield


@contextlib.contextmanager
def _fault_stacks_to_fd(fd: int) -> Iterator[None]:
    """While inside: faulthandler on, to `fd`; after: as it was (on, to stderr, if it was on: Python cannot
    say where to)."""
    was_enabled = faulthandler.is_enabled()
    faulthandler.enable(fd, all_threads=True)
    try:
        yield
    finally:
        faulthandler.disable()
        if was_enabled and sys.__stderr__ is not None:
            with contextlib.suppress(Exception):
                faulthandler.enable(sys.__stderr__, all_threads=True)


@contextlib.contextmanager
def fault_stacks_to(path: str) -> Iterator[None]:
    """While inside: a SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL (native code crashing) appends the Python
    stack of every thread to `path` (`faulthandler`) before the process dies of it as it would have.

    faulthandler writes to a file descriptor from its signal handler, so one stays open on `path` the whole
    time: created if missing, and removed again if it was and nothing was written (most repetitions log
    nothing). If `path` cannot be opened (its folder is missing), the stack goes to the process's stderr
    (the console, or mpiexec's), rather than nowhere."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        created = True
    except FileExistsError:
        fd, created = os.open(path, os.O_WRONLY | os.O_APPEND), False
    except OSError:
        with _fault_stacks_to_stderr():
            yield
        return
    try:
        with _fault_stacks_to_fd(fd):
            yield
    finally:
        with contextlib.suppress(OSError):
            if created and os.fstat(fd).st_size == 0:
                os.remove(path)
        os.close(fd)


@contextlib.contextmanager
def _fault_stacks_to_stderr() -> Iterator[None]:
    """While inside: faulthandler on, to the process's own stderr; after: as it was."""
    was_enabled = faulthandler.is_enabled()
    try:
        faulthandler.enable(sys.__stderr__, all_threads=True)  # type: ignore[arg-type]
    except (AttributeError, ValueError, OSError, RuntimeError):  # no usable stderr (None, closed)
        yield
        return
    try:
        yield
    finally:
        if not was_enabled:
            faulthandler.disable()
