import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "tests" / "experiments.py")


def script_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(experiment: str, *args: str, cwd: Path, timeout: float = 120, check_rc: int | None = None,
            **popen) -> subprocess.CompletedProcess:
    """Run `tests/experiments.py EXPERIMENT ARGS` as a user would, in `cwd`."""
    result = subprocess.run([sys.executable, SCRIPT, experiment, *args], cwd=cwd, env=script_env(),
                            capture_output=True, text=True, timeout=timeout, **popen)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


@pytest.fixture
def write_config(tmp_path):
    def write(text: str, name: str = "config.yml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path
    return write
