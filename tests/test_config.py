"""Config loading, validation and expansion: pure functions, checked as tables."""
import re

import pytest
from conftest import ROOT

from cluster_work.config import KNOWN_KEYS, load_config, merge_and_validate, parse_documents
from cluster_work.errors import ConfigError
from cluster_work.expansion import expand_all, shorten_param

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


def test_expanded_names_and_folders_are_the_originals():
    [experiment] = expand(BASE + "name: fit\ngrid: {learning_rate: [0.01], batch_size: [32], "
                                 "optimizer: {momentum: [0.9]}, tau: [0.5]}\n")
    assert experiment.name == "fit__lr0.01_bs32_opt.m0.9_t0.5"
    assert experiment.path == "out/fit/lr0.01_bs32_opt.m0.9_t0.5"
    assert experiment.config["log_path"] == "out/fit/lr0.01_bs32_opt.m0.9_t0.5/log"
    assert experiment.config["experiment_name"] == "fit" and experiment.config["_config_path"] == "out"
    assert experiment.config["_experiment_path"] == "out/fit"
    [plain] = expand(BASE + "name: plain\n")
    assert plain.name == "plain" and plain.path == "out/plain"


def test_values_the_originals_names_confuse_get_distinct_names_and_a_warning():
    warnings = []
    names = [e.name for e in expand(BASE + "name: a\ngrid: {x: [1.0, '1.0', 'a b', 'ab']}\n", warn=warnings)]
    assert len(set(names)) == 4
    assert all(n.startswith("a__x1.0-") for n in names[:2]) and all(n.startswith("a__xab-") for n in names[2:])
    assert len(warnings) == 1 and "'a__x1.0' ->" in warnings[0]


def test_names_are_filesystem_safe_and_bounded():
    [experiment] = expand(BASE + "name: a\ngrid: {p: ['x/../y z']}\n")
    assert "/" not in experiment.params_part and experiment.path == "out/a/px%2F..%2Fyz"
    [long] = expand(BASE + "name: a\ngrid: {p: ['" + "v" * 500 + "']}\n")
    assert len(long.params_part) <= 200


def test_a_key_with_a_dot_is_one_key_as_in_the_original():
    first, *_ = expand(BASE + "name: a\ngrid: {a.b: [1, 2]}\n")
    assert first.params == {"a.b": 1}
    both = expand(BASE + "name: a\ngrid: {a: {b: [1, 2]}, a.b: [3, 4]}\n")
    assert [e.params for e in both][0] == {"a": {"b": 1}, "a.b": 3} and len({e.name for e in both}) == 4


def test_short_param():
    assert shorten_param("optimizer.learning_rate") == "opt.lr"
    assert shorten_param("width") == "w"
    assert shorten_param("tau") == "t"


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
    pytest.param(BASE + "name: a\n---\nname: Default\n", "only the first document may be named",
                 id="late-default"),
    pytest.param(BASE + "name: ../up\n", "'name': must be a non-empty name", id="name-escapes-path"),
    pytest.param(BASE + "name: a/b\n", "'name': must be a non-empty name", id="name-with-slash"),
    pytest.param(BASE + "name: \"a\\n\"\n", "'name': must be a non-empty name", id="name-with-newline"),
    pytest.param(BASE + "name: " + "a" * 300 + "\n", "'name': is 300 characters long", id="long-name"),
    pytest.param(BASE + "name: a\npath: " + "p" * 300 + "\n", "'path': has a folder name of 300", id="long-path"),
    pytest.param(BASE + "name: a\npath: \"x\\0y\"\n", "'path': must not hold control", id="nul-in-path"),
    pytest.param(BASE + "name: a\nname: b\n", "duplicate key 'name'", id="duplicate-key"),
    pytest.param(BASE + "name: a\nparams: {x: 1, x: 2}\n", "duplicate key 'x'", id="duplicate-param"),
    pytest.param(BASE + "iterations: 4\n", "needs its own 'name'", id="document-without-name"),
    pytest.param(BASE + "name: a\nrepetitions: 1000000000000\n", "'repetitions': must be at most",
                 id="too-many-repetitions"),
    pytest.param(BASE + "name: a\ngrid: {x: [1, 1]}\n", "two parameter sets are the same", id="repeated-value"),
    pytest.param(BASE + "name: a\nparams: !!python/object/apply:os.system [echo]\n", "could not determine a "
                 "constructor", id="python-tag"),
    pytest.param("[" * 3000, "nests deeper", id="deep-nesting"),
    pytest.param(BASE + "name: a\nparams: &a [*a]\n", "contains itself", id="recursive-alias"),
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


# --- a key one slip away from a reserved one is an error; the user's own keys pass ------------------------

@pytest.mark.parametrize("key, meant", [
    pytest.param("gird", "grid", id="swapped-letters"),
    pytest.param("grd", "grid", id="dropped-letter"),
    pytest.param("Grid", "grid", id="capital"),
    pytest.param("lsit", "list", id="list-swapped"),
    pytest.param("parms", "params", id="params-dropped-letter"),
    pytest.param("param", "params", id="params-singular"),
    pytest.param("repititions", "repetitions", id="two-edits-in-a-long-key"),
    pytest.param("iteration", "iterations", id="iterations-singular"),
    pytest.param("randon", "random", id="random-substitution"),
    pytest.param("ster", "steer", id="steer-dropped-letter"),
    pytest.param("ensamble", "ensemble", id="ensemble-misspelt"),
    pytest.param("log-path", "log_path", id="dash-for-underscore"),
    pytest.param("logpath", "log_path", id="no-underscore"),
    pytest.param("nmae", "name", id="name-swapped"),
    pytest.param("pth", "path", id="path-dropped-letter"),
    pytest.param("replica", "replicas", id="the-alias-too"),
])
def test_a_key_that_looks_like_a_typo_of_a_reserved_key_is_an_error(key, meant):
    text = BASE + f"name: a\n{key}: {{x: [1, 2]}}\n"
    with pytest.raises(ConfigError) as error:
        expand(text)
    assert str(error.value) == (f"c.yml: experiment 'a': '{key}': unknown key in document 2; did you mean "
                                f"'{meant}'? (to keep a key of this name, list it: keep_keys: [{key}])")


@pytest.mark.parametrize("known", sorted(KNOWN_KEYS))
def test_every_reserved_key_is_guarded_against_a_swap_and_a_dropped_letter(known):
    """Derived from KNOWN_KEYS, so a key added there later is guarded as well."""
    for typo in {known[:-2] + known[-1] + known[-2], known[:-1]} - {known}:
        with pytest.raises(ConfigError, match=f"'{typo}': unknown key in document 1; did you mean '{known}'"):
            merge_and_validate([{"name": "a", "repetitions": 1, "iterations": 1, "path": "out", typo: 1}], "c.yml")


# keys of the user's own in configs of the original ClusterWork's family (and words one letter from a
# reserved one): passed to the experiment with a warning, as the original passed them
USER_KEYS = ["gpu", "game", "grad", "last", "same", "tiles", "seed", "device", "env", "comment", "wandb",
             "import_path", "sbatch_args", "num_parallel_jobs", "partition", "job-name", "cpus-per-task",
             "mem-per-cpu", "time", "venv", "slurm_log", "experiment_copy_dst", "reps", "iters", "notes"]


@pytest.mark.parametrize("key", USER_KEYS)
def test_the_users_own_keys_still_pass_with_a_warning(key):
    warnings = []
    [experiment] = expand(BASE + f"name: a\n{key}: 1\n", warn=warnings)
    assert experiment.config[key] == 1
    assert [w for w in warnings if f"unknown key '{key}'" in w], warnings


@pytest.mark.parametrize("text", [
    pytest.param(BASE + "name: a\nkeep_keys: [gird]\ngird: 1\n", id="in-the-document"),
    pytest.param("name: DEFAULT\nrepetitions: 2\niterations: 3\npath: out\nkeep_keys: [gird]\ngird: 1\n---\n"
                 "name: a\n", id="in-DEFAULT-for-every-document"),
])
def test_keep_keys_keeps_a_key_of_such_a_name_on_purpose(text):
    warnings = []
    [experiment] = expand(text, warn=warnings)
    assert experiment.config["gird"] == 1 and not warnings


def test_keep_keys_must_list_names():
    with pytest.raises(ConfigError, match="'keep_keys': must be a list of key names"):
        expand(BASE + "name: a\nkeep_keys: gird\n")


@pytest.mark.parametrize("text, where", [
    pytest.param(BASE + "name: a\ngrid:\nlr: [1, 2]\n", "'grid': is empty in document 2; were 'lr' meant",
                 id="grid-values-not-indented"),
    pytest.param(BASE + "name: a\nlist:\nlr: [1, 2]\nwd: [3, 4]\n", "'list': is empty in document 2; were 'lr', 'wd'",
                 id="list-values-not-indented"),
    pytest.param(BASE + "name: a\nparams:\n", "'params': is empty in document 2", id="params-with-nothing"),
    pytest.param(BASE + "name: a\nrandom:\n", "'random': is empty in document 2", id="random-with-nothing"),
    pytest.param("name: DEFAULT\nrepetitions: 2\niterations: 3\npath: out\nparams:\nlr: 1\n---\nname: a\n",
                 "experiment 'DEFAULT': 'params': is empty in document 1; were 'lr' meant", id="in-DEFAULT"),
])
def test_an_empty_block_is_an_error(text, where):
    with pytest.raises(ConfigError, match=where):
        expand(text)


def test_load_config_names_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yml: cannot read"):
        load_config(tmp_path / "nope.yml")


def test_the_first_document_named_default_in_any_case_is_the_default():
    [experiment] = expand("name: default\nrepetitions: 2\niterations: 3\npath: out\n---\nname: a\n")
    assert experiment.repetitions == 2


def test_an_alias_bomb_is_refused_at_once():
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = BASE + "name: a\nparams:\n" + "".join(f"  {line}\n" for line in lines)
    assert len(text) < 1024
    with pytest.raises(ConfigError, match="expands to more than"):
        expand(text)


def test_user_yaml_tags_load_like_the_original(tmp_path):
    import yaml

    class EvalEnv(yaml.YAMLObject):
        yaml_tag = "!EvalEnv"

    [experiment] = expand(BASE + "name: a\nparams: {env: !EvalEnv {id: 3}}\n")
    assert isinstance(experiment.params["env"], EvalEnv) and experiment.params["env"].id == 3


@pytest.mark.parametrize("data, fragment", [
    pytest.param(b"name: a\xff\n", "is not UTF-8 text (byte 7: 0xff)", id="latin-1"),
    pytest.param("name: a\n".encode("utf-16"), "is UTF-16 text", id="utf-16"),
    pytest.param(bytes(range(256)), "is not UTF-8 text", id="binary"),
    pytest.param(b"# " + b"x" * (10 * 2**20) + b"\n", "is larger than 10 MiB", id="too-large"),
])
def test_unreadable_files_give_one_line(tmp_path, data, fragment):
    path = tmp_path / "c.yml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert fragment in str(error.value) and "\n" not in str(error.value)


def test_the_readmes_keep_keys_example_loads():
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "keep_keys" in b]
    warnings = []
    [experiment] = expand(block + "repetitions: 1\niterations: 1\npath: out\n---\nname: a\n", warn=warnings)
    assert experiment.config["paths"] == ["a.csv", "b.csv"] and not warnings
    with pytest.raises(ConfigError, match="did you mean 'path'"):
        expand(block.replace("keep_keys", "# keep_keys") + "repetitions: 1\niterations: 1\npath: out\n---\nname: a\n")


@pytest.mark.parametrize("mapping", [
    {}, {"a": 1}, {"a": {"b": 1, "c": {}}, "c.d": 2, 3: {"x": [1]}, "g": None, "h": {"i": {"j": (1, 2)}}},
    {"e": __import__("collections").OrderedDict(f=1, g={"h": True})},
], ids=["empty", "flat", "nested-dotted-empty-int-keys", "a-mapping-not-a-dict"])
def test_flatten_mapping_names_what_flatten_paths_finds(mapping):
    """flatten_mapping flattens on its own (it runs per experiment in load_results): the same names, values and
    order as flatten_paths' key paths made dotted."""
    from cluster_work.config import dotted, flatten_mapping, flatten_paths

    expected = {dotted(path): value for path, value in flatten_paths(mapping).items()}
    assert list(flatten_mapping(mapping).items()) == list(expected.items())
