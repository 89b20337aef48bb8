"""The README's commands work as written: the quick start, run from a copy of the repository."""
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import MPI_ENV, ROOT, mpiexec, script_env

pytestmark = pytest.mark.processes  # every test here starts real processes


def reference_text() -> str:
    """The README without its tutorial (whose steps `test_tutorial_commands_run_as_printed` runs in order)."""
    before, tutorial = (ROOT / "README.md").read_text().split("## Tutorial:", 1)
    return before + "\n## " + tutorial.split("\n## ", 1)[1]


def readme_commands(prefix: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", reference_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def test_quick_start_commands_run(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    commands = readme_commands("python examples/quickstart.py") + [
        command for command in readme_commands('python -c "import cluster_work') if "quickstart" in command]
    assert len(commands) == 3, commands
    outputs = []
    for command in commands:
        command = command.replace("python ", f"{sys.executable} ", 1)
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=script_env(), capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, command + "\n" + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "6 finished" in outputs[0] and "100%" in outputs[1]
    header, *_, last = outputs[2].strip().splitlines()  # the printed frame shows the result column, and
    assert header.split() == ["experiment", "rep", "iteration", "value"]  # 2 grid points x 3 repetitions x 10
    assert last.split()[0] == "59"  # iterations = 60 rows


def test_example_sweep_command_runs(tmp_path):
    [setup_and_run] = [line for line in readme_commands("python3 -m venv") if "grid_fit" in line]
    run = setup_and_run.split("&& .venv/bin/python ", 1)[1]  # the venv is this one
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    result = subprocess.run([sys.executable, *run.split()], cwd=tmp_path, env=script_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "48 finished, 0 failed" in result.stderr


def tutorial_commands() -> list[str]:
    """The tutorial's commands in order (its section only: the rest of the page is reference)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Tutorial:", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_tutorial_commands_run_as_printed(tmp_path):
    """Each step of the tutorial, run as printed (python: this venv's; mpiexec: the venv's, as root here),
    in a copy of the examples: it stops, resumes without losing what was saved, and ends complete."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    commands = tutorial_commands()
    assert len(commands) == 10, commands
    env = {**script_env(), **MPI_ENV}
    for command in commands:
        words = shlex.split(command)
        if words[0] == "mpiexec":
            words[0] = mpiexec()
        words = [sys.executable if word == "python" else word for word in words]
        result = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        if words[0] == "timeout":  # 124: it was stopped (the sweep saw SIGINT); 0: it ended first
            assert result.returncode in (0, 124), output
            if "to resume" in output:  # the hint never carries -d
                assert "-d" not in shlex.split(output.split("to resume or retry:", 1)[1].splitlines()[0]), output
            continue
        assert result.returncode == 0, command + "\n" + output
        if "--list" in words:
            assert "48" in output or "12" in output, output
        if words[-2:] == ["-n", "2"]:  # the resume: everything ends finished
            assert "0 failed" in output, output
        if "-P" in words:
            assert "finished" in output
    plots = sorted(path.name for path in (tmp_path / "examples/results/grid_fit/plots").iterdir())
    assert len(plots) >= 2, plots
    frame_rows = subprocess.run([sys.executable, "-c", "import cluster_work; "
                                 "print(len(cluster_work.load_results('examples/grid_fit.yml')))"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert frame_rows.stdout.strip() == str(12 * 4 * 30), frame_rows.stderr


def readme_block(language: str, first_line: str) -> str:
    """The README's code block in `language` whose first line is `first_line`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [block] = [block for block in blocks if block.startswith(first_line)]
    return block


@pytest.mark.processes
def test_weighted_ensemble_snippet_runs_as_shown(tmp_path):
    """The weighted-ensemble section's class and config, saved as the files they name and run by the
    command the config's first line gives: a complete program, imports and run() included."""
    (tmp_path / "chain.py").write_text(readme_block("python", "# chain.py"))
    config = readme_block("yaml", "# chain.yml")
    (tmp_path / "chain.yml").write_text(config)
    command = shlex.split(config.splitlines()[0].split(":", 1)[1])
    assert command[:3] == ["python", "chain.py", "chain.yml"]
    result = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=script_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 campaign" in result.stderr, result.stderr
    check = subprocess.run([sys.executable, "-c", "import cluster_work; f = cluster_work.load_results('chain.yml'); "
                            "print(f['iteration'].max())"], cwd=tmp_path, env=script_env(), capture_output=True,
                           text=True, timeout=120)
    assert check.stdout.split()[-1] == "299", check.stdout + check.stderr


def test_override_command_runs_as_printed(tmp_path):
    [command] = [line for line in readme_commands("python examples/grid_fit.py examples/grid_fit.yml") if "=" in line]
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    result = subprocess.run(command.replace("python ", f"{sys.executable} ", 1), shell=True, cwd=tmp_path,
                            env=script_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "48 finished, 0 failed" in result.stderr  # 3 x 2 (the ridge values overridden) x 2 points x 4 reps
    from cluster_work import load_results
    frame = load_results(tmp_path / "examples" / "results" / "grid_fit_short")
    assert set(frame["params.ridge"]) == {0.0, 1.0} and set(frame["params.data.noise"]) == {0.1}
    assert frame["iteration"].max() == 4


def test_sweep_snippet_runs_as_printed(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    [code] = [block for block in blocks if "Sweep(Counter" in block]
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=script_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "exit status 0" in result.stdout and "[120 rows x" in result.stdout


def test_slurm_dry_run_command_prints_the_srun_script(tmp_path):
    [command] = [line for line in readme_commands("python examples/grid_fit.py") if "--dry-run" in line]
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    result = subprocess.run(command.replace("python ", f"{sys.executable} ", 1), shell=True, cwd=tmp_path,
                            env=script_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in ("#SBATCH --ntasks=9", "#SBATCH --gpus-per-task=1", "#SBATCH --mem-per-cpu=8G",
                 "#SBATCH --constraint=a100", "#SBATCH --qos=normal", "#SBATCH --time=04:00:00"):
        assert line in lines, line
    assert any(line.startswith("srun --mpi=pmix ") and "examples/grid_fit.py examples/grid_fit.yml -c" in line
               for line in lines)
    assert not (tmp_path / "examples" / "results").exists()


@pytest.mark.processes
def test_own_policy_snippet_runs_as_shown(tmp_path):
    """The steered-campaign section's policy and config, saved as the files they name beside a copy of the
    examples and run by the command the config's first line gives: the policy's points, and only those."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    (tmp_path / "explore.py").write_text(readme_block("python", "# explore.py"))
    config = readme_block("yaml", "# explore.yml")
    (tmp_path / "explore.yml").write_text(config)
    words = shlex.split(config.splitlines()[0].split(":", 1)[1].split("(")[0])
    assert words[:3] == ["PYTHONPATH=.", "python", "examples/quickstart.py"], words
    result = subprocess.run([sys.executable, *words[2:]], cwd=tmp_path, env={**script_env(), "PYTHONPATH": "."},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "6 experiments (5 added)" in result.stderr, result.stderr
    check = subprocess.run([sys.executable, "-c", "import cluster_work; f = cluster_work.load_results('explore.yml'); "
                            "print(f['experiment'].nunique(), len(f))"], cwd=tmp_path, env=script_env(),
                           capture_output=True, text=True, timeout=120)
    assert check.stdout.split() == ["6", "30"], check.stdout + check.stderr
