"""The config's YAML is read by libyaml's C parser where PyYAML has it (issue 25): what that must not change.

Every rule the Python parser kept holds with either parser (`reading` runs a check with each: `python` is
PyYAML without libyaml): the line and column in messages, a nesting refused at level 101 however deep the
text goes (in a process of its own, as a user runs it: a C composer recursing 10^6 levels would crash it),
PyYAML's own message for a text libyaml refuses, the same values for every config the project ships.
"""
import math
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, SCRIPT, script_env

from cluster_work.config import MAX_DEPTH, loader_class, loading, parse_documents
from cluster_work.errors import ConfigError
from cluster_work.overrides import parse as parse_overrides

HEAD = "name: a\nrepetitions: 1\niterations: 1\npath: out\n"  # 4 lines: what follows starts on line 5
WITH_LIBYAML = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML was built without libyaml")


@pytest.fixture(params=[pytest.param("libyaml", marks=WITH_LIBYAML), "python"])
def reading(request, monkeypatch):
    """Each parser in turn: `python` as where PyYAML has no libyaml (its Python parser reads everything)."""
    if request.param == "python":
        monkeypatch.setattr(loading, "_LOADERS", loading._LOADERS[-1:])
    return request.param


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as error:
        parse_documents(text, "c.yml")
    message = str(error.value)
    assert "\n" not in message
    return message


@WITH_LIBYAML
def test_configs_are_read_by_libyaml():
    """A tab after `key:` is YAML that only libyaml reads (PyYAML's scanner refuses it)."""
    assert issubclass(loader_class(), yaml._yaml.CParser)
    [document] = parse_documents(HEAD + "params:\n  lr:\t1e-3\n", "c.yml")
    assert document["params"] == {"lr": 0.001}
    with pytest.raises(yaml.YAMLError):
        yaml.load("lr:\t1\n", Loader=yaml.SafeLoader)


@pytest.mark.parametrize("text, message", [
    pytest.param(HEAD + "params: {é: 1, ü: 2, é: 3}\n",
                 "invalid YAML (line 5, column 22): duplicate key 'é' (first on line 5)", id="duplicate-key-in-flow"),
    pytest.param(HEAD + "params:\n  lr: 1\n  µ: 2\n  lr: 3\n",
                 "invalid YAML (line 8, column 3): duplicate key 'lr' (first on line 6)", id="duplicate-key-in-block"),
    pytest.param(HEAD + "params: {ß: 1, env: !nope 3}\n",
                 "invalid YAML (line 5, column 21): could not determine a constructor for the tag '!nope'",
                 id="unknown-tag"),
    pytest.param(HEAD + "params: {x: !!python/object/apply:os.system [echo]}\n",
                 "invalid YAML (line 5, column 13): could not determine a constructor for the tag "
                 "'tag:yaml.org,2002:python/object/apply:os.system'", id="python-tag"),
    pytest.param("x: 1\n---\n" + HEAD + "params: {deep: " + "[" * 200 + "]" * 200 + "}\n",
                 f"document 2 nests deeper than {MAX_DEPTH} levels (line 7)", id="too-deep"),
    pytest.param(HEAD + "params:\n  deep:\n" + "".join(" " * (4 + i) + "-\n" for i in range(0, 300, 2))
                 + " " * 304 + "x\n",
                 f"document 1 nests deeper than {MAX_DEPTH} levels (line 105)", id="too-deep-in-block-style"),
    pytest.param(HEAD + "params:\n  deep: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "\n",
                 f"document 1 nests deeper than {MAX_DEPTH} levels (line 6)", id="a-value-one-level-too-deep"),
    pytest.param(HEAD + "a: &a " + "[" * 60 + "]" * 60 + "\nparams: {b: " + "[" * 60 + "*a" + "]" * 60 + "}\n",
                 f"document 1 nests deeper than {MAX_DEPTH} levels (line 6)", id="too-deep-through-an-alias"),
    pytest.param(HEAD + "params: &p\n  self: *p\n", "document 1 holds an alias that contains itself (line 5)",
                 id="alias-inside-itself"),
    pytest.param(HEAD + "a: &a [" + ", ".join(["x"] * 10) + "]\n"
                 + "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcde", "bcdef")),
                 "document 1 expands to more than 1,000,000 values (through aliases?)", id="alias-bomb"),
])
def test_refusals_name_the_line_and_column_with_either_parser(reading, text, message):
    assert refusal(text) == f"c.yml: {message}"


def test_a_nesting_within_the_limit_is_read(reading):
    [document] = parse_documents(HEAD + "params:\n  deep: " + "[" * (MAX_DEPTH - 3) + "1" + "]" * (MAX_DEPTH - 3)
                                 + "\n", "c.yml")
    depth, value = 0, document["params"]["deep"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert (depth, value) == (MAX_DEPTH - 3, 1)


@pytest.mark.parametrize("text", [
    pytest.param("name: a\n  b: [\n", id="indented-after-a-value"),
    pytest.param(HEAD + "params: {a: [1, 2}\n", id="unclosed-list"),
    pytest.param(HEAD + "params:\n  x: 'unterminated\n", id="unterminated-quote"),
    pytest.param(HEAD + "params:\n  x: |\n   a\n \tb\n", id="tab-in-a-block-scalar's-indentation"),
    pytest.param(HEAD + "params:\n  x:\n  - !!str, xxx\n", id="tag-before-a-comma"),
    pytest.param(HEAD + "params: {x: \"\\udd00\"}\n", id="lone-surrogate-escape"),
    pytest.param(HEAD + "params: {x: 1\x07}\n", id="control-character"),
])
def test_yaml_libyaml_refuses_gets_pyyamls_own_answer(text):
    """libyaml refuses each of these; PyYAML's Python parser reads the text again, so a config PyYAML took
    reads as it did, and one it refuses gets its message, line and column (not libyaml's)."""
    if yaml.__with_libyaml__:
        with pytest.raises(yaml.YAMLError):
            list(yaml.load_all(text, Loader=yaml.CSafeLoader))
    try:
        expected = [d for d in yaml.load_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.YAMLError as python:
        mark = getattr(python, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(python, "problem", None) or str(python).splitlines()[0]
        assert refusal(text) == f"c.yml: invalid YAML{where}: {problem}"
    else:
        assert parse_documents(text, "c.yml") == expected


def test_a_byte_order_mark_past_the_start_reads_as_pyyaml_reads_it():
    """libyaml reads a text of comments with a byte order mark inside as no document, PyYAML as a string."""
    text = "# a config\n\ufeff# continued\n"
    assert parse_documents(text, "c.yml") == list(yaml.load_all(text, Loader=yaml.SafeLoader)) == ["\ufeff# continued"]


@WITH_LIBYAML
def test_a_bare_tag_on_no_value_reads_as_the_empty_string_as_the_spec_says():
    """The one reading that differs from PyYAML's (see the README): `x: !` is '', not None; `! 12` is 12."""
    [document] = parse_documents(HEAD + "params:\n  x: !\n  y: ! 12\n", "c.yml")
    assert document["params"] == {"x": "", "y": 12}


def shipped_configs() -> list:
    """Every YAML config the project ships: the examples, the test data, the README's YAML blocks."""
    paths = sorted([*ROOT.glob("examples/*.yml"), *(ROOT / "tests" / "data").rglob("*.yml")])
    readme = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return ([pytest.param(path.read_text(), id=str(path.relative_to(ROOT))) for path in paths]
            + [pytest.param(block, id=f"README-block-{number}") for number, block in enumerate(readme)])


TRICKY = [  # YAML where libyaml's marks or code paths differ from PyYAML's, though not their values
    "{a: , b: }\n", "? x\n: y\n", "base: &b {x: 1}\nderived: {<<: *b, y: 2}\n", "a: 1\n...\n---\nb: 2\n",
    "text: |\n  line\n   more\nfolded: >-\n  a\n  b\n", "a: 1\r\nb: [2, 3]\r\n", "a: b\x85c: d\n", "ü: é\n😀: [1]\n",
    'q: "\\t\\u00e9\\x41"\n', "t: 2001-12-14t21:59:43.10-05:00\nd: 2002-12-14\n", "s: !!set {a, b}\n",
    "o: !!omap [a: 1, b: 2]\n", "bin: !!binary aGVsbG8=\n", "v: [.inf, -.Inf, .nan, 0x1F, 0o17, 1_000, 1e-3, +5]\n",
    "v: [yes, No, on, ~, null, '', \"\"]\n", "%YAML 1.1\n---\na: 1\n", "- - - 1\n  - 2\n- x\n",
    "a: !local {k: 1}\n", "'quoted key': 1\n\"k2\": 2\n",
]


def plain(value):  # NaN equal to itself, for comparing readings
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {repr(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def documents(text: str, python: bool) -> list:
    loader = loader_class(keep_unknown_tags=True, python=python)(text)
    try:
        found = []
        while loader.check_node():
            found.append(loader.construct_document(loader.get_node()))
        return found
    finally:
        loader.dispose()


@WITH_LIBYAML
@pytest.mark.parametrize("text", shipped_configs() + [pytest.param(text, id=f"tricky-{n}")
                                                      for n, text in enumerate(TRICKY)])
def test_libyaml_and_pyyaml_read_every_shipped_config_alike(text):
    assert plain(documents(text, python=False)) == plain(documents(text, python=True))


def test_an_override_that_no_parser_can_encode_is_one_line(reading):
    """A command line argument that is no UTF-8 (Python keeps its bytes as lone surrogates), which libyaml
    cannot even be given: the Python parser's refusal, one line."""
    with pytest.raises(ConfigError, match=r"override 'params.x=\\udcff': the value is no YAML value: "
                                          "unacceptable character"):
        parse_overrides(["params.x=\udcff"], "cmd")


def hostile(kind: str, depth: int) -> str:
    deep = {"flow-lists": "[" * depth + "]" * depth, "unclosed-flow-lists": "[" * depth,
            "flow-mappings": "{a: " * depth + "1" + "}" * depth,
            "block-lists-on-one-line": "\n    " + "- " * depth + "1",
            "block-lists-and-flow-mappings": "\n    " + "- " * (depth // 2) + "{a: [" * (depth // 2),
            "block-mappings": "".join(f"\n{' ' * (4 + i)}a:" for i in range(min(depth, 4000))) + " 1"}[kind]
    return "name: DEFAULT\nrepetitions: 1\niterations: 1\npath: out\n---\nname: a\nparams:\n  deep: " + deep + "\n"


@pytest.mark.processes
@pytest.mark.parametrize("depth", [500, 10**6])  # 500: under libyaml's own limit (1,000); 10^6: far past it
@pytest.mark.parametrize("kind", ["flow-lists", "unclosed-flow-lists", "flow-mappings", "block-lists-on-one-line",
                                  "block-lists-and-flow-mappings", "block-mappings"])
def test_a_config_nested_a_million_levels_deep_is_one_line_as_a_user_runs_it(tmp_path, kind, depth):
    """However deep (block mappings: 4,000 levels, 8 MB), flow or block style, lists or mappings: one line naming
    the document and the line where level 101 begins, exit 2, nothing written; no crash (a C composer's
    recursion, where libyaml has no limit of its own), no hang (a scanner quadratic in the depth)."""
    (tmp_path / "config.yml").write_text(hostile(kind, depth))
    result = subprocess.run([sys.executable, SCRIPT, "Deterministic", "config.yml"], cwd=tmp_path, env=script_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.fullmatch(rf"error: config\.yml: document 2 nests deeper than {MAX_DEPTH} levels \(line \d+\)",
                        lines[0]), lines
    assert [p.name for p in tmp_path.iterdir()] == ["config.yml"]
