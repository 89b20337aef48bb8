"""What a user reads from a sweep, on the compact store (`store: compact`) as on the default layout (a folder per
point), for the same sweep: `load_results`' frame (list-valued results too: the same columns, dtypes and
order), the stored config and `restore_experiment`, the original's class API (`get_experiments`...), `--plot`
(its bare hook and its PNGs), and a notebook in the original PlotWork dialect in a real Jupyter kernel."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from clients_plotwork import Rewards
from conftest import ROOT, requires, script_env
from notebook_helpers import pngs_of, run_notebook, text_of

from cluster_work import ClusterWork, load_results, restore_experiment
from cluster_work.results import stored_config

CLIENTS = str(ROOT / "tests" / "clients_plotwork.py")
CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 4
path: results
{store}
---
name: reward
grid: {{gain: [1.0, 2.0]}}
---
name: flat
params: {{gain: 0.5}}
"""
LAYOUTS = ["folders", "compact"]
TIMES = ["iteration_time", "repetition_time"]  # measured: the only values two runs of one sweep differ in


def _run(client: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, CLIENTS, client, "config.yml", *args], cwd=folder, env=script_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _sweep(folder: Path, layout: str, client: str = "Rewards", config: str = CONFIG) -> Path:
    folder.mkdir()
    (folder / "config.yml").write_text(config.format(store="store: compact" if layout == "compact" else ""))
    _run(client, folder)
    return folder


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    return {layout: _sweep(root / layout, layout) for layout in LAYOUTS}


def _same_frames(folders, compact) -> None:
    """Equal frames: the same columns in the same order, the same dtypes, the same rows in the same order,
    equal values but for the measured times."""
    import pandas as pd

    assert list(compact.columns) == list(folders.columns) and compact.dtypes.equals(folders.dtypes)
    pd.testing.assert_frame_equal(compact.drop(columns=TIMES), folders.drop(columns=TIMES))


@pytest.mark.processes
def test_load_results_of_list_valued_results_is_the_default_layouts_frame(tmp_path):
    config = "name: ragged\nrepetitions: 2\niterations: 4\npath: out\n{store}\ngrid: {{k: [1, 2]}}\n"
    frames = {layout: load_results(_sweep(tmp_path / layout, layout, "RaggedLists", config) / "out")
              for layout in LAYOUTS}
    _same_frames(frames["folders"], frames["compact"])
    assert {"v_2", "m_0", "a", "d_0", "late_1", "big"} <= set(frames["compact"].columns)  # the lists were split
    assert len(frames["compact"]) == 2 * 2 * 4


@pytest.mark.processes
def test_load_results_of_a_compact_sweep_is_the_default_layouts_frame(sweeps):
    _same_frames(load_results(sweeps["folders"] / "config.yml"), load_results(sweeps["compact"] / "config.yml"))


@pytest.mark.processes
def test_the_stored_config_restore_experiment_and_the_class_api_answer_as_on_folders(sweeps, monkeypatch):
    frame = load_results(sweeps["folders"] / "results").set_index(["experiment", "rep", "iteration"])
    answers = {}
    for layout, folder in sweeps.items():
        monkeypatch.chdir(folder)
        configs = {path: stored_config(path) for path in ClusterWork.get_experiments("results")}
        answers[layout] = (
            sorted(configs), {path: {k: v for k, v in c.items() if k != "store"} for path, c in configs.items()},
            ClusterWork.get_experiment_directories("reward__g2.0", "results"),
            ClusterWork.get_experiment_config("results/flat")["iterations"],
            restore_experiment(Rewards, "results/reward/g2.0", 1, 2).total,
            Rewards.init_from_config(configs["results/flat"], 2, 3).total,
        )
    assert answers["compact"] == answers["folders"]
    paths, configs, directories, iterations, restored, initialised = answers["compact"]
    assert paths == ["results/flat", "results/reward/g1.0", "results/reward/g2.0"]
    assert configs["results/reward/g2.0"]["log_path"] == "results/reward/g2.0/log" and iterations == 4
    assert directories == ["results/reward/g2.0"]
    assert restored == frame.rwrd_0.loc[("reward__g2.0", 1, 2)] and initialised == frame.rwrd_0.loc[("flat", 2, 3)]


@pytest.mark.processes
@pytest.mark.slow
@requires("matplotlib")
def test_plot_draws_the_same_on_compact(sweeps):
    hooks, pngs = {}, {}
    for layout, folder in sweeps.items():
        _run("Rewards", folder, "--plot", "--filter", "g2")
        hooks[layout] = (folder / "plot_hook.txt").read_text()
        [path] = _run("Rewards", folder, "--plot", "rwrd_1", "--filter", "g1").stdout.split()
        pngs[layout] = path
        assert Path(folder, path).read_bytes().startswith(b"\x89PNG")
    assert hooks["compact"] == hooks["folders"] == (
        "reward__g2.0 reward 12 rwrd_0,rwrd_1,loss,iteration_time,repetition_time r,i\n")
    assert pngs["compact"] == pngs["folders"]


NOTEBOOK = [
    "%load_ext plot_work",
    "from cluster_work import ClusterWork, restore_experiment\n"
    "from plot_work import register_results_plot_function\n"
    "from clients_plotwork import Rewards as MyExperiment",
    "%set_experiment_class MyExperiment",
    "%load_experiment config.yml -e reward",
    "print([c['name'] for c in experiments], [c['experiment_name'] for c in experiments], len(results))",
    "%plot_results mean_2std rwrd_0",
    "@register_results_plot_function('final_mean')\n"
    "def final_mean(name, results, axes):\n"
    "    last = results.groupby(level=0).last().iloc[:, 0]\n"
    "    axes.bar([name], [last.mean()])\n"
    "    print(name, float(last.mean()))",
    "%plot_results final_mean rwrd_1",
    "tables = %print_results loss\nprint(len(tables), tables[0].to_json())",
    "%restore_experiment_state -r 0 -i 2\nprint([(e._name, e._rep, e.total) for e in experiment_instances])",
    "%restore_best_experiment_state rwrd_0\n"
    "print((best_results_idx, [e.total for e in experiment_instances], experiment._name))",
    "%print_best_iterations loss",
    "%show_progress full",
    "print(sorted(MyExperiment.get_experiments('results')))",
    "config = MyExperiment.get_experiment_config('results/reward/g1.0')\n"
    "print([config[k] for k in ('name', 'experiment_name', 'repetitions', 'iterations', 'params')])",
    "print(restore_experiment(MyExperiment, 'results/flat', 1, 3).total)",
]


@pytest.mark.processes
@pytest.mark.slow
@requires("nbclient", "nbformat", "ipykernel", "IPython", "matplotlib")
def test_a_notebook_in_the_originals_dialect_shows_the_same_on_compact(sweeps):
    ours = load_results(sweeps["folders"] / "config.yml")
    shown = {}
    for layout, folder in sweeps.items():
        cells = run_notebook(folder, NOTEBOOK).cells
        shown[layout] = [(text_of(cell), len(pngs_of(cell))) for cell in cells]
    for index, (folders, compact) in enumerate(zip(shown["folders"], shown["compact"])):
        assert compact == folders, (NOTEBOOK[index], compact, folders)
    texts = [text.strip().splitlines()[-1] if text.strip() else "" for text, _ in shown["compact"]]
    assert texts[4] == "['reward__g1.0', 'reward__g2.0'] ['reward', 'reward'] 24"
    assert shown["compact"][5][1] == 1 and shown["compact"][7][1] == 1  # a figure each
    finals = ours.sort_values("iteration").groupby(["experiment", "rep"]).rwrd_1.last().groupby("experiment").mean()
    printed = dict(line.split() for line in shown["compact"][7][0].splitlines() if line.startswith("reward__"))
    assert {k: float(v) for k, v in printed.items()} == pytest.approx(finals[finals.index != "flat"].to_dict())
    at_2 = ours[(ours.rep == 0) & (ours.iteration == 2)].set_index("experiment").rwrd_0
    assert ast.literal_eval(texts[9]) == [(name, 0, at_2[name]) for name in ("reward__g1.0", "reward__g2.0")]
    assert "100.0%" in shown["compact"][12][0]
    assert ast.literal_eval(texts[13]) == ["results/flat", "results/reward/g1.0", "results/reward/g2.0"]
    assert ast.literal_eval(texts[14]) == ["reward__g1.0", "reward", 3, 4, {"gain": 1.0}]
    flat = ours[(ours.experiment == "flat") & (ours.rep == 1) & (ours.iteration == 3)].rwrd_0.item()
    assert float(texts[15]) == flat


@pytest.mark.processes
def test_restore_experiment_finds_the_states_under_a_documents_own_log_path(tmp_path, monkeypatch):
    config = CONFIG.replace("path: results\n", "path: results\nlog_path: states\n")
    answers = {}
    for layout in LAYOUTS:
        folder = _sweep(tmp_path / layout, layout, config=config)
        monkeypatch.chdir(folder)
        assert (folder / "states" / "reward__g1.0" / "rep_01" / "state_2.pkl").is_file()  # where the run put them
        answers[layout] = (stored_config("results/reward/g1.0")["log_path"],
                           restore_experiment(Rewards, "results/reward/g1.0", 1, 2).total)
    assert answers["compact"] == answers["folders"]
    assert answers["compact"][0] == "states/reward__g1.0"


@pytest.mark.processes
def test_after_delete_the_stored_config_is_the_config_then_current(tmp_path, monkeypatch):
    folder = _sweep(tmp_path / "compact", "compact")
    (folder / "config.yml").write_text(CONFIG.format(store="store: compact").replace("iterations: 4", "iterations: 5"))
    _run("Rewards", folder, "-d")  # the sweep again from scratch, with 5 iterations
    monkeypatch.chdir(folder)
    assert [stored_config(path)["iterations"] for path in ClusterWork.get_experiments("results")] == [5, 5, 5]
    assert len(load_results("results")) == 3 * 3 * 5
