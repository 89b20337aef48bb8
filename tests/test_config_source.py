"""The config's source (`vocabulary.ConfigSource`): made once where the file is read (`load_config`) and
carried by the loaded documents to expansion and to the design call, so that a message from deep down
names the file as the user named it, without every caller handing its name on again."""
import pytest

from cluster_work import design
from cluster_work.config import load_config
from cluster_work.errors import ConfigError
from cluster_work.expansion import expand_all
from cluster_work.store import write_frozen_points
from cluster_work.vocabulary import ConfigSource

HEAD = "name: DEFAULT\nrepetitions: 1\niterations: 1\npath: out\n---\n"
NAME = "configs/study.yml"  # relative, as typed: messages name it so, never as an absolute path


@pytest.fixture
def config(tmp_path, monkeypatch):
    """Write a config's body under NAME in a fresh working folder; its path as the user would type it."""
    monkeypatch.chdir(tmp_path)

    def write(body: str) -> str:
        (tmp_path / "configs").mkdir(exist_ok=True)
        (tmp_path / NAME).write_text(HEAD + body)
        return NAME
    return write


def test_the_loaded_documents_carry_the_file_as_named_and_the_text_read(config):
    documents = load_config(config("name: a\n"))
    assert documents.source == ConfigSource(NAME) and str(documents.source) == NAME
    assert documents.source.text == HEAD + "name: a\n"


@pytest.mark.parametrize("body, message", [
    ("name: a\ngrid: {lr: [1, 1]}\n",
     f"{NAME}: experiment 'a': 'grid': two parameter sets are the same (a__l1): a grid or list repeats a value"),
    ("name: a\n---\nname: b\npath: out/a\n",
     f"{NAME}: experiment 'b': 'name': its folder"),
    ("name: a\ncustom: {function: 'designs:raises', samples: 2, params: {lr: [1, 2]}}\n",
     f"{NAME}: experiment 'a': 'custom.function': designs:raises raised RuntimeError: the design failed"),
], ids=["repeated-grid-value", "nested-folders", "design-function-raises"])
def test_an_error_from_deep_in_expansion_names_the_file_it_was_loaded_from(config, body, message):
    documents = load_config(config(body))
    with pytest.raises(ConfigError) as caught:
        expand_all(documents, custom_points=design.points)  # no source handed on: the documents carry it
    assert str(caught.value).startswith(message)


def test_a_warning_from_expansion_names_the_file(config):
    warnings: list[str] = []
    expand_all(load_config(config("name: a\nparams: {lr2: 1}\n")), {"lr": 1}, warn=warnings.append)
    assert warnings == [f"{NAME}: experiment 'a': parameter 'lr2' is not among the experiment's _default_params "
                        "(a typo?)"]


def test_expansion_reads_no_frozen_points_its_caller_hands_them_in(config):
    custom = "custom: {function: 'designs:diagonal', samples: 2, params: {lr: [1, 2]}}\n"
    documents = load_config(config(f"name: a\n{custom}"))
    with pytest.raises(ValueError, match="'a' has a 'custom:' block: pass custom_points"):
        expand_all(documents)  # never a call of the function in place of a running sweep's frozen points
    write_frozen_points("out/a", documents[0]["custom"], [{("lr",): 2}, {("lr",): 2}])
    expansion = expand_all(documents, custom_points=design.points)
    assert [e.params for e in expansion] == [{"lr": 2}, {"lr": 2}] and expansion.documents[0].custom_frozen
