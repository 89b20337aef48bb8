"""A worker rank killed after it finished some of the short jobs it held (a batch from rank 0, whose outcomes a
leader sends together: `backends.mpi_reports`): what it finished is neither lost nor run or counted twice, and
the death costs at most the job it was running. Under ULFM rank 0 goes on, so it must have every finished job's
outcome (none failed in passing, none run again); without ULFM the run ends and a rerun finishes from the files.
Real mpiexec, a rank that really kills itself (`mpi_fault_clients.Dying`)."""
import re
import subprocess
from pathlib import Path

import pytest
from conftest import mpi_command, mpiexec, run_mpiexec

from cluster_work import load_results

CLIENTS = str(Path(__file__).resolve().parent / "mpi_fault_clients.py")
REPS, DYING = 200, 150  # short one-iteration jobs; rep DYING kills the rank that runs it
CONFIG = f"""\
name: d
repetitions: {REPS}
iterations: 1
path: out
store: compact
params: {{"fault": "{DYING}:sigkill", "fault_at": 0}}
"""


def ulfm_or_skip() -> None:
    if "Open MPI" not in subprocess.run([mpiexec(), "--version"], capture_output=True, text=True).stdout:
        pytest.skip("ULFM is tested with Open MPI 5 (mpiexec --with-ft ulfm)")


def command(ulfm: bool) -> list[str]:
    line = mpi_command(3, "Dying", "config.yml", script=CLIENTS)
    return [line[0], "--with-ft", "ulfm", *line[1:]] if ulfm else line


def calls(folder: Path) -> dict[int, int]:
    """How often `iterate` ran for each repetition (all runs together), by repetition."""
    return {int(path.parent.name[4:]): path.stat().st_size for path in (folder / "out").rglob("rep_*/calls")}


def ran_on(folder: Path, rank: int) -> set[int]:
    """The repetitions world rank `rank` began."""
    return {int(path.parent.name[4:]) for path in (folder / "out").rglob(f"rep_*/pid.{rank}")}


def dead_rank(folder: Path) -> int:
    """The rank that died running rep DYING: one (a second one: the job ran again, on another rank)."""
    deaths = sorted(path.name for path in (folder / "out").rglob("fault.*"))
    assert len(deaths) == 1, f"rep {DYING} killed the ranks of {deaths}: it ran again after the first death"
    return int(deaths[0].split(".")[1])


def rows_per_rep(folder: Path) -> dict[int, int]:
    frame = load_results(folder / "out")
    return {int(rep): int(count) for rep, count in frame.groupby("rep").size().items()}


def summary(stderr: str) -> str:
    found = re.search(r"Summary: .*", stderr)
    assert found, stderr
    return found.group(0)


@pytest.mark.slow
def test_under_ulfm_a_worker_killed_in_a_batch_fails_only_its_job_and_no_finished_one_runs_again(tmp_path):
    ulfm_or_skip()
    (tmp_path / "config.yml").write_text(CONFIG)
    result = run_mpiexec(command(ulfm=True), cwd=tmp_path, timeout=180)
    assert result.returncode == 1, result.stderr
    dead = dead_rank(tmp_path)
    assert ran_on(tmp_path, dead) - {DYING}, "the killed rank had finished no job before it died"
    assert f"{REPS - 1} finished, 1 failed" in summary(result.stderr), result.stderr
    failed = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("failed ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed d rep {DYING}: MPI rank {dead}"), result.stderr
    ran = calls(tmp_path)
    assert ran == {rep: 1 for rep in range(REPS)}, ran  # the dead rank's finished jobs were not run again
    rows = rows_per_rep(tmp_path)
    assert rows == {rep: 1 for rep in range(REPS) if rep != DYING}, rows


@pytest.mark.slow
def test_without_ulfm_a_worker_killed_in_a_batch_ends_the_run_and_a_rerun_runs_only_what_was_unfinished(
        tmp_path, monkeypatch):
    (tmp_path / "config.yml").write_text(CONFIG)
    killed = run_mpiexec(command(ulfm=False), cwd=tmp_path, timeout=180)
    assert killed.returncode != 0, killed.stderr
    dead = dead_rank(tmp_path)
    finished_by_dead = ran_on(tmp_path, dead) - {DYING}
    assert finished_by_dead, "the killed rank had finished no job before it died"
    saved = rows_per_rep(tmp_path)
    assert all(saved.get(rep) == 1 for rep in finished_by_dead), saved  # its finished jobs' rows are on disk
    monkeypatch.setenv("CW_NO_FAULT", "1")
    rerun = run_mpiexec(command(ulfm=False), cwd=tmp_path, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    # the rerun runs exactly the jobs without their row, and counts the rest as done before, not again
    assert f"{REPS - len(saved)} finished" in summary(rerun.stderr), rerun.stderr
    ran = calls(tmp_path)
    assert sorted(ran) == list(range(REPS)) and set(ran.values()) <= {1, 2}, ran
    # the death cost the jobs in flight only: the dead rank's, and at most the one the other worker ran when
    # the launcher ended it (it finishes its iteration on the launcher's SIGTERM: in practice none)
    twice = {rep for rep, count in ran.items() if count == 2}
    assert DYING in twice and len(twice - {DYING}) <= 1 and not twice & finished_by_dead, ran
    assert rows_per_rep(tmp_path) == {rep: 1 for rep in range(REPS)}
