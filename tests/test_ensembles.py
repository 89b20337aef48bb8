"""Ensembles as in SmartSim: random expansion (seeded, stable), replicas, and the preview of --list."""
import json
import math
import statistics

import pytest
from conftest import run_cli, run_mpi

from cluster_work import design, load_results
from cluster_work.config import merge_and_validate, parse_documents
from cluster_work.errors import ConfigError
from cluster_work.expansion import expand_all
from cluster_work.sampling import Distribution, Sampler, below, unit

RANDOM = """\
name: search
repetitions: 2
iterations: 2
path: out
grid: {{step: [1.0, 2.0]}}
random:
  samples: {samples}
  seed: 7
  params:
    optimizer: {{learning_rate: {{loguniform: [1.0e-5, 1.0e-1]}}}}
    dropout: {{uniform: [0.0, 0.5]}}
    layers: {{randint: [2, 9]}}
    activation: {{choice: [relu, tanh, gelu]}}
    batch_size: [16, 32, 64]{extra}
"""


def expand(text):
    return list(expand_all(merge_and_validate(parse_documents(text, "c.yml"), "c.yml", lambda m: None), None, "c.yml",
                           lambda m: None, custom_points=design.points))


def test_draws_are_golden_values_of_a_hash_not_of_a_library_stream():
    # blake2b is specified: these hold on every machine, process and numpy version
    assert unit(7, "dropout", 0) == unit(7, "dropout", 0) and 0 <= unit(7, "dropout", 0) < 1
    assert [below(7, "layers", i, 7) for i in range(5)] == [below(7, "layers", i, 7) for i in range(5)]
    assert unit(7, "dropout", 0) == 0.8658888958284243
    assert [below(7, "layers", i, 7) for i in range(5)] == [0, 3, 0, 5, 5]


@pytest.mark.parametrize("spec, check", [
    ({"uniform": [0.0, 0.5]}, lambda v: abs(statistics.mean(v) - 0.25) < 0.005 and min(v) >= 0 and max(v) < 0.5),
    ({"loguniform": [1e-5, 1e-1]},
     lambda v: abs(statistics.mean(math.log10(x) for x in v) + 3) < 0.03 and min(v) >= 1e-5 and max(v) < 1e-1),
    ({"randint": [2, 9]},
     lambda v: set(v) == set(range(2, 9)) and max(v.count(k) for k in range(2, 9)) < 1.08 * 20000 / 7),
    (["relu", "tanh", "gelu"], lambda v: max(v.count(k) for k in set(v)) < 1.05 * 20000 / 3),
])
def test_draws_follow_their_distribution(spec, check):
    distribution = Distribution.of(spec)
    values = [distribution.draw(3, "p", i) for i in range(20000)]
    assert check(values)


def test_parameters_are_drawn_independently():
    sampler = Sampler({("a",): Distribution.of({"uniform": [0, 1]}), ("b",): Distribution.of({"uniform": [0, 1]})},
                      20000, 11)
    points = [sampler.point(i) for i in range(20000)]
    a, b = [p[("a",)] for p in points], [p[("b",)] for p in points]
    assert abs(statistics.correlation(a, b)) < 0.03


def test_more_samples_or_another_parameter_keep_the_earlier_points():
    few = {e.name: e.params for e in expand(RANDOM.format(samples=3, extra=""))}
    more = {e.name: e.params for e in expand(RANDOM.format(samples=5, extra=""))}
    assert all(more[name] == params for name, params in few.items()) and len(more) == 10
    added = expand(RANDOM.format(samples=3, extra="\n    momentum: {uniform: [0.8, 0.99]}"))
    assert [{k: v for k, v in e.params.items() if k != "momentum"} for e in added] == list(few.values())
    assert [e.name for e in added] == list(few)  # names index the sample: no float in a folder name
    assert list(few)[:2] == ["search__s1.0_sample0", "search__s1.0_sample1"]


def test_without_replacement_points_are_distinct_and_a_longer_prefix_keeps_them():
    text = ("name: w\nrepetitions: 1\niterations: 1\npath: out\nrandom: {samples: %d, seed: 1, "
            "without_replacement: true, params: {a: [1, 2, 3], b: {randint: [0, 4]}}}\n")
    all_points = [tuple(sorted(e.params.items())) for e in expand(text % 12)]
    assert len(set(all_points)) == 12
    assert [tuple(sorted(e.params.items())) for e in expand(text % 5)] == all_points[:5]
    with pytest.raises(ConfigError, match="'random.samples': asks for 13 distinct points of only 12"):
        expand(text % 13)


@pytest.mark.parametrize("random, fragment", [
    ("{samples: 0, params: {a: [1]}}", "'random.samples': must be an integer from 1"),
    ("{samples: 2, params: {a: {uniform: [1, 0]}}}", "'random.params.a': uniform needs low < high"),
    ("{samples: 2, params: {a: {loguniform: [0, 1]}}}", "'random.params.a': loguniform needs 0 < low"),
    ("{samples: 2, params: {a: {randint: [0.5, 3]}}}", "'random.params.a': randint needs two integers"),
    ("{samples: 2, params: {a: {uniform: 3}}}", "'random.params.a': uniform needs [low, high]"),
    ("{samples: 2, params: {a: 3}}", "'random.params.a': must be a list of values or one of"),
    ("{samples: 2, params: {a: {uniform: [0, 1]}}, without_replacement: true}",
     "'random.without_replacement': needs every random parameter to be a list"),
    ("{samples: 2, params: {step: [1]}}", "'random.params': parameter(s) step also appear under 'grid'"),
    ("{samples: 2, sed: 3, params: {a: [1]}}", "'random.sed': unknown key"),
])
def test_bad_random_blocks_are_one_line_naming_the_key(random, fragment):
    with pytest.raises(ConfigError) as error:
        expand(f"name: r\nrepetitions: 1\niterations: 1\npath: out\ngrid: {{step: [1]}}\nrandom: {random}\n")
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_replicas_are_repetitions():
    [experiment] = expand("name: r\nreplicas: 4\niterations: 1\npath: out\n")
    assert experiment.repetitions == 4
    with pytest.raises(ConfigError, match="'replicas' or 'repetitions', not both"):
        expand("name: r\nreplicas: 4\nrepetitions: 2\niterations: 1\npath: out\n")


def listed_jobs(folder, *args):
    lines = run_cli("Deterministic", "config.yml", "--list", "--json", *args, cwd=folder, check_rc=0).stdout
    return [json.loads(line) for line in lines.splitlines()]


@pytest.mark.processes
@pytest.mark.slow
def test_a_random_sweep_previews_exactly_what_runs_and_is_the_same_on_every_backend(tmp_path):
    import pandas as pd
    (tmp_path / "config.yml").write_text(RANDOM.format(samples=3, extra=""))
    preview = listed_jobs(tmp_path)
    assert not (tmp_path / "out").exists() and len(preview) == 2 * 3 * 2
    expected = expand(RANDOM.format(samples=3, extra=""))
    assert {(j["experiment"], j["rep"]) for j in preview} == {(e.name, r) for e in expected for r in (0, 1)}
    listing = run_cli("Deterministic", "config.yml", "--list", "-v", cwd=tmp_path, check_rc=0).stdout
    assert "search: 3 random samples, seed 7" in listing and "launch:" in listing and "config.yml" in listing
    run_cli("Deterministic", "config.yml", "-j", "0", "5", cwd=tmp_path, check_rc=0)
    left = listed_jobs(tmp_path)
    assert [j["job"] for j in left] == list(range(5, 12)) and {j["state"] for j in left} == {"pending"}
    run_cli("Deterministic", "config.yml", "-n", "2", cwd=tmp_path, check_rc=0)
    frame = load_results(tmp_path / "out")
    assert set(zip(frame.experiment, frame.rep)) == {(j["experiment"], j["rep"]) for j in preview}
    params = frame.groupby("experiment")["params.optimizer.learning_rate"].first()
    assert {j["experiment"]: j["params"]["optimizer.learning_rate"] for j in preview} == params.to_dict()
    (tmp_path / "mpi").mkdir()
    (tmp_path / "mpi" / "config.yml").write_text(RANDOM.format(samples=3, extra=""))
    run_mpi(3, "Deterministic", "config.yml", cwd=tmp_path / "mpi", check_rc=0)
    columns = [c for c in frame.columns if c not in ("iteration_time", "repetition_time")]
    ordered = ["experiment", "rep", "iteration"]
    pd.testing.assert_frame_equal(
        frame[columns].sort_values(ordered).reset_index(drop=True),
        load_results(tmp_path / "mpi" / "out")[columns].sort_values(ordered).reset_index(drop=True))


CUSTOM = """\
name: designed
repetitions: 1
iterations: 2
path: out
custom:
  function: "designs:{function}"
  samples: 3
  params: {{step: [1.0, 2.0, 3.0], optimizer: {{lr: [0.1, 0.01]}}}}
"""


def test_a_custom_strategy_gives_the_points_of_its_function(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    experiments = expand(CUSTOM.format(function="diagonal"))
    assert [e.params for e in experiments] == [{"step": 1.0, "optimizer": {"lr": 0.1}},
                                               {"step": 2.0, "optimizer": {"lr": 0.01}},
                                               {"step": 3.0, "optimizer": {"lr": 0.1}}]
    assert [e.name for e in experiments] == ["designed__sample0", "designed__sample1", "designed__sample2"]


@pytest.mark.parametrize("function, fragment", [
    ("raises", "designs:raises raised RuntimeError: the design failed"),
    ("not_a_list", "must return a non-empty list of dicts, got dict"),
    ("unknown_key", "point 0 has key(s) extra; known: step, optimizer.lr"),
    ("missing", "cannot load 'designs:missing'"),
])
def test_a_failing_custom_strategy_is_one_line_naming_custom_function(cli, tmp_path, function, fragment):
    (tmp_path / "config.yml").write_text(CUSTOM.format(function=function))
    result = cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=2)
    assert "'designed': 'custom.function': " in result.stderr and fragment in result.stderr
    assert result.stderr.count("\n") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["config.yml"]


@pytest.mark.processes
@pytest.mark.slow
def test_a_custom_strategy_is_called_once_per_sweep_and_its_points_are_frozen(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import SCRIPT, script_env

    (tmp_path / "config.yml").write_text(CUSTOM.format(function="counted_random"))
    calls = tmp_path / "calls"
    env = {**script_env(), "DESIGN_CALLS": str(calls)}

    def cli(*args):
        result = subprocess.run([sys.executable, SCRIPT, "Deterministic", "config.yml", *args], cwd=tmp_path,
                                env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result

    cli("--list")
    assert not (tmp_path / "out").exists()  # a preview writes nothing (and may call the function)
    calls.write_text("")
    cli("-j", "0")
    first = load_results(tmp_path / "out").groupby("experiment").first()
    cli("-n", "2")  # resume on another backend: the frozen points, no new call
    cli()
    assert calls.read_text() == "." and (tmp_path / "out" / "designed" / ".cluster_work_points.json").exists()
    frame = load_results(tmp_path / "out")
    assert len(frame) == 3 * 2 and set(frame.experiment) == {f"designed__sample{i}" for i in range(3)}
    again = frame.groupby("experiment").first()
    assert again.loc[first.index, ["params.step", "params.optimizer.lr"]].equals(
        first[["params.step", "params.optimizer.lr"]])
    os.remove(calls)
