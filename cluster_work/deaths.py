"""A process that died under its work: the words for how it ended, and the record of the repetition it ran.

A worker that dies natively (a segmentation fault in a C extension, the kernel's OOM killer, `abort()`
in a library, `exit()` called by one) cannot report anything itself. Whoever saw it die (the local pool,
from its exit status; the MPI backend, from a failed rank) records the repetition it was running as
failed here, with the cause in words, so that `-P` and the summary name the culprit.

Only one process writes a repetition at a time: this record takes the repetition's lock first, which the
kernel released when the worker died. If a live process still holds it (a child the experiment forked,
which inherited the lock), nothing is written: the files stay as the worker left them.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from .attempts import lost_attempt_crash
from .compact_store import experiment_store
from .errors import StoreError
from .store import RepetitionBusy, RepetitionStore
from .vocabulary import Outcome, OutcomeKind, Record, Segment

# What a person should think of when a worker dies by these signals (the others: strsignal's words).
_SIGNAL_HINTS = {
    signal.SIGKILL: "out of memory? the kernel's OOM killer sends SIGKILL",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error: a memory-mapped file truncated, or misaligned memory",
    signal.SIGABRT: "aborted: a failed assertion or abort() in native code",
    signal.SIGFPE: "floating point exception: an integer division by zero in native code",
    signal.SIGILL: "illegal instruction: native code built for another CPU?",
}
KEPT_STATUS_FIELDS = ("mean_iteration_time",)  # what the new status keeps of the old (longest-first scheduling)
# How long the lock of a dead process's repetition may outlive the news of its death: ULFM can learn of a rank's
# death from its closed socket before its exit closed its other files, the results file's lock among them.
LOCK_RELEASE_WAIT = 2.0  # s


def describe_death(exitcode: int | None) -> str:
    """How a process ended, from its exit status as `multiprocessing.Process.exitcode` gives it (negative:
    killed by that signal; None: unknown), as words that follow "worker process 123 ..."."""
    if exitcode is None:
        return "died (how is unknown)"
    if exitcode >= 0:
        return f"exited with status {exitcode} without reporting"
    try:
        number = signal.Signals(-exitcode)
    except ValueError:
        return f"killed by signal {-exitcode}"
    hint = _SIGNAL_HINTS.get(number) or (signal.strsignal(number) or "").lower()
    return f"killed by {number.name}" + (f" ({hint})" if hint else "")


def record_lost_segment(segment: Segment, cause: str, sync: bool) -> Outcome:
    """The outcome of `segment`, whose process died under it for `cause` ("worker process 123 killed by
    SIGSEGV (segmentation fault)"): FAILED, with the iteration it was in (the rows it had saved) added to
    the cause, and for a cause that names no signal ("MPI rank 3 on node17 died": ULFM tells no more) the
    one faulthandler wrote into the dead process's fault log during its attempt (the file the attempts journal
    named: the process's, in either layout). Recorded in the repetition's status (state failed, the error, the
    rows saved) only if its lock is free and, in the default layout, its results file exists (a worker that died
    before creating it left nothing to mark; a compact store has no file per repetition)."""
    experiment = segment.experiment
    # the dead attempt's fault log: read for the signal where the cause names none, and for where the stack is
    crash = lost_attempt_crash(experiment.sweep_path, (experiment.name, segment.rep))
    evidence = "" if crash is None or "killed by" in cause else _evidence(crash[0])
    store = experiment_store(experiment.path, experiment.config).repetition(segment.rep)
    outcome = Outcome(segment.index, segment.label, OutcomeKind.FAILED, error=cause)
    if isinstance(store, RepetitionStore) and not store.has_files():
        return outcome
    try:
        writer = _open_released(store)
    except RepetitionBusy:
        outcome.error = f"{cause}; not recorded: a live process still holds the repetition (a child it forked?)"
        return outcome
    except StoreError as exc:
        outcome.error = f"{cause}; not recorded: {exc}"
        return outcome
    try:
        saved = len(writer.read())
        outcome.iterations_done = saved
        outcome.error = f"{cause} {_where(saved, segment.target)}{evidence}"
        previous = store.read_status()
        store.write_status(Record.FAILED, sync=sync, iterations_done=saved, iterations=segment.experiment.iterations,
                           error=outcome.error, **{key: previous[key] for key in KEPT_STATUS_FIELDS if key in previous})
        writer.close(sync=sync)
    except StoreError as exc:
        outcome.error = f"{outcome.error}; not recorded: {exc}"
    finally:
        writer.close(sync=False)  # a no-op after the close above
    with contextlib.suppress(OSError):  # the log with the Python stack faulthandler wrote, else the repetition's
        if crash is not None:
            outcome.log_file = crash[1]
        elif os.path.getsize(store.log_file):
            outcome.log_file = store.log_file
    return outcome


def _open_released(store: Any) -> Any:
    """`store.open_writer()`, tried again for up to LOCK_RELEASE_WAIT while the lock is held: its holder is dead,
    and the kernel drops the lock once the dead process's files are closed; a holder still there after that is
    a live one (a child the experiment forked), and RepetitionBusy is raised."""
    deadline = time.monotonic() + LOCK_RELEASE_WAIT
    while True:
        try:
            return store.open_writer()
        except RepetitionBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _where(saved: int, target: int) -> str:
    """The iteration a segment died in: the first one whose row is not saved (its reset or restore
    included), or after the last one it was to run (in finalize, say)."""
    return f"in iteration {saved}" if saved < target else f"after its last iteration ({saved} saved)"


def _evidence(fatal: str) -> str:
    """"; its log shows SIGSEGV (segmentation fault)": what a dead process's attempt at the repetition left in
    its log (faulthandler's stack of fatal signal `fatal`)."""
    hint = _SIGNAL_HINTS.get(signal.Signals[fatal])
    return f"; its log shows {fatal}" + (f" ({hint})" if hint else "")
