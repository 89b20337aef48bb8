"""Overrides on the command line, as Hydra writes them: `python exp.py cfg.yml params.lr=0.1 iterations=50`.

One argument per override, after the config (anywhere among the options):

    KEY.PATH=VALUE     set a key the experiment has (`params.<name>` of the class's `_default_params` counts)
    +KEY.PATH=VALUE    add a key it does not have yet (an error if it has it: Hydra's rule)
    ++KEY.PATH=VALUE   set it, adding it if missing
    ~KEY.PATH          delete it

VALUE is read as YAML, as the config file is (`0.1` and `1e-3` floats, `[0.1, 0.01]` a list, `true` a bool,
`"1"` a string; an empty VALUE is the empty string, `null` is None), so `grid.lr=[0.1,0.01]` sweeps from
the command line. A key path is split at its dots; a key that itself holds a dot is still found (the
longest key that matches wins).

Like Hydra's, overrides change the composed config: each experiment document after the DEFAULT document
was merged under it (a DEFAULT key is overridden in every experiment, never in the DEFAULT document alone).
With `-e NAME...` they apply only to the documents those names pick (a base name, or an expanded name
`base__...`); without it, to every experiment document. An unknown key is an error naming the config, the
experiment and the key, with the key it looks like ("did you mean"); so is setting `params.X` where the
document sweeps X (`grid`, `list`, `random` or `custom` would replace the value: override those instead).

The effective config is what the run stores (each experiment's config.yml), what --list shows, and what
--slurm and the resume line repeat; a rerun without the overrides meets changed parameters. Pure logic:
`config.merge_and_validate` calls `Overrides.apply` on each merged document, before validation.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .config import ALIASES, KNOWN_KEYS, deep_merge, dotted, flatten_paths, read_yaml
from .errors import ConfigError, config_error
from .lookalike import lookalike

_KEY_PATH = r"[A-Za-z_][\w-]*(?:\.[\w-]+)*"
_OVERRIDE = re.compile(rf"(?P<op>\+\+|\+|~)?(?P<path>{_KEY_PATH})(?:=(?P<value>.*))?", re.S)
_SWEEPS = (("grid",), ("list",), ("random", "params"), ("custom", "params"))
MAX_KEYS_SHOWN = 12


@dataclass(frozen=True)
class Override:
    """One `KEY.PATH=VALUE`: `op` is "=" (set an existing key), "+" (add), "++" (add or set), "~" (delete)."""

    text: str
    op: str
    path: tuple[str, ...]
    value: Any = None


def is_override(argument: str) -> bool:
    """Whether a command-line word reads as an override (`a.b=1`, `+a=1`, `~a`), not a file or a name."""
    match = _OVERRIDE.fullmatch(argument)
    return match is not None and (match.group("value") is not None) != (match.group("op") == "~")


def split_arguments(arguments: Sequence[str], value_options: Collection[str],
                    assignment_options: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """Take the overrides out of a command line: (the rest, the overrides in order). The first positional
    word is the config, never an override; the word after an option that takes one value is that value
    (`--filter lr=0.1`), the words after an option whose values are assignments themselves
    (`--plot-option n=3 mode=min`) are its own up to the next option, and everything after `--` stays."""
    rest: list[str] = []
    overrides: list[str] = []
    config_seen = taken = ended = listing = False
    for argument in arguments:
        if ended or taken:
            rest.append(argument)
            taken = False
            continue
        if argument == "--":
            ended = True
        elif argument.startswith("-") and argument != "-":
            taken = argument in value_options
            listing = argument in assignment_options
        elif listing:
            pass
        elif not config_seen:
            config_seen = True
        elif is_override(argument):
            overrides.append(argument)
            continue
        rest.append(argument)
    return rest, overrides


def parse(texts: Sequence[str], source: str) -> list[Override]:
    """Read each override; a malformed one (or a VALUE that is no YAML) is a ConfigError naming it."""
    overrides = []
    for text in texts:
        match = _OVERRIDE.fullmatch(text)
        if match is None or not is_override(text):
            raise ConfigError(f"{source}: override {text!r}: write KEY.PATH=VALUE, +KEY.PATH=VALUE (a new key), "
                              "++KEY.PATH=VALUE or ~KEY.PATH (delete)")
        op = match.group("op") or "="
        overrides.append(Override(text, op, tuple(match.group("path").split(".")),
                                  None if op == "~" else _value(match.group("value"), text, source)))
    return overrides


def _value(text: str, override: str, source: str) -> Any:
    if text == "":
        return ""  # Hydra's `key=`: the empty string (`key=null` is None)
    try:
        [value] = read_yaml(text, single=True)  # the config's own (safe) loader
        return value
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: override {override!r}: the value is no YAML value: {problem}") from None


@dataclass(frozen=True)
class Overrides:
    """The command line's overrides, for the documents `-e` picked (`names`; empty: every document)."""

    items: Sequence[Override]
    source: str
    names: Collection[str] = ()
    default_params: Mapping[str, Any] | None = None

    def applies_to(self, base: str) -> bool:
        return not self.names or any(n == base or n.startswith(f"{base}__") for n in self.names)

    def apply(self, experiment: dict[str, Any]) -> dict[str, Any]:
        """`experiment` (a merged document) with the overrides applied in order, if `-e` picked it."""
        name = experiment.get("name")
        if not self.items or not isinstance(name, str) or not self.applies_to(name):
            return experiment
        result = copy.deepcopy(experiment)
        for override in self.items:
            _apply(result, override, self._known(result), self.source)
        return result

    def _known(self, experiment: Mapping[str, Any]) -> Mapping[str, Any]:
        """The keys that exist for `=`: the document's, and `params.<name>` of the class's defaults."""
        if not self.default_params:
            return experiment
        params = experiment.get("params")
        return {**experiment, "params": deep_merge(self.default_params, params if isinstance(params, Mapping) else {})}


def _apply(experiment: dict[str, Any], override: Override, known: Mapping[str, Any], source: str) -> None:
    name = str(experiment["name"])
    keys, found = _resolve(known, override.path)

    def error(message: str, depth: int = len(keys)) -> ConfigError:
        return config_error(source, f"override {override.text}: {message}", experiment=name,
                            key=dotted(keys[:depth]))

    if override.op != "~" and keys[0] == "params":
        swept = _swept_by(experiment, keys[1:])
        if swept:
            raise error(f"is swept by '{swept}', which replaces this value: override '{swept}' instead")
    if override.op in ("=", "~") and found < len(keys):
        raise error(_missing(known, keys, found, override.op))
    if override.op == "+" and found == len(keys):
        raise error(f"exists already: `+` adds a new key; set it with {override.text[1:]}")
    meant = lookalike(keys[0], KNOWN_KEYS | ALIASES) if found == 0 and keys[0] not in KNOWN_KEYS else None
    if meant:  # as in the config file: `+gird.lr=[...]` would run without the grid that was meant
        raise error(f"looks like a typo of the reserved key '{meant}'", 1)
    node: dict[str, Any] = experiment
    for depth, key in enumerate(keys[:-1], start=1):
        if key not in node:
            node[key] = {}
        if not isinstance(node[key], dict):
            raise error(f"is {node[key]!r}, not a mapping of keys", depth)
        node = node[key]
    if override.op == "~":
        if keys[-1] not in node:
            raise error("is a default of the experiment class, not a key of the config: nothing to delete")
        del node[keys[-1]]
    else:
        node[keys[-1]] = copy.deepcopy(override.value)


def _resolve(mapping: Mapping[str, Any], parts: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    """The keys `parts` names in `mapping`, and how many of them exist there. At each level the longest
    key that matches wins (a key may hold dots); below the first missing one, each part is one key."""
    node: Any = mapping
    keys: list[str] = []
    index = 0
    while index < len(parts) and isinstance(node, Mapping):
        key = next((k for k in (".".join(parts[index:end]) for end in range(len(parts), index, -1)) if k in node),
                   None)
        if key is None:
            break
        keys.append(key)
        node, index = node[key], index + key.count(".") + 1
    return (*keys, *parts[index:]), len(keys)


def _missing(known: Mapping[str, Any], keys: tuple[str, ...], found: int, op: str) -> str:
    """'no such key' with the key it looks like, or the keys there are."""
    node: Any = known
    for key in keys[:found]:
        node = node[key]
    if not isinstance(node, Mapping):
        return f"'{dotted(keys[:found])}' is {node!r}, not a mapping of keys"
    prefix = dotted(keys[:found]) + "." if found else ""
    siblings = sorted(str(key) for key in node)
    meant = lookalike(keys[found], siblings)
    if meant:
        hint = f"did you mean '{prefix}{meant}'?"
    elif siblings:
        more = f" and {len(siblings) - MAX_KEYS_SHOWN} more" if len(siblings) > MAX_KEYS_SHOWN else ""
        hint = "known: " + ", ".join(prefix + key for key in siblings[:MAX_KEYS_SHOWN]) + more
    else:
        hint = f"'{dotted(keys[:found])}' is empty"
    add = "" if op == "~" else f" (to add a key: +{dotted(keys)}=...)"
    return f"no such key; {hint}{add}"


def _swept_by(experiment: Mapping[str, Any], param: tuple[str, ...]) -> str | None:
    """The sweep key (`grid.lr`, `random.params.lr`) that sets parameter `param`, if any."""
    for block in _SWEEPS:
        node: Any = experiment
        for key in block:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            for path in flatten_paths(node):
                if path[:len(param)] == param or param[:len(path)] == path:  # the same, or one within the other
                    return dotted((*block, *path))
    return None
