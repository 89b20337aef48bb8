"""The compact index's on-disk form (compact_columns: version 3, the experiments as parallel columns): an index of
version 2 (a list per experiment and repetition) is still read, without reading the segments, says the same and is
rewritten as version 3; an index whose columns do not fit together (torn, cut, shuffled) is not taken."""
from __future__ import annotations

import json
import os

import pytest
from compact_index_helpers import everything, forget_summaries, roots
from huge_sweep_helpers import expand, run_some, text

from cluster_work import compact_index
from cluster_work.compact_columns import Columns
from cluster_work.compact_index import Summary, read_index, summary
from cluster_work.paths import INDEX_FILE
from cluster_work.reporting import write_progress_json


def version_2(found: Summary) -> bytes:
    """`found` as an index of version 2 held it."""
    return json.dumps({"v": 2, "segments": found.segments, "dropped": found.dropped, "latest": found.latest,
                       "open": {segment: [*key, time] for segment, (key, time) in found.open.items()},
                       "plain_at": found.plain_at, "experiments": found.entries},
                      separators=(",", ":"), allow_nan=True).encode()


def test_an_index_of_version_2_is_read_without_the_segments_and_rewritten_as_version_3(tmp_path, monkeypatch):
    run_some(tmp_path, (0, 140), "compact")
    forget_summaries()
    before = everything(tmp_path)
    indexes = {root: summary(root, write=False) for root in roots(tmp_path)}
    assert any(len(entry[2]) > 1 and any(rep[1] for rep in entry[2])
               for found in indexes.values() for entry in found.entries.values())  # repetitions, statuses
    for root, found in indexes.items():
        with open(os.path.join(root, INDEX_FILE), "wb") as handle:
            handle.write(version_2(found))
    forget_summaries()
    for root, found in indexes.items():
        older = read_index(root)
        assert older is not None and older.older and older.entries == found.entries
    forget_summaries()

    def no_segments(*args, **options):
        raise AssertionError("the segments were read: the index of version 2 was not taken")

    monkeypatch.setattr(compact_index, "catalog", no_segments)
    assert everything(tmp_path) == before
    for root, found in indexes.items():
        with open(os.path.join(root, INDEX_FILE), "rb") as handle:
            assert json.loads(handle.read())["v"] == compact_index.VERSION  # rewritten by its first reader
        assert read_index(root).entries == found.entries and not read_index(root).older


def test_columns_hold_every_experiment_as_its_entry(tmp_path):
    run_some(tmp_path, (0, 140), "compact")
    forget_summaries()
    for root in roots(tmp_path):
        found = summary(root, write=False)
        again = Summary.decode(found.encode())
        assert again is not None and not again.older and again.entries == found.entries
        columns = Columns.of(found.entries)
        assert columns.entries() == found.entries
        assert [columns.entry(position) for position in range(len(columns))] == list(found.entries.values())
        for name in found.entries:
            assert again.experiment(name) == found.experiment(name)


def test_columns_updated_hold_what_the_entries_merged_hold(tmp_path):
    run_some(tmp_path, (0, 140), "compact")
    forget_summaries()
    found = max((summary(root, write=False) for root in roots(tmp_path)), key=lambda s: len(s.entries))
    names = list(found.entries)
    changed = {names[0]: ["moved", "{}", [[0, None, 1, 0.5, 1], [3, {"state": "failed"}, 0, 0.0, 0]]],
               names[-1]: ["elsewhere", "{}", []], "new": ["new", "{\"a\": 1}", [[1, None, 2, 2.5, 2]]]}
    columns = Columns.decode(json.loads(found.encode()))  # (as an index read holds them: times unpacked)
    for change in ({}, changed, {"new": changed["new"]}, {names[1]: changed[names[0]]}):
        updated = columns.updated(change)
        assert updated.entries() == {**found.entries, **change}
        assert {name: updated.entry(updated.position[name]) for name in updated.names} == {**found.entries, **change}


def cut_column(value: dict) -> None:
    value["rows"].pop()


def lengthen_column(value: dict) -> None:
    value["at"].append("x")


def twice_a_name(value: dict) -> None:
    value["names"][-1] = value["names"][0]


def count_more(value: dict) -> None:
    value["counts"][0] += 1


def name_not_a_text(value: dict) -> None:
    value["names"][0] = 7


def column_not_a_list(value: dict) -> None:
    value["seconds"] = {}


def seconds_not_whole_doubles(value: dict) -> None:
    value["seconds"] = value["seconds"][:-4]


BROKEN = {"times that are not whole doubles": seconds_not_whole_doubles, "a column one item short": cut_column,
          "a column one item long": lengthen_column,
          "a name twice": twice_a_name, "a count more than its repetitions": count_more,
          "a name that is not a text": name_not_a_text, "a column that is not a list": column_not_a_list}


@pytest.mark.parametrize("damage", BROKEN.values(), ids=list(BROKEN))
def test_an_index_whose_columns_do_not_fit_together_is_not_taken(tmp_path, damage):
    run_some(tmp_path, (0, 150, 5), "compact")
    forget_summaries()
    before = everything(tmp_path)
    root = next(root for root in roots(tmp_path) if len(read_index(root).entries) > 2)
    with open(os.path.join(root, INDEX_FILE), "rb") as handle:
        value = json.loads(handle.read())
    damage(value)
    data = json.dumps(value).encode()
    assert Summary.decode(data) is None
    with open(os.path.join(root, INDEX_FILE), "wb") as handle:
        handle.write(data)
    forget_summaries()
    assert everything(tmp_path) == before  # read from the segments, and written again
    assert read_index(root) is not None


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 10, 100])
def test_a_torn_index_of_either_version_is_not_taken(tmp_path, cut):
    run_some(tmp_path, (0, 150, 5), "compact")
    forget_summaries()
    before = text(write_progress_json, expand(tmp_path, "compact"), False)
    for root in roots(tmp_path):
        found = summary(root, write=False)
        for data in (found.encode(), version_2(found)):
            assert Summary.decode(data[:len(data) * (cut - 1) // cut]) is None
            assert Summary.decode(data[:-1]) is None
        with open(os.path.join(root, INDEX_FILE), "wb") as handle:
            handle.write(found.encode()[:len(found.encode()) * (cut - 1) // cut])
    forget_summaries()
    assert text(write_progress_json, expand(tmp_path, "compact"), False) == before
