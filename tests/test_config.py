"""Config loading, validation and expansion: pure functions, checked as tables."""
import pytest

from cluster_work.config import load_config, merge_and_validate, parse_documents
from cluster_work.errors import ConfigError
from cluster_work.expansion import expand_all, expanded_name, shorten_param

BASE = "name: DEFAULT\nrepetitions: 2\niterations: 3\npath: out\n---\n"


def expand(text, defaults=None, warn=None):
    warnings = [] if warn is None else warn
    docs = merge_and_validate(parse_documents(text, "c.yml"), "c.yml", warnings.append)
    return expand_all(docs, defaults, "c.yml", warnings.append)


def test_scientific_notation_is_a_float():
    [experiment] = expand(BASE + "name: a\nparams: {lr: 1e-3, big: 1E5, neg: -2.5e+2}\n")
    assert experiment.params == {"lr": 0.001, "big": 100000.0, "neg": -250.0}


def test_default_document_is_deep_merged_under_each_experiment():
    text = ("name: DEFAULT\nrepetitions: 2\niterations: 3\npath: out\nparams: {opt: {lr: 1, bs: 2}}\n---\n"
            "name: a\nparams: {opt: {lr: 5}}\n---\nname: b\niterations: 7\n")
    a, b = expand(text)
    assert a.params == {"opt": {"lr": 5, "bs": 2}} and a.iterations == 3
    assert b.params == {"opt": {"lr": 1, "bs": 2}} and b.iterations == 7


def test_params_are_merged_over_default_params_including_numpy():
    import numpy as np
    [experiment] = expand(BASE + "name: a\nparams: {b: {c: 2}}\n", {"a": np.zeros(2), "b": {"c": 1, "d": 4}})
    assert experiment.params["b"] == {"c": 2, "d": 4}
    assert list(experiment.params["a"]) == [0, 0]


@pytest.mark.parametrize("body, expected", [
    pytest.param("grid: {a: [1, 2], b: [3, 4]}", [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3},
                                                   {"a": 2, "b": 4}], id="grid-is-cartesian-product"),
    pytest.param("list: {a: [1, 2], b: [3, 4]}", [{"a": 1, "b": 3}, {"a": 2, "b": 4}], id="list-is-zip"),
    pytest.param("grid: {a: [1, 2]}\nlist: {b: [3, 4], c: [5, 6]}",
                 [{"a": 1, "b": 3, "c": 5}, {"a": 1, "b": 4, "c": 6}, {"a": 2, "b": 3, "c": 5},
                  {"a": 2, "b": 4, "c": 6}], id="grid-times-list"),
    pytest.param("grid: {opt: {lr: [1, 2]}}", [{"opt": {"lr": 1}}, {"opt": {"lr": 2}}], id="nested-params"),
])
def test_expansion(body, expected):
    assert [e.params for e in expand(BASE + "name: a\n" + body + "\n")] == expected


def test_expanded_names_are_short_readable_and_stable():
    names = [e.name for e in expand(BASE + "name: fit\ngrid: {learning_rate: [0.01], batch_size: [32], "
                                           "optimizer: {momentum: [0.9]}}\n")]
    assert names == ["fit__lr0.01_bs32_opt.mom0.9"]
    assert names == [e.name for e in expand(BASE + "name: fit\ngrid: {learning_rate: [0.01], batch_size: [32], "
                                                   "optimizer: {momentum: [0.9]}}\n")]


def test_colliding_short_names_fall_back_to_full_names():
    names = [e.name for e in expand(BASE + "name: a\ngrid: {learning_rate: [1], long_rate: [2]}\n")]
    assert names == ["a__learning_rate1_long_rate2"]


def test_names_are_filesystem_safe_and_bounded():
    [experiment] = expand(BASE + "name: a\ngrid: {p: ['x/../y z']}\n")
    assert "/" not in experiment.name and " " not in experiment.name
    long = expanded_name("a", {"p": "v" * 500}, {"p": "p"})
    assert len(long) <= 150
    assert long != expanded_name("a", {"p": "v" * 499}, {"p": "p"})


def test_short_param():
    assert shorten_param("optimizer.learning_rate") == "opt.lr"
    assert shorten_param("width") == "wid"


@pytest.mark.parametrize("text, fragment", [
    pytest.param("", "no experiment documents", id="empty-file"),
    pytest.param("name: a\n  b: [\n", "invalid YAML (line", id="syntax-error"),
    pytest.param("- 1\n- 2\n", "document 1 must be a mapping", id="not-a-mapping"),
    pytest.param("name: a\nrepetitions: 1\npath: x\n", "experiment 'a': 'iterations': required key is missing",
                 id="missing-key"),
    pytest.param(BASE + "name: a\nrepetitions: ten\n", "experiment 'a': 'repetitions': must be a positive integer",
                 id="mistyped-key"),
    pytest.param(BASE + "name: a\niterations: 0\n", "'iterations': must be a positive integer", id="zero"),
    pytest.param(BASE + "name: a\ngrid: {x: 3}\n", "'grid.x': must be a non-empty list", id="grid-not-list"),
    pytest.param(BASE + "name: a\nlist: [1, 2]\n", "'list': must be a non-empty mapping", id="list-not-mapping"),
    pytest.param(BASE + "name: a\nlist: {x: [1, 2], y: [1]}\n", "all lists must have the same length",
                 id="list-lengths"),
    pytest.param(BASE + "name: a\n---\nname: a\n", "duplicate experiment name", id="duplicate-name"),
    pytest.param(BASE + "name: ../up\n", "'name': must be a non-empty name", id="name-escapes-path"),
    pytest.param(BASE + "name: a/b\n", "'name': must be a non-empty name", id="name-with-slash"),
    pytest.param(BASE + "name: a\nparams: 3\n", "'params': must be a mapping", id="params-not-mapping"),
    pytest.param(BASE + "name: a\ngrid: {x: [1]}\nlist: {x: [2]}\n", "appear under both", id="grid-and-list"),
    pytest.param("name: DEFAULT\nrepetitions: 1\n", "DEFAULT document but no experiment", id="only-default"),
])
def test_bad_configs_give_one_readable_error_naming_file_and_key(text, fragment):
    with pytest.raises(ConfigError) as error:
        expand(text)
    message = str(error.value)
    assert message.startswith("c.yml") and fragment in message and "\n" not in message


def test_unknown_params_and_keys_warn_but_pass():
    warnings = []
    expand(BASE + "name: a\nparams: {lr: 1, lrr: 2}\nextra_key: 1\n", {"lr": 0}, warnings)
    assert any("'lrr'" in w for w in warnings) and any("'extra_key'" in w for w in warnings)
    assert not any("'lr'" in w for w in warnings)


def test_load_config_names_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yml: cannot read"):
        load_config(tmp_path / "nope.yml")
