"""Two hosts on one machine, for the multi-host tests: Open MPI over TCP between network namespaces.

Each host is a network namespace with its own hostname (a UTS namespace, entered per command), joined to
the other by a veth pair with link-local addresses only (169.254.77.1 and .2/24; IPv6 off, `lo` up).
The file system stays shared, as on a cluster with a shared home. `mpiexec` runs inside the first host;
it starts the second host's daemon through a small rsh agent script (`--mca plm_rsh_agent`), which runs
the remote command with `ip netns exec NS unshare --uts`, and MPI talks TCP on the veth pair only.

Facts this relies on (shared design notes, measured with Open MPI 5.0.11 from PyPI): the agent is called as
`AGENT [options] HOST COMMAND...`; the oversubscribe settings of `conftest.MPI_ENV` would override the
hostfile's placement, so they are left out; with one host's link down for good the launcher ignores
SIGTERM and never exits on its own.

Namespaces are global to the machine and other test sessions build their own: every name here is
`cwtest-<random per session>-<n><a|b>`, and `close` signals only processes inside this object's
namespaces (each of them started by its launches), then deletes them. Needs root, `ip` (iproute2) and
`unshare` (util-linux): `unavailable_reason` says why not.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import launcher_failed_to_start, mpiexec, script_env

from cluster_work.attempts import parse_attempt
from cluster_work.hostfile import hostfile_text
from cluster_work.paths import ATTEMPTS_FOLDER
from cluster_work.repetition_state import read_repetition
from cluster_work.store import find_experiment_folders

NETWORK = "169.254.77.0/24"
DEVICE = "cw0"  # the veth end's name inside each namespace (names there are the namespace's own)
LAUNCH_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # no oversubscribe: see above
OVERSUBSCRIBE = ("OMPI_MCA_rmaps_base_oversubscribe", "PRTE_MCA_rmaps_default_mapping_policy")
SESSION = f"cwtest-{secrets.token_hex(3)}"
_numbers = itertools.count()

AGENT = """\
#!/usr/bin/env bash
# Open MPI's rsh agent for the test hosts: AGENT [options] HOST COMMAND... runs COMMAND on HOST, as ssh would.
while [[ $1 == -* ]]; do shift; done
host=$1; shift
case $host in
{cases}
  *) echo "agent: unknown host $host" >&2; exit 255;;
esac
exec ip netns exec "$ns" unshare --uts bash -c "hostname $name; $*"
"""


@functools.cache
def unavailable_reason() -> str | None:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "two hosts from network namespaces need root"
    for program, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(program) is None:
            return f"{program} not installed (apt-get install {package})"
    version = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True).stdout
    if "Open MPI" not in version and "OpenRTE" not in version:
        return f"the multi-host tests drive Open MPI's launcher, not {version.splitlines()[:1]}"
    return None


@dataclass(frozen=True)
class Host:
    namespace: str
    name: str  # its hostname, as the ranks there see it
    address: str


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class TwoHosts:
    """Two hosts (`first`, where mpiexec runs, and `second`) with a hostfile of `slots` ranks each."""

    def __init__(self, folder: Path, slots: int = 2):
        prefix = f"{SESSION}-{next(_numbers)}"
        self.first, self.second = (Host(f"{prefix}{letter}", f"{prefix}{letter}", f"169.254.77.{number}")
                                   for number, letter in ((1, "a"), (2, "b")))
        self.hosts = (self.first, self.second)
        self.folder = folder
        self.slots = slots
        self._created: list[str] = []
        self._launched: list[subprocess.Popen] = []

    # --- building and removing ---------------------------------------------------------------------

    def open(self) -> TwoHosts:
        """Build both hosts; raise RuntimeError with `ip`'s message where this machine cannot."""
        try:
            for host in self.hosts:
                self._check(_ip("netns", "add", host.namespace))
                self._created.append(host.namespace)
                # link-local IPv4 only: no IPv6 addresses (nor their neighbour discovery) on the link
                self._in(host, "sh", "-c", "for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 "
                         "/proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -e $f ] && echo 1 > $f; done; true")
            self._check(_ip("-n", self.first.namespace, "link", "add", DEVICE, "type", "veth",
                            "peer", "name", DEVICE, "netns", self.second.namespace))
            for host in self.hosts:
                self._check(_ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", DEVICE))
                for device in ("lo", DEVICE):
                    self._check(_ip("-n", host.namespace, "link", "set", device, "up"))
        except BaseException:
            self.close()
            raise
        cases = "\n".join(f"  {h.address}) ns={h.namespace}; name={h.name};;" for h in self.hosts)
        self.agent = self.folder / "rsh_agent"
        self.agent.write_text(AGENT.format(cases=cases))
        self.agent.chmod(0o755)
        return self

    def close(self) -> None:
        """Kill every process inside the two namespaces (all of them started by this object's launches),
        reap the launchers, delete the namespaces. Safe to call twice and after a failed `open`."""
        for host in self.hosts:
            if host.namespace in self._created:
                self.kill(host)
        for process in self._launched:
            process.kill()  # already dead (it lived in the first namespace); reap it
            process.wait(timeout=30)
        survivors = {host.namespace: self.processes(host) for host in self.hosts if host.namespace in self._created}
        for namespace in self._created:
            _ip("netns", "del", namespace)
        self._created.clear()
        survivors = {namespace: pids for namespace, pids in survivors.items() if pids}
        assert not survivors, f"processes outlived SIGKILL for 30 s: {survivors}"

    @staticmethod
    def _check(result: subprocess.CompletedProcess) -> None:
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(result.args)}: {result.stderr.strip()}")

    def _in(self, host: Host, *argv: str) -> None:
        self._check(subprocess.run(["ip", "netns", "exec", host.namespace, *argv], capture_output=True,
                                   text=True, timeout=30))

    # --- what happens to a host --------------------------------------------------------------------

    def processes(self, host: Host) -> list[int]:
        """The live processes inside `host`'s network namespace."""
        listed = _ip("netns", "pids", host.namespace).stdout.split()
        return [int(pid) for pid in listed if pid.isdigit()]

    def kill(self, host: Host, timeout: float = 30) -> None:
        """SIGKILL every process of `host` at once, as a power cut would; return once all have died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # again until none is left: a dying parent may still fork
            pids = self.processes(host)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def cut_link(self, host: Host) -> None:
        """Take `host`'s network link down for good: its processes live on, unreachable."""
        self._check(_ip("-n", host.namespace, "link", "set", DEVICE, "down"))

    # --- launching ---------------------------------------------------------------------------------

    def hostfile(self, hosts: tuple[Host, ...] | None = None) -> Path:
        """An Open MPI hostfile of `hosts` (default: both), written as a Slurm job's would be."""
        hosts = hosts or self.hosts
        path = self.folder / f"hostfile.{len(hosts)}"
        path.write_text(hostfile_text([host.address for host in hosts], [self.slots]))
        return path

    def mpi_command(self, ranks: int, script: str, *args: str, hosts: tuple[Host, ...] | None = None,
                    mpiexec_options: tuple[str, ...] = (), export: tuple[str, ...] = ()) -> list[str]:
        """`mpiexec -hostfile ... python -m mpi4py SCRIPT ARGS -c`, run on the first host (as one logs in
        to a cluster's first node); `export` names environment variables for every rank (`-x`)."""
        launcher = [mpiexec(), "-hostfile", str(self.hostfile(hosts)), "-n", str(ranks),
                    "--mca", "plm_rsh_agent", str(self.agent), "--mca", "btl_tcp_if_include", NETWORK,
                    "--prtemca", "prte_if_include", NETWORK, *itertools.chain(*(("-x", name) for name in export)),
                    *mpiexec_options]
        return [*self.on(self.first), *launcher, sys.executable, "-m", "mpi4py", script, *args, "-c"]

    @staticmethod
    def on(host: Host) -> list[str]:
        """The prefix that runs a command on `host` (its network namespace and hostname)."""
        return ["ip", "netns", "exec", host.namespace, "unshare", "--uts",
                "bash", "-c", 'hostname "$0" && exec "$@"', host.name]

    @staticmethod
    def env(extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {name: value for name, value in script_env().items() if name not in OVERSUBSCRIBE}
        return {**env, **LAUNCH_ENV, **(extra or {})}

    def start(self, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> Launch:
        """Start a command built by `mpi_command`; `close` kills what is left of it. Its output goes to
        files, not pipes: the second host's daemon inherits them and may outlive the launcher."""
        number = len(self._launched)
        stdout, stderr = (self.folder / f"mpiexec-{number}.{name}" for name in ("out", "err"))
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen(command, cwd=cwd, env=self.env(env), stdout=out, stderr=err,
                                       start_new_session=True)
        self._launched.append(process)
        return Launch(process, stdout, stderr)

    def run(self, command: list[str], cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess:
        """Run a command built by `mpi_command` to its end; launch again where Open MPI's launcher failed
        its own start-up (see `conftest.run_mpiexec`)."""
        for _ in range(3):
            launch = self.start(command, cwd, env)
            try:
                launch.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(self.first)
                self.kill(self.second)
                raise AssertionError(f"mpiexec ran past {timeout} s:\n{launch.stdout()}{launch.stderr()}") from None
            result = subprocess.CompletedProcess(command, launch.process.returncode, launch.stdout(), launch.stderr())
            if not launcher_failed_to_start(result):
                break
        return result


@dataclass(frozen=True)
class Launch:
    """A started launcher and the files its output goes to."""

    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def repetition_states(out: Path) -> dict[str, dict]:
    """Each repetition's state, by its folder relative to `out`, as the project reads it (its status's where
    it has one, else what its rows say: one that ran to its end has no status file), with the `host` that
    ran it where known: its status's, else that of the attempts journal of this run that began it
    (`<run>.<host>.<pid>`; a later run folds finished runs' journals into a summary without hosts)."""
    hosts = _journal_hosts(Path(out) / ATTEMPTS_FOLDER)
    states = {}
    for experiment in find_experiment_folders(str(out)):
        config = experiment.read_config() or {}
        for rep in experiment.repetition_numbers():
            store = experiment.repetition(rep)
            status = store.read_status()
            state = status.get("state") or read_repetition(store, config["iterations"], check_lock=False).state.value
            states[os.path.relpath(store.path, out)] = {
                **status, "state": state, "host": status.get("host") or hosts.get((config.get("name"), rep))}
    return states


def _journal_hosts(folder: Path) -> dict[tuple[str, int], str]:
    """(experiment, rep) -> the host whose process began it, from the attempts journals in `folder`."""
    hosts = {}
    for path in sorted(folder.glob("*.*.*")) if folder.is_dir() else ():
        run, rest = path.name.split(".", 1)
        host = rest.rsplit(".", 1)[0]
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, IndexError):
                key, _ = parse_attempt(line, run)
                hosts[key] = host
    return hosts


def wait_until(condition, timeout: float, what: str, interval: float = 0.05):
    """Poll `condition()` until it returns something true (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")
