"""The exporters a run starts beside itself, one per tracker its config's `export:` blocks name.

Each is `python -m cluster_work export TRACKER CONFIG --beside-run`, a process of its own (its own session:
a Ctrl-C meant for the run does not cut its last pass short), writing its log to
`<path>/.cluster_work_export/<tracker>.log`. It reads nothing from the run but the results files, so it can
neither cost a result nor slow the sweep. The run holds its stdin: when the run ends, however it ends (kill
-9 included), the exporter sees the end of its input, makes a last pass and exits, in the background; the
run does not wait for it. Its failures are warnings: a tracker package that is not installed, an exporter
that ended early (its log says why).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..launch_environment import launch_free
from ..paths import SweepPaths

log = logging.getLogger("cluster_work")


@contextlib.contextmanager
def exporters_beside(config_file: str, documents: Sequence[Mapping[str, Any]], sweep_paths: Sequence[str],
                     ) -> Iterator[None]:
    """Around a run of `config_file` (its loaded `documents`): its exporters, started before and released
    (their stdin closed) after."""
    kinds = sorted({kind for document in documents for kind in (document.get("export") or {})})
    started = []
    for kind in kinds:
        if importlib.util.find_spec(kind) is None:
            log.warning("export.%s: %s is not installed (pip install 'cluster_work[%s]'); not exporting", kind,
                        kind, kind)
            continue
        log_folder = sweep_paths[0] if sweep_paths else os.path.expanduser(os.path.expandvars(documents[0]["path"]))
        started.append(_start(kind, config_file, log_folder))
    try:
        yield
    finally:
        for kind, process, log_file in started:
            if process.poll() is not None:
                log.warning("the %s exporter ended early (status %s); its log: %s. Export with: python -m "
                            "cluster_work export %s %s", kind, process.returncode, log_file, kind, config_file)
                continue
            with contextlib.suppress(OSError):
                if process.stdin is not None:  # (started with a pipe: always)
                    process.stdin.close()
            log.info("the %s exporter makes its last pass in the background (pid %d, log: %s)", kind,
                     process.pid, log_file)


def _start(kind: str, config_file: str, sweep_path: str) -> tuple[str, subprocess.Popen[bytes], str]:
    log_file = SweepPaths(sweep_path).export_log(kind)
    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    environment = launch_free(os.environ)  # no MPI rank's variables: the exporter is no rank of the run
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, environment.get("PYTHONPATH")]))
    with open(log_file, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "cluster_work", "export", kind, os.path.abspath(config_file), "--beside-run"],
            stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT, env=environment,
            start_new_session=True)
    log.debug("started the %s exporter (pid %d)", kind, process.pid)
    return kind, process, log_file
