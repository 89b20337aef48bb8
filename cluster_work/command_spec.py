"""What a command experiment's config says: its words, its files and their placeholders (pure logic).

    command: "{config_dir}/solver --alpha {params.alpha} --seed {seed} --resume-from {start}"
    files: {solver.in.template: solver.in}

A placeholder is `{name}` where name starts with a letter or `_` and holds no braces or white space:
`{params.<dotted name>}` (a parameter, or a mapping of them as JSON), `{rep}`, `{seed}` (the repetition's),
`{iterations}`, `{start}` (the first iteration to run), `{rep_dir}` (the repetition's folder, absolute),
`{experiment}` (the expanded name) and `{config_dir}` (the config file's folder, absolute). Any other brace
is text (`{"a": 1}` in a JSON template stays), and `{{name}}` is the text `{name}` (`${{HOME}}` in a shell
script). An unknown name is an error, found before anything runs.

Values are text as a YAML or JSON reader would write them: strings as they are, `true`/`false`, numbers
as Python prints them, lists, mappings and null as JSON. A string command is split into words like a shell
line (shlex) before its placeholders are filled, so a value is always one word, spaces and quotes included;
a list command gives its words as they are. No shell runs it.

The program (the first word), when it is a relative path with a `/` (`./solver`, `bin/solver`), is taken
from the config file's folder, as the `files` templates are; a bare name (`python3`, `mpiexec`) is
looked up on PATH. Every other word is left as it is: a relative path there is relative to the
repetition's folder, where the command runs.
"""
from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .store import LOG_FILE, RESULTS_FILE, STATUS_FILE

PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][^{}\s]*)\}\}|\{([A-Za-z_][^{}\s]*)\}")
FIXED_NAMES = ("rep", "seed", "iterations", "start", "rep_dir", "experiment", "config_dir")
# the names cluster_work gives files in a repetition's folder (`log/rep_NN/`), which a `files` copy may not take, and
# why: a new repetition's rows and status are in `log/rep_NN.jsonl`, but one of an earlier version's sweep keeps its
# results.jsonl and status.json in the folder, and resumes there; a copy of either name in a new repetition's folder
# would have it taken for such a one (`RepetitionStore.in_folder`), and `-d` deletes a folder that holds either
RESERVED_FILES = {
    LOG_FILE: "the repetition's log",
    RESULTS_FILE: "the rows of a repetition of an earlier version's layout",
    STATUS_FILE: "the status of a repetition of an earlier version's layout",
}
MAX_NAMES_SHOWN = 12


class SpecError(Exception):
    """A problem with one key of the config (`command` or `files.<template>`), told in one line."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def names_in(text: str) -> list[str]:
    """The placeholder names `text` uses, in order (not the escaped `{{name}}`)."""
    return [match.group(2) for match in PLACEHOLDER.finditer(text) if match.group(2)]


def fill(text: str, values: Mapping[str, str]) -> str:
    """`text` with its placeholders replaced by `values`; KeyError names an unknown one."""
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        return values[match.group(2)]

    return PLACEHOLDER.sub(replace, text)


def format_value(value: Any) -> str:
    """A parameter's text in a command or file: YAML/JSON spelling, which every language reads."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, default=str)


def param_values(params: Mapping[str, Any], prefix: str = "params") -> dict[str, Any]:
    """Every `params.<dotted name>` a placeholder may take: leaves and the mappings above them."""
    values: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}"
        values[name] = value
        if isinstance(value, Mapping):
            values.update(param_values(value, name))
    return values


def known_names(params: Mapping[str, Any]) -> list[str]:
    return [*FIXED_NAMES, *param_values(params)]


@dataclass(frozen=True)
class CommandSpec:
    """A command experiment's `command` and `files`, read from its config (placeholders unfilled).

    `files` pairs each template's path as written (relative to `config_dir`) with its copy's path inside the
    repetition's folder."""

    words: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    config_dir: str

    @classmethod
    def of(cls, config: Mapping[str, Any], config_dir: str) -> CommandSpec:
        """Read the spec; SpecError on a missing, malformed or unsafe `command` or `files`."""
        return cls(_words(config.get("command")), tuple(_files(config.get("files"))), config_dir)

    def templates(self) -> Iterator[tuple[str, str, str]]:
        """(config key, template path, template text) of each file; SpecError if one cannot be read."""
        for name, _ in self.files:
            key, source = f"files.{name}", os.path.join(self.config_dir, name)
            try:
                with open(source, encoding="utf-8") as handle:
                    yield key, source, handle.read()
            except UnicodeDecodeError:
                raise SpecError(key, f"{source} is not UTF-8 text") from None
            except OSError as exc:
                raise SpecError(key, f"cannot read {source}: {exc.strerror}") from None

    def takes_start(self) -> bool:
        """Whether the command is told where to resume (`{start}` in a word or a file)."""
        return any("start" in names_in(w) for w in self.words) or any(
            "start" in names_in(text) for _, _, text in self.templates())

    def check(self, params: Mapping[str, Any]) -> None:
        """SpecError for the first unknown placeholder, or a relative program that does not exist."""
        known = known_names(params)
        texts = [("command", word) for word in self.words] + [(key, text) for key, _, text in self.templates()]
        for key, text in texts:
            for name in names_in(text):
                if name not in known:
                    shown = ", ".join("{" + n + "}" for n in known[:MAX_NAMES_SHOWN])
                    more = f" and {len(known) - MAX_NAMES_SHOWN} more" if len(known) > MAX_NAMES_SHOWN else ""
                    raise SpecError(key, f"unknown placeholder {{{name}}} (known: {shown}{more})")
        program = self.words[0]
        resolved = self._program(program)
        if not names_in(program) and resolved != program and not os.path.exists(resolved):
            raise SpecError("command", f"no program {program!r} in {self.config_dir} (a relative program is "
                                       "taken from the config file's folder)")

    def argv(self, values: Mapping[str, str]) -> list[str]:
        """The command's arguments with `values` filled in (KeyError: an unknown placeholder)."""
        words = [fill(word, values) for word in self.words]
        return [self._program(words[0]), *words[1:]]

    def filled_files(self, values: Mapping[str, str]) -> list[tuple[str, str]]:
        """(path inside the repetition's folder, filled text) of each file."""
        texts = [text for _, _, text in self.templates()]
        return [(target, fill(text, values)) for (_, target), text in zip(self.files, texts)]

    def _program(self, word: str) -> str:
        return os.path.normpath(os.path.join(self.config_dir, word)) if "/" in word and not os.path.isabs(word) \
            else word


def _words(command: Any) -> tuple[str, ...]:
    if command is None:
        raise SpecError("command", "is missing: `python -m cluster_work` runs experiments that name the command "
                                   "to run (e.g. command: \"./solver --seed {seed}\")")
    if isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise SpecError("command", f"cannot be split into words: {exc}") from None
    elif isinstance(command, list) and all(isinstance(w, (str, int, float)) and not isinstance(w, bool)
                                           for w in command):
        words = [str(word) for word in command]
    else:
        raise SpecError("command", f"must be a command line or a list of words, got {command!r}")
    if not words:
        raise SpecError("command", "is empty")
    return tuple(words)


def _files(files: Any) -> Iterator[tuple[str, str]]:
    if files is None:
        return
    if not isinstance(files, Mapping):
        raise SpecError("files", f"must map templates to file names, got {files!r}")
    targets: set[str] = set()
    for source, target in files.items():
        key = f"files.{source}"
        if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
            raise SpecError(key, f"must map a template's path to a file name, got {source!r}: {target!r}")
        normal = os.path.normpath(target)
        if os.path.isabs(normal) or normal == os.curdir or normal.split(os.sep)[0] == os.pardir:
            raise SpecError(key, f"the copy {target!r} must be a path inside the repetition's folder")
        if normal in RESERVED_FILES:
            raise SpecError(key, f"the copy {target!r} takes the name of cluster_work's own file in the repetition's "
                                 f"folder ({RESERVED_FILES[normal]}): name it otherwise")
        if normal in targets:
            raise SpecError(key, f"two templates are copied to {target!r}")
        targets.add(normal)
        yield source, normal
