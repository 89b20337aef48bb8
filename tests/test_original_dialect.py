"""Code written for the original ClusterWork and PlotWork: its class API (load_experiments, init_from_config,
load_experiment_results...), its bare --plot hook, its notebook dialect (%load_ext plot_work) in a real
kernel, and sweep folders the original wrote (tests/data/original_sweep, made by running the original)."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from clients_plotwork import Rewards, Walker
from conftest import ROOT, requires, run_cli, script_env
from notebook_helpers import pngs_of, run_notebook, text_of
from repetition_files import repetition_key, results_files

from cluster_work import ClusterWork, load_results, original_format

if TYPE_CHECKING:  # pandas is imported where a test uses it: collecting the tests stays quick
    import pandas as pd

ORIGINAL = ROOT / "tests" / "data" / "original_sweep"
CLIENTS = str(ROOT / "tests" / "clients_plotwork.py")
CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 4
path: results
---
name: reward
grid: {gain: [1.0, 2.0]}
---
name: flat
params: {gain: 0.5}
"""


def run_client(name: str, *args: str, cwd: Path, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, CLIENTS, name, *args], cwd=cwd, env=script_env(), capture_output=True,
                            text=True, timeout=120)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


def copy_original(folder: Path) -> Path:
    shutil.copytree(ORIGINAL, folder, ignore=shutil.ignore_patterns("make_original_sweep.py", "__pycache__"))
    return folder


def original_csv(path: Path) -> pd.DataFrame:
    """A CSV file read exactly as the original's load_repetition_results / load_experiment_results did."""
    import pandas as pd
    return pd.read_csv(path, sep="\t").set_index(["r", "i"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A sweep of ours with list-valued results (config.yml, results/) beside one the original wrote (original/,
    whose config's `path: out` is found from the config's folder, since the working folder has no out/)."""
    folder = tmp_path_factory.mktemp("dialect")
    (folder / "config.yml").write_text(CONFIG)
    run_client("Rewards", "config.yml", cwd=folder)
    copy_original(folder / "original")
    return folder


@pytest.mark.processes
def test_the_originals_files_read_as_the_original_read_them(workspace, monkeypatch, tmp_path):
    import pandas as pd
    monkeypatch.chdir(workspace / "original")
    configs = {c["name"]: c for c in Walker.load_experiments(open("config.yml"))}
    assert list(configs) == ["walk__s1.0", "walk__s2.0", "single"]
    assert configs["walk__s2.0"]["path"] == "out/walk/s2.0"
    for name, folder in (("walk__s1.0", "out/walk/s1.0"), ("walk__s2.0", "out/walk/s2.0")):
        pd.testing.assert_frame_equal(ClusterWork.load_experiment_results(configs[name]),
                                      original_csv(Path(folder, "results.csv")))
    single = pd.concat([original_csv(Path(f"out/single/log/rep_{rep}.csv")) for rep in (0, 1)])
    pd.testing.assert_frame_equal(ClusterWork.load_experiment_results(configs["single"]), single)  # no results.csv
    assert ClusterWork.load_repetition_results(configs["walk__s2.0"], 1).index.tolist() == [(1, 0), (1, 2)]

    frame = load_results("config.yml")
    sizes = frame.groupby(["experiment", "rep"]).size().to_dict()
    assert sizes == {("single", 0): 3, ("single", 1): 1, ("walk__s1.0", 0): 3, ("walk__s1.0", 1): 3,
                     ("walk__s2.0", 0): 3, ("walk__s2.0", 1): 2}
    walked = frame[frame.experiment == "walk__s2.0"].set_index(["rep", "iteration"])
    expected = original_csv(Path("out/walk/s2.0/results.csv")).dropna()
    assert walked.pos.tolist() == expected.pos.tolist() and (walked["params.step"] == 2.0).all()
    assert list(frame.columns[-6:]) == ["rwrd_0", "rwrd_1", "pos", "info_rep", "iteration_time", "repetition_time"]

    assert original_format.finished_repetitions("out/walk/s1.0", 3) == {0, 1}
    assert original_format.finished_repetitions("out/walk/s2.0", 3) == {0}  # i=1 returned None: 2 rows
    assert original_format.finished_repetitions("out/single", 3) == {0}  # killed after one row
    assert original_format.read_experiment_config("out/walk/s2.0")["params"] == {"step": 2.0, "die": False}
    assert original_format.read_experiment_config("out") is None

    total, progress = Walker.get_progress(open("config.yml"))
    assert [(p.name, p.finished_repetitions, p.finished_iterations) for p in progress] == [
        ("walk__s1.0", 2, [3, 3]), ("walk__s2.0", 1, [3, 2]), ("single", 1, [3, 1])]
    assert total == pytest.approx((1 + 5 / 6 + 4 / 6) / 3)
    assert ClusterWork.get_experiments("out") == ["out/walk/s1.0", "out/walk/s2.0", "out/single"]
    assert ClusterWork.get_experiment_directories("walk__s2.0", ".") == ["./out/walk/s2.0"]
    assert ClusterWork.get_experiment_config("out/single")["log_path"] == "out/single/log"

    restored = Walker.init_from_config(configs["walk__s2.0"], 1, 2)
    assert restored.position == pytest.approx(expected.pos.loc[(1, 2)]) and restored._rep == 1
    with pytest.raises(Exception, match="not properly initialized"):
        restored.iterate(configs["walk__s2.0"], 1, 3)
    assert Walker.init_from_config(configs["walk__s2.0"], 1, 1) is None  # the original saved no row, no state


def test_a_torn_last_line_of_the_originals_rep_file_is_not_a_row(tmp_path):
    import pandas as pd
    sweep = copy_original(tmp_path / "original")
    rep_file = sweep / "out" / "walk" / "s1.0" / "log" / "rep_1.csv"
    before = load_results(sweep / "out")
    with open(rep_file, "ab") as handle:
        handle.write(b"1\t3\t+1.2345")  # the original killed in the middle of appending a row
    assert original_format.saved_iterations(str(rep_file.parent), 1) == 3
    pd.testing.assert_frame_equal(load_results(sweep / "out"), before)


@pytest.mark.processes
def test_the_class_api_on_a_cluster_work_sweep(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    configs = Rewards.load_experiments(open("config.yml"))
    assert [c["name"] for c in configs] == ["reward__g1.0", "reward__g2.0", "flat"]
    assert {k: configs[1][k] for k in ("experiment_name", "_config_path", "_experiment_path", "path", "log_path")} == {
        "experiment_name": "reward", "_config_path": "results", "_experiment_path": "results/reward",
        "path": "results/reward/g2.0", "log_path": "results/reward/g2.0/log"}
    assert [c["name"] for c in Rewards.load_experiments("config.yml", ["flat"])] == ["flat"]

    results = Rewards.load_experiment_results(configs[1])
    assert results.index.names == ["r", "i"] and results.shape == (12, 5)
    assert list(results.columns) == ["rwrd_0", "rwrd_1", "loss", "iteration_time", "repetition_time"]
    tidy = load_results("config.yml", experiments=["reward__g2.0"]).set_index(["rep", "iteration"])
    assert results.rwrd_0.tolist() == tidy.rwrd_0.tolist() and (results.rwrd_1 == 2 * results.rwrd_0).all()
    assert Rewards.load_repetition_results(configs[1], 2).index.tolist() == [(2, i) for i in range(4)]

    restored = Rewards.init_from_config(configs[1], 1, 2)
    assert restored.total == results.rwrd_0.loc[(1, 2)] and restored._name == "reward__g2.0"
    assert Rewards.init_from_config(configs[1], 1, 7) is None
    pairs = list(Rewards.iterate_config_and_results("config.yml")())
    assert [(c["name"], len(r)) for c, r in pairs] == [("reward__g1.0", 12), ("reward__g2.0", 12), ("flat", 12)]
    assert Rewards.get_progress("config.yml")[0] == 1.0
    assert sorted(ClusterWork.get_experiments("results")) == ["results/flat", "results/reward/g1.0",
                                                               "results/reward/g2.0"]
    with pytest.raises(NotImplementedError):
        ClusterWork.plot_results(iter(pairs))


@pytest.mark.processes
@pytest.mark.slow
def test_a_bare_plot_calls_the_plot_results_hook(workspace):
    run_client("Rewards", "config.yml", "--plot", "--filter", "g2", cwd=workspace)
    assert (workspace / "plot_hook.txt").read_text() == (
        "reward__g2.0 reward 12 rwrd_0,rwrd_1,loss,iteration_time,repetition_time r,i\n")
    run_client("Rewards", "config.yml", "-e", "reward", "--plot", cwd=workspace)
    assert [line.split()[0] for line in (workspace / "plot_hook.txt").read_text().splitlines()] == [
        "reward__g1.0", "reward__g2.0"]
    result = run_cli("Deterministic", "config.yml", "--plot", cwd=workspace, check_rc=2)
    last_line = result.stderr.splitlines()[-1]  # after warnings: Deterministic has no parameter 'gain'
    assert last_line.startswith("error: a bare --plot calls Deterministic.plot_results") and not result.stdout
    [path] = run_client("Rewards", "config.yml", "--plot", "rwrd_1", "--filter", "g1", cwd=workspace).stdout.split()
    assert Path(workspace, path).read_bytes().startswith(b"\x89PNG")


WALKER = '''\
import os, pickle
import numpy as np

class Walker(ClusterWork):
    _restore_supported = True
    _default_params = {"step": 1.0, "die": False}

    def reset(self, config, rep):
        self.position = 0.0

    def iterate(self, config, rep, n):
        raise AssertionError("not called by analysis")

    def restore_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}.pkl"), "rb") as handle:
            self.position = pickle.load(handle)
        return True
'''


@pytest.mark.processes
@pytest.mark.slow
@requires("nbclient", "nbformat", "ipykernel", "IPython", "matplotlib")
def test_a_notebook_in_the_originals_dialect(workspace):
    ours = load_results(workspace / "config.yml", experiments=["reward"])
    notebook = run_notebook(workspace, [
        "%load_ext plot_work",
        "from cluster_work import ClusterWork\n"
        "from plot_work import (DownloadFile, register_file_provider, register_iteration_plot_function,\n"
        "                       register_results_plot_function)\n"
        "from clients_plotwork import Rewards as MyExperiment",
        "%set_experiment_class MyExperiment",
        "%load_experiment config.yml -e reward",
        "print([c['name'] for c in experiments], [c['experiment_name'] for c in experiments])",
        "%plot_results mean_2std rwrd_0",
        "%plot_results mean_2std_best_out rwrd_0 rwrd_1 -i --save_figures --prefix nb_",
        "@register_results_plot_function('final_mean')\n"
        "def final_mean(name, results, axes):\n"
        "    last = results.groupby(level=0).last().iloc[:, 0]\n"
        "    axes.bar([name], [last.mean()])\n"
        "    print(name, float(last.mean()))",
        "%plot_results final_mean rwrd_1",
        "%print_results rwrd_0",
        "tables = %print_results loss\nprint(len(tables), tables[0].to_json())",
        "%restore_experiment_state -r 0 -i 2\nprint([(e._name, e._rep, e.total) for e in experiment_instances])",
        "%restore_best_experiment_state rwrd_0\n"
        "print((best_results_idx, [e.total for e in experiment_instances], experiment._name))",
        "%print_best_iterations loss",
        "@register_iteration_plot_function('trace')\n"
        "def trace(instance, args):\n"
        "    import matplotlib.pyplot as plt\n"
        "    figure = plt.figure()\n"
        "    plt.plot([0.0, instance.total], label=' '.join(args))\n"
        "    return [figure]\n"
        "%plot_iteration trace a b --tab_title gain",
        "@register_file_provider('state')\n"
        "def state(instance, config, args):\n"
        "    return DownloadFile(instance._log_path_rep + 'state_3.pkl', 'state.pkl', 'the state')\n"
        "%provide_files state",
        "%show_progress full",
        WALKER,
        "%set_experiment_class Walker\n%load_experiment original/config.yml\n"
        "print(sorted(results.groupby(['experiment', 'rep']).size().items()))",
        "%plot_results mean_2std pos rwrd_1",
        "%print_results pos",
        "%restore_experiment_state -e walk -r 1 -i 2\nprint([(e._name, e.position) for e in experiment_instances])",
        "%set_experiment_class MyExperiment\n%load_experiment config.yml\n"
        "%plot_results param_sweep rwrd_1 -o param=gain",  # today's plotters take list columns too
    ])
    cells = notebook.cells
    last = lambda index: text_of(cells[index]).strip().splitlines()[-1]  # noqa: E731
    assert last(4) == "['reward__g1.0', 'reward__g2.0'] ['reward', 'reward']"
    assert len(pngs_of(cells[5])) == 1 and len(pngs_of(cells[6])) == 1  # one figure per selector
    assert (workspace / "plots" / "nb_reward_figure.png").read_bytes().startswith(b"\x89PNG")
    finals = ours.sort_values("iteration").groupby(["experiment", "rep"]).rwrd_1.last().groupby("experiment").mean()
    printed = dict(line.split() for line in text_of(cells[8]).splitlines() if line.startswith("reward__"))
    assert {k: float(v) for k, v in printed.items()} == pytest.approx(finals.to_dict()) and pngs_of(cells[8])
    assert "m" in text_of(cells[9]) and "reward__g2.0" in text_of(cells[9])
    count, table = last(10).split(" ", 1)
    loss = ours.groupby("experiment").loss
    assert count == "1" and json.loads(table) == {"m": pytest.approx(loss.mean().to_dict()),
                                                  "s": pytest.approx(loss.std().to_dict())}
    at_2 = ours[(ours.rep == 0) & (ours.iteration == 2)].set_index("experiment").rwrd_0
    assert ast.literal_eval(last(11)) == [(name, 0, at_2[name]) for name in ("reward__g1.0", "reward__g2.0")]
    best = ours.loc[ours.groupby("experiment").rwrd_0.idxmax()]
    assert ast.literal_eval(last(12)) == (list(zip(best.rep, best.iteration)), best.rwrd_0.tolist(),
                                          best.experiment[best.rwrd_0.idxmax()])
    assert [line.split(":")[0] for line in text_of(cells[13]).splitlines()] == ["- reward__g1.0", "- reward__g2.0"]
    printed_titles = "".join(o.get("text", "") for o in cells[14].outputs if o.output_type == "stream")
    assert len(pngs_of(cells[14])) == 2 and printed_titles.split() == ["1.0", "2.0"]
    links = [o["data"]["text/html"] for o in cells[15].outputs if "text/html" in o.get("data", {})]
    assert len(links) == 2 and all("download='state.pkl'" in link and "the state" in link for link in links)
    assert "Total" in text_of(cells[16]) and "100.0%" in text_of(cells[16])
    assert ast.literal_eval(last(18)) == [(("single", 0), 3), (("single", 1), 1), (("walk__s1.0", 0), 3),
                                          (("walk__s1.0", 1), 3), (("walk__s2.0", 0), 3), (("walk__s2.0", 1), 2)]
    assert len(pngs_of(cells[19])) == 2  # no -e: one figure per base name (walk, single)
    assert text_of(cells[20]).count("walk__s") == 2 and "single" in text_of(cells[20])
    positions = [original_csv(ORIGINAL / f"out/walk/s{step}/log/rep_1.csv").pos.loc[(1, 2)] for step in ("1.0", "2.0")]
    names, restored = zip(*ast.literal_eval(last(21)))  # the pickles hold what the CSV rounded to 9 digits
    assert names == ("walk__s1.0", "walk__s2.0") and restored == pytest.approx(positions, rel=1e-8)
    assert len(pngs_of(cells[22])) == 1


@pytest.mark.processes
def test_a_cluster_work_run_over_an_original_sweep_runs_only_what_the_original_left(tmp_path):
    sweep = copy_original(tmp_path / "original")
    theirs = {path: path.read_bytes() for path in sweep.rglob("*") if path.is_file()}
    run_client("Walker", "config.yml", cwd=sweep)
    ran = sorted(repetition_key(path, sweep) for path in results_files(sweep))
    assert ran == ["out/single/log/rep_01", "out/walk/s2.0/log/rep_01"]  # the repetitions the original left
    assert all(path.read_bytes() == data for path, data in theirs.items() if path.suffix != ".pkl")
    frame = load_results(sweep / "config.yml")
    assert frame.groupby(["experiment", "rep"]).size().tolist() == [3] * 6
    kept = frame[(frame.experiment == "walk__s1.0")].pos.tolist()
    assert kept == original_csv(sweep / "out/walk/s1.0/results.csv").pos.tolist()
    run_client("Walker", "config.yml", cwd=sweep)
    assert sorted(repetition_key(path, sweep) for path in results_files(sweep)) == ran
