"""The README's commands work as written: the quick start, run from a copy of the repository."""
import re
import shutil
import subprocess
import sys

from conftest import ROOT, script_env


def readme_commands(prefix: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(prefix)]


def test_quick_start_commands_run(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    commands = readme_commands("python examples/quickstart.py") + readme_commands('python -c "import cluster_work')
    assert len(commands) == 3, commands
    outputs = []
    for command in commands:
        command = command.replace("python ", f"{sys.executable} ", 1)
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=script_env(), capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, command + "\n" + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "6 finished" in outputs[0] and "100%" in outputs[1]
    assert "[60 rows x" in outputs[2]  # load_results: 2 grid points x 3 repetitions x 10 iterations


def test_example_sweep_command_runs(tmp_path):
    [setup_and_run] = [line for line in readme_commands("python3 -m venv") if "grid_fit" in line]
    run = setup_and_run.split("&& .venv/bin/python ", 1)[1]  # the venv is this one
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    result = subprocess.run([sys.executable, *run.split()], cwd=tmp_path, env=script_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "48 finished, 0 failed" in result.stderr


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
