"""Reading the attempts journals (see `attempts`, which writes them): their lines, what they say of each
repetition (`read_index`: the trailing unclosed attempts of the suspected ones, for `quarantine`), their
compaction at a run's start (`compact`), and the evidence of how a lost attempt died (`lost_attempt_crash`).

Reading stays cheap because of the writers' invariants (`attempts`): only a dead journal's last complete line
can be an unclosed begin, so a dead run's journals are read by their tails (TAIL_BYTES), and whole files only
where some repetition is suspected; a torn last line is ignored.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import StoreError
from .files import atomic_write, is_locked
from .paths import FAULT_LOG_PREFIX, SweepPaths, attempts_run
from .provenance import ended_runs
from .quarantine import Attempt, Key, crash_signal, mark_innocents, trailing

log = logging.getLogger("cluster_work")

BEGIN, END, STOP = "begin", "end", "stop"  # the kinds of the journals' lines (`attempts` writes them)
TAIL_BYTES = 4096  # of a dead journal: enough for its last line (names and paths are short)
FAULT_LOG_GRACE = 10.0  # s: an empty fault log younger than this may be a live process's, not yet locked
LOG_TAIL_BYTES = 16384  # of an attempt's part of its log: where faulthandler's stack of a crash ends it
_DECODER = json.JSONDecoder()


@dataclass
class AttemptIndex:
    """What a sweep folder's journals say: each suspected repetition's trailing unclosed attempts (see
    quarantine.trailing); the journal files of finished runs it read (for `compact`); and whether a live process
    holds a journal (`held`). Where none does, no live process holds a repetition of the sweep: a run's main
    process holds its journal (`AttemptJournal.hold`) before its first job and until its last one ended, and a
    worker that outlives it (a stalled host's) holds its own from its first `begin` on."""

    suspects: dict[Key, tuple[Attempt, ...]] = field(default_factory=dict)
    finished_files: list[str] = field(default_factory=list)
    held: bool = True  # whether a live process holds one of the journals (True where not read: unknown)

    def of(self, name: str, rep: int) -> tuple[Attempt, ...]:
        return self.suspects.get((name, rep), ())


def read_index(sweep_path: str) -> AttemptIndex:
    """Read the journals of `sweep_path` (only what can matter: the tail of each dead run's journals, and
    whole files only when some repetition is suspected). Writes nothing."""
    paths = SweepPaths(sweep_path)
    runs: dict[str, list[str]] = {}
    for run, path in journal_files(sweep_path):
        runs.setdefault(run, []).append(path)
    ended = ended_runs(sweep_path) if runs else set()
    alive = {run for run, files in runs.items() if run not in ended and any(is_locked(path) for path in files)}
    held = bool(alive) or any(is_locked(path) for run in ended & runs.keys() for path in runs[run])
    unclosed: dict[Key, list[Attempt]] = {}
    for key, attempt in _summary(paths.attempts_summary):
        unclosed.setdefault(key, []).append(attempt)
    for run, files in runs.items():
        if run in alive or run in ended:
            continue
        for path in files:
            found = last_open_attempt(path, run)
            if found is not None:
                unclosed.setdefault(found[0], []).append(found[1])
    finished = [path for run, files in runs.items() if run not in alive for path in files]
    if not unclosed:
        return AttemptIndex({}, finished, held)
    closed = _closing_attempts(finished, unclosed)
    suspects = {key: kept for key, attempts in unclosed.items() if (kept := trailing(attempts, closed.get(key, ())))}
    suspects = with_crash_signals(sweep_path, suspects)
    crashed: dict[str, set[Key]] = {}
    for key, attempts in suspects.items():
        for attempt in attempts:
            if attempt.signal is not None:
                crashed.setdefault(attempt.run, set()).add(key)
    return AttemptIndex(mark_innocents(suspects, crashed), finished, held)


def journal_files(sweep_path: str) -> Iterator[tuple[str, str]]:
    """(run, path) of every attempts journal of `sweep_path`, in the order of their names (none without its
    attempts folder)."""
    folder = SweepPaths(sweep_path).attempts_folder
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        run = attempts_run(name)
        if run is not None:
            yield run, os.path.join(folder, name)


def with_crash_signals(sweep_path: str, suspects: dict[Key, tuple[Attempt, ...]]) -> dict[Key, tuple[Attempt, ...]]:
    """`suspects` with each attempt's `signal`: the fatal signal its log names as written during it (a faulthandler
    stack after the bytes the log held when that attempt began, and before those it held when the repetition's
    next attempt that names the same log began): the evidence that explains its run's death."""
    found: dict[Key, tuple[Attempt, ...]] = {}
    for key, attempts in suspects.items():
        marked = []
        for attempt in attempts:
            signal_name = None
            if attempt.log_offset >= 0 and attempt.log:  # else an older journal's: no evidence
                later = [a.log_offset for a in attempts if a.log == attempt.log and a.log_offset > attempt.log_offset]
                signal_name = crash_signal(_log_part(os.path.join(sweep_path, attempt.log), attempt.log_offset,
                                                     min(later, default=None)))
            marked.append(dataclasses.replace(attempt, signal=signal_name) if signal_name else attempt)
        found[key] = tuple(marked)
    return found


def _log_part(path: str, start: int, stop: int | None) -> str:
    """The end (LOG_TAIL_BYTES at most) of bytes start..stop (the end of the file if None) of a log."""
    try:
        with open(path, "rb") as handle:
            stop = handle.seek(0, os.SEEK_END) if stop is None else stop
            handle.seek(max(start, stop - LOG_TAIL_BYTES))
            return handle.read(max(0, stop - handle.tell())).decode("utf-8", "replace")
    except OSError:
        return ""


def parse(line: str) -> tuple[str, float, Key | None, int]:
    """(kind, time, key, rows saved) of one complete journal line; ValueError for anything else."""
    kind, when, rest = line.rstrip("\n").split(" ", 2)
    if kind == STOP:
        return kind, float(when), None, 0
    if kind == BEGIN:
        key, saved, _, _ = _begin_fields(rest)
        return kind, float(when), key, saved
    if kind == END:
        rep, name = rest.split(" ", 1)
        return kind, float(when), (json.loads(name), int(rep)), 0
    raise ValueError(kind)


def parse_attempt(line: str, run: str) -> tuple[Key, Attempt]:
    """The repetition and attempt of one complete begin line of run `run`; ValueError for anything else."""
    kind, when, rest = line.rstrip("\n").split(" ", 2)
    if kind != BEGIN:
        raise ValueError(kind)
    key, saved, log_offset, log_file = _begin_fields(rest)
    return key, Attempt(run, float(when), saved, log_file, log_offset)


def _begin_fields(rest: str) -> tuple[Key, int, int, str]:
    """(key, rows saved, log size, log) after a begin's time; the last two (-1, '') in older lines."""
    rep, saved, text = rest.split(" ", 2)
    name, at = _DECODER.raw_decode(text)
    log_offset, log_file = -1, ""
    if at < len(text):  # ' <log size> <log>', and nothing after it (a torn line joined to the next is not)
        offset_text, log_text = text[at + 1:].split(" ", 1)
        log_file, end = _DECODER.raw_decode(log_text)
        if text[at] != " " or end != len(log_text) or not isinstance(log_file, str):
            raise ValueError(text)
        log_offset = int(offset_text)
    if not isinstance(name, str):
        raise ValueError(text)
    return (name, int(rep)), int(saved), log_offset, log_file


def complete_lines(data: bytes) -> list[str]:
    """The whole lines of `data` (a torn last line, without its newline, left out)."""
    return data[:data.rfind(b"\n") + 1].decode("utf-8", "replace").splitlines()


def last_open_attempt(path: str, run: str) -> tuple[Key, Attempt] | None:
    """The attempt a dead journal left open: its last complete line, if that is a begin."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            lines = complete_lines(handle.read())
    except OSError:
        return None
    for line in reversed(lines[1:] if size > TAIL_BYTES else lines):
        try:
            if line.startswith(f"{BEGIN} "):
                return parse_attempt(line, run)
            parse(line)  # an end or a stop: the last begin was closed
            return None
        except ValueError:
            continue  # a line torn by a power loss, then appended to
    return None


def _closing_attempts(files: Iterable[str], unclosed: dict[Key, list[Attempt]]) -> dict[Key, list[tuple[str, float]]]:
    """For the suspected repetitions: each of their closed attempts' run and begin time (every begin in a
    finished run's journal that is not one of the unclosed ones)."""
    open_ones = {(key, attempt.run, attempt.began) for key, attempts in unclosed.items() for attempt in attempts}
    wanted = {json.dumps(name) for name, _ in unclosed}
    closed: dict[Key, list[tuple[str, float]]] = {}
    for path in files:
        run = attempts_run(os.path.basename(path)) or ""
        for line in _lines(path):
            parts = line.split(" ", 4)
            if parts[0] != BEGIN or len(parts) < 5 or not any(map(parts[4].startswith, wanted)):
                continue
            try:
                kind, began, key, _ = parse(line)
            except ValueError:
                continue
            if key is not None and key in unclosed and (key, run, began) not in open_ones:
                closed.setdefault(key, []).append((run, began))
    return closed


def _lines(path: str) -> Iterator[str]:
    try:
        with open(path, "rb") as handle:
            yield from complete_lines(handle.read())
    except OSError:
        return


def _summary(path: str) -> Iterator[tuple[Key, Attempt]]:
    """The unclosed attempts a compaction kept (one JSON object a line)."""
    for line in _lines(path):
        try:
            record = json.loads(line)
            yield (record["name"], int(record["rep"])), Attempt(
                str(record["run"]), float(record["began"]), int(record["saved"]), str(record.get("log", "")),
                int(record.get("log_offset", -1)))
        except (ValueError, KeyError, TypeError):
            continue


def compact(sweep_path: str, forget: frozenset[str] = frozenset()) -> None:
    """Fold the journals of finished runs into the summary and remove them, leaving out the experiments
    named in `forget` (-d/-o deleted them: their attempts no longer say anything). At a run's start; one
    compaction at a time, skipped while another runs, reading under its lock. Safe to repeat after a kill:
    the summary is replaced atomically before any journal goes, and an attempt read twice is kept once."""
    paths = SweepPaths(sweep_path)
    if not os.path.isdir(paths.attempts_folder):
        return
    try:
        lock = os.open(paths.attempts_lock, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        remove_dead_empty_fault_logs(paths.attempts_folder)
        index = read_index(sweep_path)
        forgotten = [key for key in index.suspects if key[0] in forget]
        if not index.finished_files and not forgotten:
            return
        kept = {(key, attempt) for key, attempts in index.suspects.items() if key[0] not in forget
                for attempt in attempts}
        text = "".join(json.dumps({"name": key[0], "rep": key[1], "run": a.run, "began": a.began, "saved": a.saved,
                                   "log": a.log, "log_offset": a.log_offset})
                       + "\n" for key, a in sorted(kept, key=lambda item: (item[1].began, item[0])))
        atomic_write(paths.attempts_summary, text.encode())
        for path in index.finished_files:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    except (OSError, StoreError) as exc:  # busy (another run compacts), a full disk: the journals stay
        log.debug("attempts journals not compacted: %s", exc)
    finally:
        os.close(lock)


def remove_dead_empty_fault_logs(folder: str) -> None:
    """Remove the empty fault logs (`paths.fault_log_name`) in `folder` whose processes are dead (their lock is
    free, and it is older than a process's start: one made just now may not be locked yet): those of processes
    killed, or ended with their MPI job, without a crash. One with a stack stays."""
    try:
        names = [name for name in os.listdir(folder) if name.startswith(FAULT_LOG_PREFIX) and name.endswith(".log")]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            found = os.lstat(path)
            if (stat.S_ISREG(found.st_mode) and found.st_size == 0 and time.time() - found.st_mtime > FAULT_LOG_GRACE
                    and not is_locked(path)):
                os.remove(path)


def lost_attempt_signal(sweep_path: str, key: Key) -> str | None:
    """The fatal signal (faulthandler's words in the log, e.g. "SIGSEGV") of the last attempt of `key` that a
    dead process left open, if its part of the log names one: how a rank that ULFM only reports as gone
    died. None without such an attempt, or without evidence. Reads only journal tails and one log part."""
    crash = lost_attempt_crash(sweep_path, key)
    return crash[0] if crash is not None else None


def lost_attempt_crash(sweep_path: str, key: Key) -> tuple[str, str] | None:
    """(the fatal signal, the log that names it) of `lost_attempt_signal`'s attempt, None without one: the log
    is the repetition's rep.log, or in a compact store its dead process's fault log."""
    found = []
    for run, path in journal_files(sweep_path):
        if is_locked(path):  # a live process's journal: not the dead one
            continue
        attempt = last_open_attempt(path, run)
        if attempt is not None and attempt[0] == key and attempt[1].log_offset >= 0 and attempt[1].log:
            found.append(attempt[1])
    if not found:
        return None
    last = max(found, key=lambda attempt: attempt.began)
    log_path = os.path.join(sweep_path, last.log)
    fatal = crash_signal(_log_part(log_path, last.log_offset, None))
    return (fatal, os.path.normpath(log_path)) if fatal is not None else None
