"""PlotWork in a real notebook (nbclient + ipykernel) and from plain Python."""
import base64
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import ROOT, run_cli
from nbclient import NotebookClient

import plotwork
from cluster_work import load_results, summary

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 5
path: out
---
name: walk
grid: {step: [1.0, 2.0]}
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "config.yml").write_text(CONFIG)
    run_cli("Deterministic", "config.yml", cwd=folder, check_rc=0)
    return folder


def run_notebook(folder: Path, cells: list[str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    client.execute()
    return notebook


def text_of(cell) -> str:
    parts = []
    for output in cell.outputs:
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def pngs_of(cell) -> list[bytes]:
    return [base64.b64decode(o["data"]["image/png"]) for o in cell.outputs if "image/png" in o.get("data", {})]


def test_magics_in_a_real_notebook(sweep):
    frame = load_results(sweep / "out")
    best = frame.loc[frame.value.idxmax()]
    notebook = run_notebook(sweep, [
        "%load_ext plotwork",
        "%set_experiment_class experiments.Deterministic",
        "%load_experiment config.yml -e walk -f step=2.0",
        "print(len(results), sorted(results.experiment.unique()))",
        "%load_experiment config.yml",
        "%print_results value",
        "%plot_results mean_2std value",
        "%plot_results param_sweep value --save_figures --prefix nb_ --folder figs",
        "%plot_results best_n value -i -o n=2",
        "%print_best_iterations value",
        "%restore_best_experiment_state value",
        "print(experiment._name, experiment._rep, experiment.value)",
        "%restore_experiment_state -e walk__s1.0 -r 1 -i 2 -o early",
        "print(early.value)",
        "%print_progress",
    ])
    cells = notebook.cells
    assert text_of(cells[3]).strip() == "15 ['walk__s2.0']"  # -f filters by params
    table = text_of(cells[5])
    final = frame[frame.iteration == frame.iteration.max()]  # every repetition saved all 5 iterations
    for name in frame.experiment.unique():
        values = list(final[final.experiment == name].value)
        assert name in table and f"{sum(values) / len(values):.6f}"[:6] in table  # the mean, computed apart
    for index in (6, 7):
        assert pngs_of(cells[index]) and pngs_of(cells[index])[0].startswith(b"\x89PNG")
    assert len(pngs_of(cells[8])) == 2  # -i: one figure per expanded experiment
    assert "saved figs/nb_" in text_of(cells[7])
    assert list((sweep / "figs").glob("nb_*.png"))
    assert f"{best.value:.4f}"[:5] in text_of(cells[9])
    assert text_of(cells[11]).split() == [best.experiment, str(best.rep), repr(float(best.value))]
    early = frame[(frame.experiment == "walk__s1.0") & (frame.rep == 1) & (frame.iteration == 2)].value.item()
    assert float(text_of(cells[13])) == pytest.approx(early)
    assert "100%" in text_of(cells[14])


def test_plot_functions_without_ipython(sweep):
    frame = load_results(sweep / "out")
    figure = plotwork.plot_results(frame, "mean_2std", "value")
    assert len(figure.axes[0].lines) == 2
    figure = plotwork.plot_results(frame, "param_sweep", "value", param="step")
    assert figure.axes[0].get_xlabel() == "step"
    with pytest.raises(KeyError, match="unknown plotter 'nope'"):
        plotwork.plot_results(frame, "nope", "value")

    @plotwork.register_plotter("final_hist")
    def final_hist(frame, column, ax, **options):
        ax.hist(frame.groupby(["experiment", "rep"])[column].last())

    figure = plotwork.plot_results(frame, "final_hist", "value")
    assert figure.axes[0].patches


def test_best_iterations_and_summary(sweep):
    frame = load_results(sweep / "out")
    best = plotwork.best_iterations(frame, "value")
    assert len(best) == 6 and best.value.is_monotonic_decreasing
    table = summary(frame, "value", mode="min")
    assert list(table.columns) == ["repetitions", "iteration", "mean", "std", "best", "worst"]
    assert (table.iteration == 4).all() and (table.best <= table.worst).all()


def test_plot_command_writes_png_files(sweep):
    result = run_cli("Deterministic", "config.yml", "--plot", "value", "--plotter", "param_sweep", cwd=sweep,
                     check_rc=0)
    [path] = result.stdout.split()
    assert Path(sweep / path).read_bytes().startswith(b"\x89PNG")
    result = run_cli("Deterministic", "config.yml", "--plot", "nope", cwd=sweep, check_rc=2)
    assert "no result column nope" in result.stderr


def test_a_sweep_being_written_loads_as_a_consistent_prefix(sweep, tmp_path):
    import shutil
    copy = tmp_path / "out"
    shutil.copytree(sweep / "out", copy)
    results = copy / "walk" / "s1.0" / "log" / "rep_00" / "results.jsonl"
    with open(results, "ab") as handle:
        handle.write(b'{"iteration":5,"value":')  # a writer in the middle of a row
    frame = load_results(copy)
    assert len(frame) == 30
    pd.testing.assert_series_equal(frame.groupby(["experiment", "rep"]).size().reset_index(drop=True),
                                   pd.Series([5] * 6))


def test_example_notebook_analyses_the_example_sweep(tmp_path):
    import shutil
    import subprocess
    import sys

    from conftest import script_env
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    subprocess.run([sys.executable, "examples/grid_fit.py", "examples/grid_fit.yml", "-n", "2"], cwd=tmp_path,
                   env=script_env(), check=True, capture_output=True, timeout=300)
    notebook = nbformat.read(tmp_path / "examples" / "analysis.ipynb", as_version=4)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "examples")}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "loaded 1440 rows of 12 experiments" in text_of(code[0])
    assert pngs_of(code[3]) and ("Figure" in text_of(code[4]) or pngs_of(code[4]))
    assert "weights of the best model" in text_of(code[6])
