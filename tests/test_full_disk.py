"""A results folder on a tiny tmpfs that fills up mid-sweep: one clear line, exit 3, then a clean resume."""
import shutil
import subprocess
import uuid

import pytest
from conftest import run_cli
from kills import assert_every_file_readable

from cluster_work import load_results

pytestmark = pytest.mark.processes  # every test here starts real processes

CONFIG = """\
name: walk
repetitions: 4
iterations: 40
path: {path}
params: {{step: 1.0, payload: {payload}}}
"""


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", f"cw{uuid.uuid4().hex[:6]}",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_full_disk_stops_with_one_line_and_the_sweep_completes_after(small_disk, tmp_path, workers):
    import pandas as pd
    payload = "x" * 300  # makes every row ~0.4 kB: 4 x 40 rows do not fit in 64 kB
    (tmp_path / "config.yml").write_text(CONFIG.format(path=small_disk / "out", payload=f"'{payload}'"))
    result = run_cli("Payload", "config.yml", "-n", workers, cwd=tmp_path, check_rc=3)
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert "Free space" in result.stderr
    assert_every_file_readable(small_disk / "out")
    saved = load_results(small_disk / "out")
    assert 0 < len(saved) < 160

    # "free space": move the sweep to a roomy folder and run the same command
    roomy = tmp_path / "roomy"
    shutil.copytree(small_disk / "out", roomy)
    (tmp_path / "config.yml").write_text(CONFIG.format(path=roomy, payload=f"'{payload}'"))
    run_cli("Payload", "config.yml", "-n", workers, cwd=tmp_path, check_rc=0)
    clean = tmp_path / "clean"
    (tmp_path / "clean.yml").write_text(CONFIG.format(path=clean, payload=f"'{payload}'"))
    run_cli("Payload", "clean.yml", cwd=tmp_path, check_rc=0)
    columns = ["experiment", "rep", "iteration", "value"]
    order = ["rep", "iteration"]
    resumed = load_results(roomy)[columns].sort_values(order).reset_index(drop=True)
    expected = load_results(clean)[columns].sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed, expected)


def test_read_only_disk_stops_with_one_line_and_resumes_when_writable(small_disk, tmp_path):
    small = CONFIG.replace("repetitions: 4", "repetitions: 2").replace("iterations: 40", "iterations: 3")
    (tmp_path / "config.yml").write_text(small.format(path=small_disk / "out", payload="''"))
    run_cli("Payload", "config.yml", "-j", "0", cwd=tmp_path, check_rc=0)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        result = run_cli("Payload", "config.yml", cwd=tmp_path, check_rc=3)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert "Read-only file system" in result.stderr and "Traceback" not in result.stderr
    run_cli("Payload", "config.yml", cwd=tmp_path, check_rc=0)
    assert len(load_results(small_disk / "out")) == 2 * 3
