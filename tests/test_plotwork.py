"""PlotWork in a real notebook (nbclient + ipykernel) and from plain Python."""
import json
import statistics
from pathlib import Path

import pytest
from conftest import ROOT, requires, run_cli
from notebook_helpers import execute, pngs_of, run_notebook, text_of
from repetition_files import is_status, repetition_file

from cluster_work import load_results, summary

pytestmark = requires("matplotlib")  # PlotWork draws with it (the plot extra)
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


def saved_repetitions(out: Path) -> dict[str, list[list[dict]]]:
    """Per expanded experiment (`<base>__<params part>`, named after its folder) the rows of each repetition,
    read from the repetitions' files with plain json: the figures are computed here without cluster_work."""
    found: dict[str, list[list[dict]]] = {}
    for path in sorted(out.glob("*/*/log/rep_*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if not is_status(line)]
        found.setdefault(f"{path.parts[-4]}__{path.parts[-3]}", []).append(rows)
    return found


def expected_summary(out: Path, column: str, mode: str = "max") -> list[list]:
    """What `summary` must give, row by row in its order (by mean, best first): the experiment, the number
    of repetitions, the last iteration and the mean, std, best and worst of `column` at each one's last row."""
    best, worst = (max, min) if mode == "max" else (min, max)
    table = []
    for name, repetitions in saved_repetitions(out).items():
        values = [rows[-1][column] for rows in repetitions]
        table.append([name, len(values), max(rows[-1]["iteration"] for rows in repetitions),
                      statistics.mean(values), statistics.stdev(values), best(values), worst(values)])
    return sorted(table, key=lambda row: row[3], reverse=mode == "max")


def assert_shows(text: str, expected: list[list]) -> None:
    """`text`, a printed table (wrapped into blocks or not), shows exactly the rows of `expected`, in order."""
    shown: dict[str, list[float]] = {}
    for line in text.splitlines():
        words = line.replace("\\", " ").split()
        if words and words[0] in {row[0] for row in expected}:
            shown.setdefault(words[0], []).extend(map(float, words[1:]))
    assert list(shown) == [row[0] for row in expected], text
    for name, *figures in expected:
        assert shown[name] == pytest.approx(figures, rel=1e-5, abs=1e-6), (name, text)


@pytest.mark.processes
@requires("nbclient", "nbformat", "ipykernel", "IPython")
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
    # ...the configs too: both counts describe the same experiments
    assert text_of(cells[2]).strip() == "loaded 15 rows of 1 experiments into `results`; 1 configs into `experiments`"
    assert text_of(cells[5]).startswith("value:")
    assert_shows(text_of(cells[5]), expected_summary(sweep / "out", "value"))
    for index in (6, 7):
        [png] = pngs_of(cells[index])
        assert png.startswith(b"\x89PNG")
    assert len(pngs_of(cells[8])) == 2  # -i: one figure per expanded experiment
    assert "saved figs/nb_" in text_of(cells[7])
    assert list((sweep / "figs").glob("nb_*.png"))
    assert f"{best.value:.4f}"[:5] in text_of(cells[9])
    assert text_of(cells[11]).split() == [best.experiment, str(best.rep), repr(float(best.value))]
    early = frame[(frame.experiment == "walk__s1.0") & (frame.rep == 1) & (frame.iteration == 2)].value.item()
    assert float(text_of(cells[13])) == pytest.approx(early)
    assert "100%" in text_of(cells[14])


@pytest.mark.processes
def test_plot_functions_without_ipython(sweep):
    import plotwork
    frame = load_results(sweep / "out")
    figure = plotwork.plot_results(frame, "mean_2std", "value")
    assert len(figure.axes[0].lines) == 2
    figure = plotwork.plot_results(frame, "param_sweep", "value", param="step")
    assert figure.axes[0].get_xlabel() == "step"
    [bars] = figure.axes[0].containers  # one line: no other parameter varies
    expected = {float(name.split("__s")[1]): row for name, *row in expected_summary(sweep / "out", "value")}
    steps, means = bars.lines[0].get_data()
    assert list(steps) == sorted(expected) and list(means) == pytest.approx([expected[s][2] for s in sorted(expected)])
    spans = [high - low for (_, low), (_, high) in bars.lines[2][0].get_segments()]
    assert spans == pytest.approx([4 * expected[s][3] for s in sorted(expected)])  # the mean +- 2 std
    with pytest.raises(KeyError, match="unknown plotter 'nope'"):
        plotwork.plot_results(frame, "nope", "value")

    @plotwork.register_plotter("final_hist")
    def final_hist(frame, column, ax, **options):
        ax.hist(frame.groupby(["experiment", "rep"])[column].last())

    figure = plotwork.plot_results(frame, "final_hist", "value")
    assert figure.axes[0].patches


@pytest.mark.processes
def test_best_iterations_and_summary(sweep):
    import plotwork
    frame = load_results(sweep / "out")
    best = plotwork.best_iterations(frame, "value")
    peaks = [max(row["value"] for row in rows) for reps in saved_repetitions(sweep / "out").values() for rows in reps]
    assert list(best.value) == sorted(peaks, reverse=True)  # one row per repetition: its best, best first
    table = summary(frame, "value", mode="min")
    assert list(table.columns) == ["repetitions", "iteration", "mean", "std", "best", "worst"]
    expected = expected_summary(sweep / "out", "value", mode="min")
    assert list(table.index) == [row[0] for row in expected]
    for name, *figures in expected:
        assert list(table.loc[name]) == pytest.approx(figures), name


def test_plot_command_writes_png_files(cli, sweep):
    result = cli("Deterministic", "config.yml", "--plot", "value", "--plotter", "param_sweep", cwd=sweep,
                     check_rc=0)
    [path] = result.stdout.split()
    assert Path(sweep / path).read_bytes().startswith(b"\x89PNG")
    result = cli("Deterministic", "config.yml", "--plot", "nope", cwd=sweep, check_rc=2)
    assert "no result column nope" in result.stderr


@pytest.mark.processes
def test_a_sweep_being_written_loads_as_a_consistent_prefix(sweep, tmp_path):
    import shutil

    import pandas as pd
    copy = tmp_path / "out"
    shutil.copytree(sweep / "out", copy)
    results = repetition_file(copy / "walk" / "s1.0", 0)
    with open(results, "ab") as handle:
        handle.write(b'{"iteration":5,"value":')  # a writer in the middle of a row
    frame = load_results(copy)
    assert len(frame) == 30
    pd.testing.assert_series_equal(frame.groupby(["experiment", "rep"]).size().reset_index(drop=True),
                                   pd.Series([5] * 6))


@pytest.mark.processes
@requires("nbclient", "nbformat", "ipykernel", "IPython")
def test_example_notebook_analyses_the_example_sweep(tmp_path):
    import shutil
    import subprocess
    import sys

    import nbformat
    from conftest import script_env
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("results"))
    subprocess.run([sys.executable, "examples/grid_fit.py", "examples/grid_fit.yml", "-n", "2"], cwd=tmp_path,
                   env=script_env(), check=True, capture_output=True, timeout=300)
    notebook = nbformat.read(tmp_path / "examples" / "analysis.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    probe = nbformat.v4.new_code_cell("print(*sorted(line.get_label() for line in _.axes[0].lines), sep='; ')")
    notebook.cells.insert(notebook.cells.index(code[4]) + 1, probe)  # what the figure code[4] returned shows
    execute(notebook, tmp_path / "examples")
    assert "loaded 1440 rows of 12 experiments" in text_of(code[0])
    assert_shows(text_of(code[2]), expected_summary(tmp_path / "examples" / "results" / "grid_fit", "loss_test", "min"))
    assert len(pngs_of(code[3])) == 1  # param_sweep: one figure
    assert len(pngs_of(code[4])) == 1  # the figure plot_results returned is drawn, not only named
    # labelled by what varies among the two (a zipped list), not by their expanded names
    assert text_of(probe).strip() == "samples=200, features=10; samples=800, features=40"
    assert "weights of the best model" in text_of(code[6])
