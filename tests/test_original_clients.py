"""Code written for the original ClusterWork, run unchanged: names, folders, config keys, list results,
custom YAML tags; and a differential test of the expansion against the original's own code."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, script_env
from original_reference import adapt_experiment_path, expand_experiment, flatten_dict

from cluster_work import load_results, summary
from cluster_work.config import merge_and_validate, parse_documents
from cluster_work.expansion import expand_all
from cluster_work.runner import flatten_result

CLIENTS = str(ROOT / "tests" / "original_clients.py")

CONFIG = """\
name: DEFAULT
repetitions: 2
iterations: 3
path: out
gui: false
params:
  env: !EvalEnv {agents: 2, scale: 1.5}
---
name: learn
grid:
  tau: [0.01, 0.1]
  learning_rate: [0.5]
"""


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("learned")
    (folder / "config.yml").write_text(CONFIG)
    result = run_cli("EnvLearner", "config.yml", cwd=folder, check_rc=0, script=CLIENTS)
    return folder, result


@pytest.mark.processes
def test_names_folders_and_config_keys_are_the_originals(learned):
    folder, _ = learned
    rep_folder = folder / "out" / "learn" / "t0.01_lr0.5" / "log" / "rep_01"
    seen = json.loads((rep_folder / "seen.json").read_text())
    assert seen == {"name": "learn__t0.01_lr0.5", "experiment_name": "learn", "path": "out/learn/t0.01_lr0.5",
                    "log_path": "out/learn/t0.01_lr0.5/log", "_config_path": "out",
                    "_experiment_path": "out/learn", "no_gui": True, "plotting": True,
                    "log_path_rep": "out/learn/t0.01_lr0.5/log/rep_01/", "env_type": "EvalEnv", "repetitions": 2}
    assert sorted(p.name for p in (folder / "out" / "learn").iterdir()) == ["t0.01_lr0.5", "t0.1_lr0.5"]
    assert (rep_folder / "checkpoint_2.pkl").exists()  # save_state ran without restore support


@pytest.mark.processes
def test_list_results_become_columns_that_summaries_and_plots_take(learned):
    folder, _ = learned
    frame = load_results(folder / "config.yml")
    assert {"rwrd_0", "rwrd_1", "policy_value", "policy_tau"} <= set(frame.columns)
    assert frame.rwrd_0.dtype.kind == "f" and len(frame) == 2 * 2 * 3
    table = summary(frame, "rwrd_0")
    assert list(table.index) == sorted(table.index, key=lambda n: -table.loc[n, "mean"])
    assert set(table.repetitions) == {2}


@pytest.mark.processes
def test_a_rerun_of_an_unchanged_config_with_tags_nan_and_sets_runs_and_warns_nothing(tmp_path):
    text = CONFIG.replace("params:\n", "params:\n  odd: .nan\n  kinds: !!set {a, b, c, d, e}\n")
    (tmp_path / "config.yml").write_text(text)
    run_cli("EnvLearner", "config.yml", cwd=tmp_path, check_rc=0, script=CLIENTS)
    for hash_seed in ("1", "2"):  # a set's order depends on the hash seed
        again = subprocess.run([sys.executable, CLIENTS, "EnvLearner", "config.yml"], cwd=tmp_path,
                               env={**script_env(), "PYTHONHASHSEED": hash_seed}, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert "0 jobs" in again.stderr and "parameters changed" not in again.stderr and "WARNING" not in again.stderr


@pytest.mark.processes
def test_the_originals_expanded_name_selects_the_experiment(learned):
    folder, _ = learned
    listing = run_cli("EnvLearner", "config.yml", "--list", "-e", "learn__t0.1_lr0.5", cwd=folder, check_rc=0,
                      script=CLIENTS).stdout
    assert "learn__t0.1_lr0.5" in listing and "learn__t0.01_lr0.5" not in listing


@pytest.mark.processes
def test_python_tags_stay_refused_beside_declared_ones(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG + "  env: !!python/object/apply:os.system ['touch pwned']\n")
    result = run_cli("EnvLearner", "config.yml", cwd=tmp_path, check_rc=2, script=CLIENTS)
    assert result.stderr.count("\n") == 1 and "python/object/apply" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["config.yml"]


GRIDS = [
    "grid: {tau: [0.01, 0.1], learning_rate: [1.0e-3, 0.5]}",
    "grid: {optimizer: {learning_rate: [0.1, 1]}, batch_size: [16, 32]}",
    "grid: {layers: [[64, 64], [32]], act: [relu, 'leaky relu']}",
    "grid: {mix: [[1, [2, 3]], {a: 1}], flag: [true, false, null]}",
    "grid: {net: {hidden: {units_per_layer: [8]}}, seed_offset: [0, 1]}",
    "list: {alpha: [1, 2, 3], beta_one: [4, 5, 6]}",
]


@pytest.mark.parametrize("body", GRIDS)
def test_expansion_equals_the_originals(body):
    text = f"name: DEFAULT\nrepetitions: 1\niterations: 1\npath: out\nparams: {{keep: 1}}\n---\nname: x\n{body}\n"
    documents = merge_and_validate(parse_documents(text, "c.yml"), "c.yml", lambda message: None)
    ours = expand_all(documents, None, "c.yml", lambda message: None)
    theirs = expand_experiment(adapt_experiment_path(copy.deepcopy(documents[0])))
    assert [e.name for e in ours] == [c["name"] for c in theirs]
    for mine, original in zip(ours, theirs):
        for key in ("path", "log_path", "params", "_config_path", "experiment_name", "_experiment_path"):
            assert mine.config.get(key, original.get(key)) == original.get(key), key


def test_result_rows_flatten_as_the_originals():
    row = {"rwrd": [1.0, 2.0], "loss": {"train": 0.5, "test": {"a": 1}}, "n": 3, "pair": (1, 2)}
    assert flatten_result(row) == flatten_dict(copy.deepcopy(row))


@pytest.mark.processes
def test_the_originals_sweep_layout_is_walked_by_load_results(learned):
    folder, _ = learned
    frame = load_results(Path(folder) / "out", experiments=["learn"])
    assert set(frame.experiment) == {"learn__t0.01_lr0.5", "learn__t0.1_lr0.5"}
