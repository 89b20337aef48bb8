"""Executables as experiments: `python -m cluster_work config.yml` runs each repetition's `command`.

    name: heat
    repetitions: 2
    iterations: 50
    path: results/heat
    command: "./heat_solver --alpha {params.alpha} --seed {seed} --steps {iterations} --resume-from {start}"
    files: {heat.in.template: heat.in}
    params: {alpha: 0.1}
    grid: {alpha: [0.1, 0.2, 0.4]}

`CommandWork` fits a command to the ClusterWork contract, so the runner, every backend and the store are
the ones a Python experiment uses (placeholders and paths: see `command_spec`):

- The command runs once per repetition, in the repetition's folder, started by the first `iterate(n)` with
  `{start}` = n, the first iteration not saved; `files` are filled into that folder just before.
  `restore_state` says a resumed repetition can continue where it stopped exactly when the command (or one
  of its files) takes `{start}`; without it, an unfinished repetition starts over from iteration 0.
- `iterate(n)` reads the command's stdout up to the row of iteration n. A line that parses as a JSON
  object is a row; its iteration is its "iteration" key if it has one (an integer), else one more than the
  row before it (the first row: `{start}`). A row of an iteration before n (the command re-printed saved
  ones) is skipped, so no row is ever saved twice; one after n is an error. Every other line, and stderr,
  is printed: it goes to the repetition's `rep.log` (and the console) as a Python experiment's prints do.
- After the last row the command must exit with status 0. A non-zero exit, a death by a signal, or an exit
  before `iterations` rows fails the repetition; the error ends with the last lines of its stderr.
- `finalize` ends a command that is still running (a stop between iterations, or an error).

The command runs under `command_guard` (a process of its own, see there), so that nothing it starts
outlives the repetition: not on a stop, not when cluster_work is killed with -9, not the ranks of a
command that is itself an MPI launcher. In an MPI group (`-g`), the group's first rank runs the command and
sends each row (or the error) to the others, which wait without spinning.
"""
from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from .command_spec import CommandSpec, SpecError, format_value, param_values
from .errors import InvalidParameterArgument, config_error
from .expansion import ExpandedExperiment
from .experiment import ClusterWork
from .launch_environment import launch_free
from .stopping import stop_requested

log = logging.getLogger("cluster_work")

GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "command_guard.py")
GROUP_TAG = 7301  # the point-to-point tag of rows sent to the members of an MPI group


class CommandError(Exception):
    """The command failed: it exited early or non-zero, or its rows do not fit the iterations."""


class CommandWork(ClusterWork):
    """A repetition is one run of the config's `command`; each JSON-object line it prints is one row."""

    _restore_supported = True
    _TERMINATE_GRACE: ClassVar[float] = 10.0  # seconds from SIGTERM to SIGKILL when a running command is ended
    _STDERR_LINES: ClassVar[int] = 5  # of the command's stderr in a failure's one line

    def __init__(self) -> None:
        super().__init__()
        self._spec: CommandSpec | None = None
        self._rep_seed: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._output: _Output | None = None
        self._argv: list[str] = []
        self._next = 0  # the iteration of the command's next row without an "iteration" key
        self._stderr: collections.deque[str] = collections.deque(maxlen=self._STDERR_LINES)

    @classmethod
    def check_config(cls, expanded: Sequence[ExpandedExperiment], source: str) -> None:
        """Every document's command and files, on its first experiment (a grid, a list and random samples
        change values, not names): unknown placeholders, unreadable templates, a missing relative program."""
        config_dir = os.path.dirname(os.path.abspath(source))
        documents = getattr(expanded, "documents", None)
        firsts = [d[0] for d in documents if len(d)] if documents is not None else list(expanded)
        for experiment in firsts:
            try:
                CommandSpec.of(experiment.config, config_dir).check(experiment.params)
            except SpecError as exc:
                raise config_error(source, str(exc), experiment=experiment.base_name, key=exc.key) from None

    def reset(self, config: dict[str, Any], rep: int) -> None:
        self._end_command()
        self._rep_seed = self._seed  # the repetition's seed: before reset the runner sets it, not an iteration's
        config_dir = os.path.dirname(self._config_file) if self._config_file else os.getcwd()
        try:
            self._spec = CommandSpec.of(config, config_dir)
        except SpecError as exc:
            raise InvalidParameterArgument(f"'{exc.key}': {exc}") from None

    def restore_state(self, config: dict[str, Any], rep: int, n: int) -> bool:
        """The command resumes itself: told `{start}` = n + 1, if it takes `{start}` at all."""
        try:
            return self._spec is not None and self._spec.takes_start()
        except SpecError:
            return False  # an unreadable template: reported when the command starts

    def iterate(self, config: dict[str, Any], rep: int, n: int) -> dict[str, Any] | None:
        comm = self._COMM
        if comm is None or comm.Get_size() == 1:
            return self._row(n)
        return self._row_in_group(comm, n)

    def finalize(self) -> None:
        self._end_command()

    # --- the command's process ----------------------------------------------------------------------

    def _values(self, start: int) -> dict[str, str]:
        assert self._log_path_rep is not None and self._spec is not None
        values = {name: format_value(value) for name, value in param_values(self._params or {}).items()}
        values.update(rep=str(self._rep), seed=str(self._rep_seed), iterations=str(self._iterations),
                      start=str(start), rep_dir=os.path.abspath(self._log_path_rep), experiment=self._name or "",
                      config_dir=self._spec.config_dir)
        return values

    def _start(self, start: int) -> None:
        """Fill the files and start the command (under its guard) in the repetition's folder."""
        assert self._spec is not None and self._log_path_rep is not None
        values = self._values(start)
        try:
            files = self._spec.filled_files(values)
            self._argv = self._spec.argv(values)
        except SpecError as exc:
            raise InvalidParameterArgument(f"'{exc.key}': {exc}") from None
        except KeyError as exc:
            raise InvalidParameterArgument(f"unknown placeholder {{{exc.args[0]}}} in 'command' or 'files'") from None
        for target, text in files:
            path = os.path.join(self._log_path_rep, target)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        environment = launch_free(os.environ)
        environment.setdefault("PYTHONUNBUFFERED", "1")  # a Python command's rows arrive as it prints them
        log.debug("%s rep %s: starting %s", self._name, self._rep, shlex.join(self._argv))
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", GUARD, str(os.getpid()), str(self._TERMINATE_GRACE), *self._argv],
            cwd=self._log_path_rep, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)  # no Ctrl-C from the terminal: cluster_work decides
        self._output = _Output(self._process)
        self._next = start
        self._stderr.clear()

    def _row(self, n: int) -> dict[str, Any]:
        """The row of iteration n, read from the command's output (starting the command if needed)."""
        if self._process is None:
            self._start(n)
        assert self._output is not None
        while True:
            item = self._output.next_line()
            if item is None:
                raise CommandError(self._failure(self._wait(), f"before the row of iteration {n}"))
            row = self._take(*item)
            if row is None:
                continue
            number = _number(row, self._next)
            self._next = number + 1
            if number < n:  # saved already: re-printed by a command that resumed before {start}
                continue
            if number > n:
                raise CommandError(f"the command printed the row of iteration {number} where iteration {n} "
                                   "was next" + self._command_line())
            row.pop("iteration", None)
            if n == (self._iterations or 0) - 1:
                self._finish()
            return row

    def _take(self, stream: str, line: str) -> dict[str, Any] | None:
        """A stdout line that is a JSON object is a row; everything else is printed (to rep.log)."""
        if stream == "stderr":
            self._stderr.append(line)
            print(line, file=sys.stderr)
            return None
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict):
                return row
        print(line)
        return None

    def _finish(self) -> None:
        """After the last row: the rest of the output, then the exit status, which must be 0."""
        assert self._output is not None
        extra = 0
        for stream, line in iter(self._output.next_line, None):
            extra += self._take(stream, line) is not None
        if extra:
            log.warning("%s rep %s: ignored %d rows the command printed after its last iteration",
                        self._name, self._rep, extra)
        status = self._wait()
        if status != 0:
            raise CommandError(self._failure(status, "after its last row"))

    def _wait(self) -> int:
        assert self._process is not None
        status = self._process.wait()
        self._close()
        return status

    def _failure(self, status: int, when: str) -> str:
        """One line for the summary (how it ended, the end of its stderr); the command line below it."""
        if status < 0:
            stopping = " (the run was stopping)" if stop_requested() else ""  # a signal meant for all of the job
            how = f"was killed by {signal.Signals(-status).name} {when}{stopping}"
        elif status == 0:
            how = f"exited with status 0 {when}, short of its {self._iterations} iterations"
        else:
            how = f"exited with status {status} {when}"
        tail = " | ".join(line.strip()[:300] for line in self._stderr if line.strip())
        return f"the command {how}" + (f"; its stderr ended: {tail}" if tail else "; its stderr was empty") \
            + self._command_line()

    def _command_line(self) -> str:
        return f"\ncommand: {shlex.join(self._argv)}\nin: {self._log_path_rep}"

    def _end_command(self) -> None:
        """End a command still running: SIGTERM to its guard, which ends everything below it (SIGKILL after
        the grace period); its remaining output is printed; its pipes are closed."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self._TERMINATE_GRACE + 5.0)
            except subprocess.TimeoutExpired:  # the guard itself hangs: the last resort
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        output = self._output
        if output is not None:
            deadline = time.monotonic() + 1.0  # what is left in the pipes; a leftover writer must not block us
            for stream, line in iter(lambda: output.next_line(deadline), None):
                if stream == "stderr" or not line.lstrip().startswith("{"):
                    self._take(stream, line)
        self._close()

    def _close(self) -> None:
        if self._output is not None:
            self._output.close()
        self._process, self._output = None, None

    # --- MPI groups -----------------------------------------------------------------------------------

    def _row_in_group(self, comm: Any, n: int) -> dict[str, Any] | None:
        """The group's first rank runs the command; each row, or the error, goes to every rank, so that they
        all return or raise together (the runner's collectives need that)."""
        from .backends.mpi_messages import wait_for_message

        if comm.Get_rank() == 0:
            error: Exception | None = None
            try:
                outcome: tuple[str, Any] = ("row", self._row(n))
            except Exception as exc:
                error = exc
                outcome = ("parameter" if isinstance(exc, InvalidParameterArgument) else "error", str(exc))
            for member in range(1, comm.Get_size()):
                comm.send(outcome, dest=member, tag=GROUP_TAG)
            if error is not None:
                raise error
        else:
            wait_for_message(comm, 0, GROUP_TAG)
            outcome = comm.recv(source=0, tag=GROUP_TAG)
        kind, value = outcome
        if kind == "parameter":
            raise InvalidParameterArgument(value)
        if kind == "error":
            raise CommandError(value)
        return dict(value)


def _number(row: dict[str, Any], next_number: int) -> int:
    """A row's iteration: its "iteration" key, or the one after the row before it."""
    if "iteration" not in row:
        return next_number
    number = row["iteration"]
    if isinstance(number, bool) or not isinstance(number, int):
        raise CommandError(f"a row's \"iteration\" must be an integer, got {number!r}")
    return number


class _Output:
    """The command's stdout and stderr, line by line as they arrive, in one thread (a selector): no reader
    thread that could write into the repetition's log after it ended."""

    def __init__(self, process: subprocess.Popen[bytes]):
        self._selector = selectors.DefaultSelector()
        self._streams = [process.stdout, process.stderr]
        for stream, name in zip(self._streams, ("stdout", "stderr")):
            assert stream is not None
            self._selector.register(stream.fileno(), selectors.EVENT_READ, name)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._lines: collections.deque[tuple[str, str]] = collections.deque()

    def next_line(self, deadline: float | None = None) -> tuple[str, str] | None:
        """(stream, line) of the next line; None once both streams ended (or at `deadline`)."""
        while not self._lines:
            if not self._selector.get_map():
                return None
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = self._selector.select(timeout)
            if not events and deadline is not None and time.monotonic() >= deadline:
                return None
            for key, _ in events:
                data = os.read(key.fd, 1 << 16)
                if data:
                    *lines, self._partial[key.data] = (self._partial[key.data] + data).split(b"\n")
                else:
                    self._selector.unregister(key.fd)
                    lines, self._partial[key.data] = [self._partial[key.data]] if self._partial[key.data] else [], b""
                self._lines.extend((key.data, line.decode("utf-8", "replace").rstrip("\r")) for line in lines)
        return self._lines.popleft()

    def close(self) -> None:
        self._selector.close()
        for stream in self._streams:
            if stream is not None:
                stream.close()
