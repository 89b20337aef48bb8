"""Merging a config's documents into its experiments: the DEFAULT document under each, then validation.

`load_config` is the one function of the config layer that reads a file: it makes the config's
`ConfigSource` (its name and text) once, and the `Documents` it returns carry it on to expansion and to
everything that names the file in a message.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import config_error
from ..kinds import kinds_in
from ..vocabulary import ConfigSource
from .keypaths import deep_merge
from .loading import parse_documents, read_text
from .validation import Warn, check_document_keys, validate_experiment

log = logging.getLogger("cluster_work")

DEFAULT_NAME = "DEFAULT"
Adjust = Callable[[dict[str, Any]], dict[str, Any]]  # e.g. `overrides.Overrides.apply`


def load_config(path: str | os.PathLike[str], warn: Warn = log.warning,
                keep_unknown_tags: bool = False, adjust: Adjust | None = None) -> Documents:
    """Read `path` and return one validated, DEFAULT-merged document per experiment (`adjust`: see
    merge_and_validate), carrying the config's source: `path` as given, and the text read."""
    name = os.fspath(path)
    source = ConfigSource(name, read_text(name))
    return merge_and_validate(parse_documents(source.text, source, keep_unknown_tags), source, warn, adjust)


def is_default_document(document: Mapping[str, Any]) -> bool:
    """The original's rule: a first document named `default` in any case holds the defaults."""
    name = document.get("name")
    return isinstance(name, str) and name.lower() == DEFAULT_NAME.lower()


class Documents(list[dict[str, Any]]):
    """The validated experiment documents of a config, in order, with their campaign blocks parsed once:
    `specs` maps an experiment's name to the typed spec of its block (`kinds.CampaignKind.check_document`),
    which expansion hands on (`ExpandedDocument.campaign_spec`), so that no driver parses it again.
    `source`: the config they were read from, which expansion and every later check name in messages."""

    def __init__(self, documents: Iterable[dict[str, Any]] = (), specs: Mapping[str, Any] | None = None,
                 source: ConfigSource | None = None):
        super().__init__(documents)
        self.specs: dict[str, Any] = dict(specs or {})
        self.source = source or ConfigSource("config")


def merge_and_validate(documents: list[Any], source: ConfigSource | str, warn: Warn = log.warning,
                       adjust: Adjust | None = None) -> Documents:
    """Merge the optional DEFAULT document under each experiment and validate every one; `adjust` changes
    each merged experiment before it is validated (the command line's overrides). `source`: the config's
    (a bare name is one without its text)."""
    source = ConfigSource.of(source)
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, Mapping):
            raise config_error(source, f"document {number} must be a mapping of keys to values, "
                                       f"got {type(document).__name__}")
    documents = [_replicas_as_repetitions(d, source, number) for number, d in enumerate(documents, start=1)]
    default: Mapping[str, Any] = {}
    default_keeps: list[str] = []
    for number, document in enumerate(documents, start=1):
        kept = check_document_keys(document, source, number, [] if number == 1 else default_keeps)
        if number == 1 and is_default_document(document):
            default_keeps = kept
    if is_default_document(documents[0]):
        default, documents = documents[0], documents[1:]
    experiments = Documents(source=source)
    seen: dict[str, int] = {}
    for number, document in enumerate(documents, start=2 if default else 1):
        if "name" not in document:
            raise config_error(source, f"document {number}: every experiment document needs its own 'name'",
                               key="name")
        if is_default_document(document):
            raise config_error(source, f"document {number}: only the first document may be named "
                                       f"'{DEFAULT_NAME}'", key="name")
        experiment = deep_merge(default, document)
        for campaign in kinds_in([experiment]):
            campaign.prepare(experiment, document)
        if adjust is not None:
            experiment = adjust(experiment)
        spec = validate_experiment(experiment, source, number, warn)
        name = experiment["name"]
        if name in seen:
            raise config_error(source, f"duplicate experiment name (documents {seen[name]} and {number})",
                               experiment=name, key="name")
        seen[name] = number
        experiments.append(experiment)
        if spec is not None:
            experiments.specs[name] = spec
    if not experiments:
        raise config_error(source, "the file holds a DEFAULT document but no experiment")
    return experiments


def _replicas_as_repetitions(document: Mapping[str, Any], source: ConfigSource, number: int) -> Mapping[str, Any]:
    """SmartSim's `replicas: N` is our `repetitions: N` (each replica its own seed)."""
    if "replicas" not in document:
        return document
    if "repetitions" in document:
        raise config_error(source, f"document {number}: give 'replicas' or 'repetitions', not both", key="replicas")
    return {("repetitions" if key == "replicas" else key): value for key, value in document.items()}
