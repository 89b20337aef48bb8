"""The attempts journals: which repetitions each process of each run began, and which of those it closed.

Every process that runs segments appends to one journal per run (and sweep folder),
`<path>/.cluster_work_attempts/<run>.<host>.<pid>`, lines of

    begin <time> <rep> <rows saved> <experiment name as a JSON string> <log size> <log as a JSON string>
                                                                         a segment starts user code
    end <time> <rep> <experiment name>                                   it ended, with any outcome
    stop <time> <signal name>                                            a stop signal reached the process

and holds it locked (`flock`) for as long as it lives, so that a reader knows whether its writer is dead.
The run's main process (the sequential process, `-n`'s parent, MPI rank 0) holds one from the run's start,
so a run is alive exactly while some file of it is locked. Never two writers to one file: each process
has its own, MPI ranks on other hosts included (a shared file system only sees distinct names).

A begin names the repetition's `rep.log` (relative to the sweep folder) and the bytes it held then, so a
reader can tell whether a fatal signal's stack (faulthandler's) landed there during that attempt: the
evidence that explains a run's death (see `quarantine`). Older begins without them still read (no evidence).

Invariants that keep reading cheap and robust:
- a process runs one segment at a time, so in one journal every begin but the last is closed by what
  follows it; only a dead journal's last complete line can be an unclosed begin (the tail is all a
  reader needs, whatever the file's length);
- lines are appended with one `write` each, without `fsync` (a kill -9 keeps the page cache; a power loss
  costs at most quarantine precision); a torn last line is ignored by readers;
- attempts of one repetition in different runs are ordered by their `time` (the wall clock of their hosts:
  they are a run's restart apart, and a cluster's clocks agree to milliseconds);
- `compact` (at a run's start) folds the journals of finished runs into `summary.jsonl` (the unclosed
  attempts that still matter) and removes them, so journals never pile up over requeues.

What the records mean for a repetition is decided in `quarantine` (pure logic); they are read in `attempts_index`
(whose names this module gives too, as before the two were apart).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json.encoder
import logging
import os
import signal
import socket
import time
import weakref
from collections.abc import Iterable
from typing import Any

from . import stopping
from .attempts_index import BEGIN, END, STOP
from .attempts_index import TAIL_BYTES as TAIL_BYTES  # the reading side's names, imported from here before the split
from .attempts_index import AttemptIndex as AttemptIndex
from .attempts_index import compact as compact
from .attempts_index import complete_lines as complete_lines
from .attempts_index import journal_files as journal_files
from .attempts_index import last_open_attempt as last_open_attempt
from .attempts_index import lost_attempt_crash as lost_attempt_crash
from .attempts_index import lost_attempt_signal as lost_attempt_signal
from .attempts_index import parse as parse
from .attempts_index import parse_attempt as parse_attempt
from .attempts_index import read_index as read_index
from .attempts_index import remove_dead_empty_fault_logs as remove_dead_empty_fault_logs
from .attempts_index import with_crash_signals as with_crash_signals
from .paths import SweepPaths

log = logging.getLogger("cluster_work")

_json_text = json.encoder.encode_basestring_ascii  # json.dumps's text of a str (its C function, called directly)


class AttemptJournal:
    """This process's journals, one open and locked file per (sweep folder, run). One per process (`journal`):
    a forked child starts with none (it must never write into its parent's files)."""

    def __init__(self) -> None:
        self._files: dict[tuple[str, str], int] = {}
        self._folders: dict[str, tuple[str, str]] = {}  # an experiment's `_config_path` -> its sweep folder, prefix
        self._host = socket.gethostname()
        self._listening = False
        reference = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_in_child(reference))

    def hold(self, sweep_paths: Iterable[str], run_id: str) -> None:
        """Open (and lock) this run's journal in each sweep folder: the run is alive while this process is."""
        for folder in dict.fromkeys(sweep_paths):
            try:
                self._fd(folder, run_id)
            except OSError as exc:  # the journal must never stop a sweep (a full disk is reported by the store)
                log.debug("cannot open the attempts journal: %s", exc)

    def begin(self, segment: Any, saved: int, log_file: str = "") -> None:
        """`segment` (of a stamped run) starts the experiment's code, with `saved` rows on disk and its
        repetition's log at `log_file` (where a native crash leaves its stack)."""
        if segment.run_id:
            folder, prefix = self._sweep_folder(segment.experiment)
            where = ""
            if log_file:
                try:
                    size = os.stat(log_file).st_size
                except OSError:  # not written yet (most repetitions log nothing)
                    size = 0
                relative = log_file[len(prefix):] if log_file.startswith(prefix) else os.path.relpath(log_file, prefix)
                where = f" {size} {_json_text(relative)}"
            name = _json_text(segment.experiment.name)
            self._write(folder, segment.run_id, f"{BEGIN} {time.time():.3f} {segment.rep} {saved} {name}{where}\n")

    def end(self, segment: Any) -> None:
        """The segment that began ended, whatever its outcome."""
        if segment.run_id:
            folder = self._sweep_folder(segment.experiment)[0]
            self._write(folder, segment.run_id,
                        f"{END} {time.time():.3f} {segment.rep} {_json_text(segment.experiment.name)}\n")

    def stopped(self, signum: int) -> None:
        """A stop signal reached this process (called from its handler): whatever it runs was not what ended
        the run. Written at once, since a SIGKILL may follow (mpiexec's, a scheduler's) before the iteration ends."""
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        line = f"{STOP} {time.time():.3f} {name}\n".encode()
        for fd in list(self._files.values()):
            with contextlib.suppress(OSError):
                os.write(fd, line)

    def release(self, run_id: str) -> None:
        """Close this run's journals (their locks go with them): the end of a run in its main process."""
        for key in [key for key in self._files if key[1] == run_id]:
            with contextlib.suppress(OSError):
                os.close(self._files.pop(key))

    def _write(self, folder: str, run_id: str, line: str) -> None:
        try:
            os.write(self._fd(folder, run_id), line.encode())
        except OSError as exc:  # the journal must never stop a sweep (a full disk is reported by the store)
            log.debug("cannot write the attempts journal: %s", exc)

    def _sweep_folder(self, experiment: Any) -> tuple[str, str]:
        """The sweep folder of `experiment`, and it as the prefix of the paths inside it (a separator at its end)."""
        config_path = experiment.config["_config_path"]
        found = self._folders.get(config_path)
        if found is None:
            folder = experiment.sweep_path
            found = self._folders[config_path] = (folder, os.path.join(folder, ""))
        return found

    def _fd(self, folder: str, run_id: str) -> int:
        fd = self._files.get((folder, run_id))
        if fd is not None:
            return fd
        paths = SweepPaths(folder)
        os.makedirs(paths.attempts_folder, exist_ok=True)
        fd = os.open(paths.attempts_file(run_id, self._host, os.getpid()), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a name of its own: nobody else holds it
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.ENOLCK):
                os.close(fd)
                raise
        self._files[folder, run_id] = fd
        if not self._listening:
            stopping.on_stop_signal(self.stopped)
            self._listening = True
        return fd


def _forget_in_child(reference: weakref.ref[AttemptJournal]) -> None:
    journal = reference()
    if journal is not None:
        for fd in journal._files.values():  # the parent's: closing our copy leaves its lock to the parent
            with contextlib.suppress(OSError):
                os.close(fd)
        journal._files = {}


journal = AttemptJournal()  # this process's (like durability.committer); the runner gets it through TaskContext
