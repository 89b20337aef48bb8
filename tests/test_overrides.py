"""Hydra-style overrides on the command line: the pure logic as tables, then the command line itself."""
import json
import os
import subprocess

import pytest
import yaml
from conftest import script_env
from slurm_helpers import EXPERIMENT, run_script

from cluster_work import load_results
from cluster_work.config import merge_and_validate, parse_documents
from cluster_work.errors import ConfigError
from cluster_work.overrides import Overrides, is_override, parse, split_arguments

CONFIG = """\
name: DEFAULT
repetitions: 2
iterations: 3
path: out
params: {lr: 0.5, opt: {mom: 0.9}, "a.b": 1}
---
name: fit
grid: {bs: [1, 2]}
---
name: walk
"""
DEFAULTS = {"step": 1.0, "sleep": 0.0}


def effective(overrides, names=(), text=CONFIG, defaults=DEFAULTS):
    """The merged, overridden, validated documents by name."""
    adjust = Overrides(parse(overrides, "c.yml"), "c.yml", names, defaults).apply
    documents = merge_and_validate(parse_documents(text, "c.yml"), "c.yml", lambda message: None, adjust)
    return {document["name"]: document for document in documents}


@pytest.mark.parametrize("overrides, names, name, key, expected", [
    pytest.param(["params.lr=0.1"], (), "walk", ("params", "lr"), 0.1, id="float"),
    pytest.param(["params.lr=1e-3"], (), "walk", ("params", "lr"), 0.001, id="scientific-float-as-in-the-config"),
    pytest.param(["iterations=50"], (), "fit", ("iterations",), 50, id="int-from-DEFAULT-in-every-document"),
    pytest.param(["params.lr='0.1'"], (), "walk", ("params", "lr"), "0.1", id="quoted-stays-a-string"),
    pytest.param(["params.lr=true"], (), "walk", ("params", "lr"), True, id="bool"),
    pytest.param(["params.lr=null"], (), "walk", ("params", "lr"), None, id="null"),
    pytest.param(["params.lr="], (), "walk", ("params", "lr"), "", id="empty-is-the-empty-string"),
    pytest.param(["params.opt={mom: 0.5}"], (), "walk", ("params", "opt"), {"mom": 0.5}, id="mapping-replaces"),
    pytest.param(["params.opt.mom=0.5"], (), "walk", ("params", "opt"), {"mom": 0.5}, id="nested-key"),
    pytest.param(["params.a.b=2"], (), "walk", ("params", "a.b"), 2, id="a-key-holding-a-dot"),
    pytest.param(["grid.bs=[0.1,0.01]"], ("fit",), "fit", ("grid", "bs"), [0.1, 0.01], id="grid-list-value"),
    pytest.param(["params.step=3"], (), "walk", ("params", "step"), 3, id="a-class-default-param-exists"),
    pytest.param(["+params.new=x"], (), "walk", ("params", "new"), "x", id="plus-adds-a-new-key"),
    pytest.param(["+grid.lr=[1,2]"], ("walk",), "walk", ("grid", "lr"), [1, 2], id="plus-adds-a-block"),
    pytest.param(["++params.lr=2", "++params.z=3"], (), "walk", ("params",),
                 {"lr": 2, "z": 3, "opt": {"mom": 0.9}, "a.b": 1}, id="plus-plus-sets-or-adds"),
    pytest.param(["~params.opt"], (), "walk", ("params",), {"lr": 0.5, "a.b": 1}, id="tilde-deletes"),
    pytest.param(["params.lr=1", "params.lr=2"], (), "walk", ("params", "lr"), 2, id="the-last-one-wins"),
    pytest.param(["params.lr=0.1"], ("fit",), "walk", ("params", "lr"), 0.5, id="e-leaves-other-documents"),
    pytest.param(["params.lr=0.1"], ("fit__b1",), "fit", ("params", "lr"), 0.1, id="e-by-expanded-name"),
])
def test_an_override_sets_the_effective_config(overrides, names, name, key, expected):
    value = effective(overrides, names)[name]
    for part in key:
        value = value[part]
    assert value == expected


def test_overrides_leave_the_default_document_and_the_input_alone():
    documents = parse_documents(CONFIG, "c.yml")
    adjust = Overrides(parse(["params.opt.mom=0.1"], "c.yml"), "c.yml").apply
    merged = merge_and_validate(documents, "c.yml", lambda m: None, adjust)
    assert documents[0]["params"]["opt"]["mom"] == 0.9 and all(d["params"]["opt"]["mom"] == 0.1 for d in merged)


@pytest.mark.parametrize("overrides, names, message", [
    pytest.param(["params.lrr=0.1"], (), "experiment 'fit': 'params.lrr': override params.lrr=0.1: no such key; "
                 "did you mean 'params.lr'? (to add a key: +params.lrr=...)", id="typo-did-you-mean"),
    pytest.param(["iteration=5"], (), "'iteration': override iteration=5: no such key; did you mean 'iterations'?",
                 id="top-level-typo"),
    pytest.param(["params.zz=1"], (), "'params.zz': override params.zz=1: no such key; known: params.a.b, "
                 "params.lr, params.opt, params.sleep, params.step", id="no-lookalike-lists-the-keys"),
    pytest.param(["grid.lr=[1]"], ("walk",), "experiment 'walk': 'grid.lr': override grid.lr=[1]: no such key; "
                 "known: iterations, name, params, path, repetitions (to add a key: +grid.lr=...)",
                 id="new-block-needs-plus"),
    pytest.param(["grid.bs=[1]"], (), "experiment 'walk': 'grid.bs': override grid.bs=[1]: no such key; known: "
                 "iterations, name, params, path, repetitions (to add a key: +grid.bs=...)", id="in-one-document-only"),
    pytest.param(["+params.lr=1"], (), "'params.lr': override +params.lr=1: exists already", id="plus-on-existing"),
    pytest.param(["params.bs=3"], ("fit",), "'params.bs': override params.bs=3: is swept by 'grid.bs'",
                 id="param-swept-by-grid"),
    pytest.param(["params.lr.x=1"], (), "'params.lr.x': override params.lr.x=1: 'params.lr' is 0.5, not a mapping",
                 id="below-a-value"),
    pytest.param(["+params.lr.x=1"], (), "'params.lr': override +params.lr.x=1: is 0.5, not a mapping",
                 id="plus-below-a-value"),
    pytest.param(["+gird.lr=[1]"], (), "'gird': override +gird.lr=[1]: looks like a typo of the reserved key 'grid'",
                 id="plus-reserved-key-typo"),
    pytest.param(["~params.step"], (), "is a default of the experiment class", id="delete-a-class-default"),
    pytest.param(["~params.nope"], (), "'params.nope': override ~params.nope: no such key", id="delete-missing"),
    pytest.param(["params.lr=[1"], (), "c.yml: override 'params.lr=[1': the value is no YAML value",
                 id="bad-yaml-value"),
    pytest.param(["iterations=0"], (), "c.yml: experiment 'fit': 'iterations': must be a positive integer",
                 id="validated-as-the-config"),
    pytest.param(["lr"], (), "c.yml: override 'lr': write KEY.PATH=VALUE", id="not-an-override"),
])
def test_a_bad_override_is_one_line_naming_the_file_and_the_key(overrides, names, message):
    with pytest.raises(ConfigError) as raised:
        effective(overrides, names)
    assert str(raised.value).startswith("c.yml") and "\n" not in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize("arguments, rest, overrides", [
    pytest.param(["c.yml", "a=1", "-n", "2", "+b.c=[1,2]"], ["c.yml", "-n", "2"], ["a=1", "+b.c=[1,2]"],
                 id="anywhere-after-the-config"),
    pytest.param(["c.yml", "-e", "fit", "walk", "lr=1"], ["c.yml", "-e", "fit", "walk"], ["lr=1"],
                 id="ends-a-list-option"),
    pytest.param(["c.yml", "--filter", "lr=1", "--plot"], ["c.yml", "--filter", "lr=1", "--plot"], [],
                 id="an-options-value-stays"),
    pytest.param(["--filter=a", "x=1.yml", "~grid"], ["--filter=a", "x=1.yml"], ["~grid"],
                 id="the-config-is-never-one"),
    pytest.param(["c.yml", "--", "a=1"], ["c.yml", "--", "a=1"], [], id="after-double-dash"),
])
def test_split_arguments(arguments, rest, overrides):
    assert split_arguments(arguments, {"--filter", "-n"}) == (rest, overrides)


@pytest.mark.parametrize("word, expected", [
    ("a.b=1", True), ("+a=", True), ("++a.b-c=x=y", True), ("~a.b", True), ("~a=1", False), ("a", False),
    ("fit__lr0.1", False), ("1a=2", False), ("a b=1", False), ("out/x=1", False),
])
def test_is_override(word, expected):
    assert is_override(word) is expected


# --- the command line ---------------------------------------------------------------------------------

CLI_CONFIG = """\
name: DEFAULT
repetitions: 2
iterations: 3
path: out
---
name: fit
grid: {fail_at: [-1, -2]}
---
name: walk
"""


def files_below(folder):
    return sorted(os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder)
                  for name in names)


@pytest.mark.processes
def test_the_effective_config_is_stored_listed_and_a_rerun_without_it_is_a_change(tmp_path):
    (tmp_path / "config.yml").write_text(CLI_CONFIG)
    listed = run_script("config.yml", "-e", "fit", "grid.fail_at=[-3]", "params.step=2.5", "--list", "--json",
                        cwd=tmp_path)
    assert [json.loads(line)["experiment"] for line in listed.stdout.splitlines()] == ["fit__fa-3", "fit__fa-3"]
    run_script("config.yml", "-e", "fit", "grid.fail_at=[-3]", "params.step=2.5", "iterations=2", cwd=tmp_path)
    stored = yaml.safe_load((tmp_path / "out" / "fit" / "fa-3" / "config.yml").read_text())
    assert stored["params"]["step"] == 2.5 and stored["params"]["fail_at"] == -3 and stored["iterations"] == 2
    frame = load_results(tmp_path / "out")
    assert set(frame["params.step"]) == {2.5} and len(frame) == 4 and not (tmp_path / "out" / "walk").exists()
    before = files_below(tmp_path / "out")
    refused = run_script("config.yml", "-e", "fit", "grid.fail_at=[-3]", "iterations=2", cwd=tmp_path, check_rc=2)
    assert refused.stderr.count("\n") == 1 and "(fit__fa-3: step)" in refused.stderr
    assert "the last run changed the config on the command line: grid.fail_at=[-3] params.step=2.5 iterations=2" \
        in refused.stderr
    assert files_below(tmp_path / "out") == before
    resumed = run_script("config.yml", "-e", "fit", "grid.fail_at=[-3]", "params.step=2.5", "iterations=3",
                         cwd=tmp_path)
    assert "2 finished" in resumed.stderr and len(load_results(tmp_path / "out")) == 6
    last = json.loads((tmp_path / "out" / "runs.jsonl").read_text().splitlines()[-1 - 1])  # started, ended
    assert last["command"][2:] == ["config.yml", "-e", "fit", "grid.fail_at=[-3]", "params.step=2.5", "iterations=3"]


@pytest.mark.processes
def test_an_unknown_key_is_exit_2_and_nothing_written(tmp_path):
    (tmp_path / "config.yml").write_text(CLI_CONFIG)
    result = run_script("config.yml", "params.stpe=2", cwd=tmp_path, check_rc=2)
    assert result.stderr == ("error: config.yml: experiment 'fit': 'params.stpe': override params.stpe=2: no such key; "
                             "did you mean 'params.step'? (to add a key: +params.stpe=...)\n")
    assert os.listdir(tmp_path) == ["config.yml"]


@pytest.mark.processes
def test_the_batch_script_and_the_launch_line_carry_the_overrides(tmp_path):
    (tmp_path / "config.yml").write_text(CLI_CONFIG)
    overrides = ["-e", "walk", "params.step=4", "+params.note=a b", "iterations=2"]
    launch = run_script("config.yml", *overrides, "--list", "-v", cwd=tmp_path).stdout
    assert f"{EXPERIMENT} config.yml params.step=4 '+params.note=a b' iterations=2 -e walk" in launch
    run_script("config.yml", *overrides, "--slurm", "--array", cwd=tmp_path)
    script = tmp_path / "out" / "cluster_work_array.sbatch"
    assert "config.yml params.step=4 '+params.note=a b' iterations=2 -e walk -j $SLURM_ARRAY_TASK_ID" \
        in script.read_text()
    for task in (0, 1):  # each task runs the effective config, as Slurm would run it
        subprocess.run(["bash", str(script)], env={**script_env(), "SLURM_ARRAY_JOB_ID": "7",
                                                   "SLURM_ARRAY_TASK_ID": str(task)}, check=True, timeout=120)
    frame = load_results(tmp_path / "out")
    assert len(frame) == 4 and set(frame["params.step"]) == {4} and set(frame["params.note"]) == {"a b"}
