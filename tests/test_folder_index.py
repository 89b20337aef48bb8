"""The default layout's folder index (folder_index.py): a resume of a whole document plans its done experiments
from the index in bulk (NewOrDoneRuns, BLOCK experiments at a time) after a stat per file, and decides exactly
what reading each experiment's files decides (the reference: the same experiments planned one by one, as a list,
which never reads an index), whatever changed since it was written: configs edited, repetitions crashed, cut,
appended to, stopped or removed, files changed within a clock tick of being read (the racy rule), the index
deleted, torn or garbage, -d, -r/-i, another sweep in the same folder, a kill -9 while it is written."""
from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import time
from collections.abc import Callable

import pytest
import yaml
from experiments import Deterministic
from huge_sweep_helpers import documents, run_some, text
from kills import kill_a_writer
from repetition_files import is_status, to_folder_layout

from cluster_work import bulk_runs
from cluster_work.attempts import AttemptJournal
from cluster_work.bulk_runs import NewOrDoneRun, present_folders
from cluster_work.durability import committer
from cluster_work.expansion import expand_all
from cluster_work.folder_index import FolderIndex, decode
from cluster_work.paths import FOLDER_INDEX_FILE, RepetitionPaths
from cluster_work.planning import apply_plan, make_plan
from cluster_work.progress_figures import PendingOrFinishedRun, each_experiment
from cluster_work.progress_sums import progress_report
from cluster_work.reporting import print_progress, write_progress_json
from cluster_work.rows import encode_row
from cluster_work.selection import Policy, Selection
from cluster_work.store import ExperimentStore, RepetitionStore
from cluster_work.vocabulary import Record


def expand(tmp_path, change=None):
    """The sweep of huge_sweep_helpers (a grid of 2 repetitions, some failing, a list, a random search, one
    experiment without variation); `change(documents)` edits its documents first (the user's config)."""
    found = documents(tmp_path)
    if change:
        change(found)
    return expand_all(found, Deterministic._default_params, warn=lambda message: None)


def plan_of(experiments, selection=Selection(), policy=Policy()):
    return make_plan(experiments, selection, policy, "test")


def jobs_of(jobs):
    return [(job.index, job.experiment.name, job.rep, job.restart_from, job.until, job.config) for job in jobs]


def decisions(plan):
    """Everything planning decided: the totals, each experiment's plan (states, saved iterations, measured
    times, changed keys, jobs), and the jobs as a run takes them (longest expected first)."""
    plans = [(item.experiment.name, item.state, item.changed_keys, item.repetition_states, item.iteration_times,
              item.iterations_saved, item.rewrite, item.suspicions, jobs_of(item.jobs)) for item in plan.experiments]
    return vars(plan.totals), plans, jobs_of(plan.jobs)


def compare(tmp_path, change=None, selection=Selection(), policy=Policy()):
    """Plan the sweep whole (through the index) and one experiment at a time (from the files alone), assert they
    decide the same; the whole plan."""
    whole = plan_of(expand(tmp_path, change), selection, policy)
    each = plan_of(list(expand(tmp_path, change)), selection, policy)
    assert decisions(whole) == decisions(each)
    return whole


def out(tmp_path):
    return tmp_path / "out"


def index_files(tmp_path):
    return sorted(out(tmp_path).glob(f"*/{FOLDER_INDEX_FILE}"))


def entries(tmp_path, base="walk"):
    with open(out(tmp_path) / base / FOLDER_INDEX_FILE, "rb") as handle:
        return decode(handle.read())


def age(tmp_path, seconds=60):
    """Make every file and folder of the sweep older (as a sweep whose last run ended a while ago)."""
    past = time.time_ns() - seconds * 10**9
    for folder, names, files in os.walk(out(tmp_path)):
        for name in [*names, *files]:
            os.utime(os.path.join(folder, name), ns=(past, past), follow_symlinks=False)


def write_index(tmp_path, change=None):
    """What a run does before its jobs: plan the sweep and apply the plan (which writes the indexes)."""
    plan = plan_of(expand(tmp_path, change))
    apply_plan(plan)
    return plan


def half_done(tmp_path):
    """A half-done sweep (the first 60 jobs, then every fifth: finished, failed, partial and missing
    repetitions), a finished repetition with a status (it once failed), its index written after a while."""
    run_some(tmp_path, (0, 60))
    run_some(tmp_path, (60, 160, 5))
    finished = repetition(tmp_path, "walk__s0.5_fa-1", 0)
    finished.write_status(Record.FINISHED, iterations_done=3, iterations=3, results_bytes=finished.results_size())
    to_folder_layout(out(tmp_path) / "walk" / OLD_LAYOUT, 1)  # one an earlier version ran, beside a new one
    age(tmp_path)
    write_index(tmp_path)
    committer.commit()  # nothing left for the group commit's thread, which stats the folders it syncs meanwhile


OLD_LAYOUT = "s1.5_fa9"  # an experiment whose rep_01 keeps the folder layout (results.jsonl, status.json)


def done_runs(plan):
    """The runs of `plan` holding done experiments (planned in bulk, from the index)."""
    return [chunk for chunk in plan.chunks() if isinstance(chunk, NewOrDoneRun) and chunk.found]


def repetition(tmp_path, name, rep):
    base, _, part = name.partition("__")
    return RepetitionStore(str(out(tmp_path) / base / part), rep)


def rows(store):
    return len(store.read_results().rows)


@pytest.mark.parametrize("block", [4096, 5, 1], ids=["blocks of 4096", "blocks of 5", "blocks of 1"])
def test_a_half_done_resume_plans_its_done_experiments_from_the_index(tmp_path, monkeypatch, block):
    monkeypatch.setattr(bulk_runs, "BLOCK", block)
    half_done(tmp_path)
    assert [path.parent.name for path in index_files(tmp_path)] == ["listed", "searched", "walk"]
    assert len(entries(tmp_path)) == len([p for p in (out(tmp_path) / "walk").iterdir() if p.is_dir()])
    whole = compare(tmp_path)
    assert sum(len(run.found) for run in done_runs(whole)) >= 20  # in bulk, without reading their files
    assert any(run.found and run.new for run in done_runs(whole)) == (block > 1)  # new and done ones in a run


def cut_a_finished_repetition(tmp_path):  # a crashed `-r 0 -i 1`: its rows cut, a torn row after them
    store = repetition(tmp_path, "walk__s1.0_fa-1", 0)
    data = open(store.results_file, "rb").read()
    with open(store.results_file, "r+b") as handle:
        handle.truncate(data.index(b"\n") + 1)
        handle.seek(0, os.SEEK_END)
        handle.write(b'{"iteration": 1, "val')


def append_to_a_partial_repetition(tmp_path):  # another run, alive, saves its rows up to the last
    store = repetition(tmp_path, "walk__s3.0_fa1", 1)
    assert rows(store) == 1
    with open(store.results_file, "ab") as handle:
        handle.write(encode_row({"iteration": 1, "value": 1.0}) + encode_row({"iteration": 2, "value": 2.0}))


def stop_a_repetition(tmp_path):  # a campaign stopped it: a status alone, its rows as they were
    repetition(tmp_path, "walk__s4.0_fa1", 0).write_status(Record.STOPPED, iterations_done=1)


def remove_a_status(tmp_path):  # a failed repetition's status records removed by hand
    path = next(path for path in sorted((out(tmp_path) / "walk").glob("*/log/rep_01.jsonl"))
                if any(map(is_status, path.read_text().splitlines())))
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True) if not is_status(line)))


def remove_a_finished_repetition(tmp_path):  # `rm -r log/rep_01*` to run it again
    store = repetition(tmp_path, "walk__s0.5_fa-1", 1)
    shutil.rmtree(store.path)
    os.remove(store.results_file)


def remove_an_experiment(tmp_path):
    shutil.rmtree(out(tmp_path) / "walk" / "s1.5_fa-1")


def edit_a_stored_config(tmp_path):  # in place, the same size: only its mtime tells
    path = out(tmp_path) / "walk" / "s1.0_fa-1" / "config.yml"
    text = path.read_bytes()
    assert b"  step: 1.0\n" in text
    with open(path, "r+b") as handle:
        handle.write(text.replace(b"  step: 1.0\n", b"  step: 1.5\n"))


def replace_a_stored_config(tmp_path):  # as -I does: a new file renamed over it
    store = ExperimentStore(str(out(tmp_path) / "walk" / "s2.0_fa-1"))
    config = store.read_config()
    config["params"]["sleep"] = 0.5
    store.write_config(config)


def stop_and_run_more(tmp_path):  # a later run finished more of the sweep
    run_some(tmp_path, (100, 130))


def link_a_missing_repetition_file(tmp_path):  # a dangling link named rep_01.jsonl beside the folder layout's files
    os.symlink("nowhere", out(tmp_path) / "walk" / OLD_LAYOUT / "log" / "rep_01.jsonl")  # (it decides: empty)


def cut_a_folder_layout_repetition(tmp_path):  # an earlier version's results.jsonl, cut by a crash
    path = out(tmp_path) / "walk" / OLD_LAYOUT / "log" / "rep_01" / "results.jsonl"
    path.write_text(path.read_text().splitlines(keepends=True)[0])


def stop_a_folder_layout_repetition(tmp_path):  # its status.json written
    RepetitionStore(str(out(tmp_path) / "walk" / OLD_LAYOUT), 1).write_status(Record.STOPPED, iterations_done=1)


def cut_a_folder_layout_repetition_after_its_finished_status(tmp_path):  # its status.json counts bytes it lost
    store = RepetitionStore(str(out(tmp_path) / "walk" / OLD_LAYOUT), 1)
    store.write_status(Record.FINISHED, iterations_done=3, iterations=3, results_bytes=store.results_size())
    cut_a_folder_layout_repetition(tmp_path)


MUTATIONS = {
    "nothing": lambda tmp_path: None,
    "a finished repetition cut by a crash": cut_a_finished_repetition,
    "a row appended by a live run": append_to_a_partial_repetition,
    "a repetition stopped": stop_a_repetition,
    "a status removed": remove_a_status,
    "a repetition's folder removed": remove_a_finished_repetition,
    "an experiment's folder removed": remove_an_experiment,
    "a stored config edited in place": edit_a_stored_config,
    "a stored config replaced": replace_a_stored_config,
    "another run since": stop_and_run_more,
    "a dangling rep_NN.jsonl beside a folder layout": link_a_missing_repetition_file,
    "a folder layout's repetition cut": cut_a_folder_layout_repetition,
    "a folder layout's repetition stopped": stop_a_folder_layout_repetition,
    "a folder layout's finished repetition cut": cut_a_folder_layout_repetition_after_its_finished_status,
}


@pytest.mark.parametrize("block", [4096, 1], ids=["blocks of 4096", "blocks of 1"])  # (1: blocks all done)
@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=list(MUTATIONS))
def test_whatever_changed_since_the_index_was_written_it_decides_as_the_files_say(tmp_path, monkeypatch, mutate,
                                                                                   block):
    monkeypatch.setattr(bulk_runs, "BLOCK", block)
    half_done(tmp_path)
    mutate(tmp_path)
    whole = compare(tmp_path)
    assert done_runs(whole)  # the rest still from the index
    apply_plan(whole)  # and the index written again says the same
    age(tmp_path)
    assert decisions(plan_of(expand(tmp_path))) == decisions(plan_of(list(expand(tmp_path))))


def one_repetition(found):  # the walk asks its first repetition only: its index's experiments are usual ones
    found[0]["repetitions"] = 1


@pytest.mark.parametrize("change", [None, one_repetition], ids=["two repetitions", "one repetition"])
@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=list(MUTATIONS))
def test_progress_from_the_index_says_what_each_experiments_files_say(tmp_path, monkeypatch, mutate, change):
    """-p and -p/-P --json of a whole document sum its finished experiments from the index (runs of pending and
    finished ones), bit for bit what reading each experiment's files says, whatever changed since (-P's table,
    made of what -P --json holds, is compared below). Blocks of 5: some all pending or finished, made at once,
    others cut where an experiment is read by itself. With one repetition (its index written since), a block of
    usual experiments (no status, all rows timed) is summed at once (`usual_folder_times`), the others not."""
    monkeypatch.setattr(bulk_runs, "BLOCK", 5)
    half_done(tmp_path)
    mutate(tmp_path)
    for index in ("written before", "written since"):  # (since: its entries say what changed)
        if index == "written since":
            age(tmp_path)
            write_index(tmp_path, change)
        before = entries(tmp_path)
        groups, _, _ = progress_report(expand(tmp_path, change))
        assert any(isinstance(part, PendingOrFinishedRun) and part.names for part in groups["walk"]) \
            or (change and index == "written before")  # (an index of two repetitions: none taken from it)
        for write, full in ((print_progress, False), (write_progress_json, False), (write_progress_json, True)):
            assert text(write, expand(tmp_path, change), full) == text(write, list(expand(tmp_path, change)), full)
        assert entries(tmp_path) == before  # (read, never written)


def test_progress_from_the_index_asks_whether_a_live_run_holds_a_finished_repetition(tmp_path):
    """A finished repetition that a live run holds (as one run again with -o or -r holds it before it changes
    its file) is running, from the index as from its files: the run's main process holds its attempts journal."""
    half_done(tmp_path)
    groups, _, _ = progress_report(list(expand(tmp_path)))
    name = next(part.name for part in groups["walk"] if part.states["finished"] == part.repetitions)
    journal = AttemptJournal()
    journal.hold({experiment.sweep_path for experiment in expand(tmp_path)}, "live")
    with open(repetition(tmp_path, name, 1).results_file, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # (another open file's flock conflicts with it, even in this process)
        groups, _, _ = progress_report(expand(tmp_path))
        [figures] = [part for part in each_experiment(groups["walk"]) if part.name == name]
        assert [rep.state for rep in figures.reps] == ["finished", "running"]
        for full in (False, True):
            assert text(print_progress, expand(tmp_path), full) == text(print_progress, list(expand(tmp_path)), full)
    journal.release("live")


def test_progress_asks_no_repetition_lock_where_no_live_process_holds_an_attempts_journal(tmp_path, monkeypatch):
    """Without a live run (no attempts journal held) no process holds a repetition: -p, from the index or from the
    files, asks no repetition's lock (a half-done 10^6-point sweep: 5 x 10^5 opens and flocks fewer), and says
    the same as where it asks them."""
    half_done(tmp_path)
    dead = AttemptJournal()  # a run that ended: its journal is there, no one holds it
    dead.hold({experiment.sweep_path for experiment in expand(tmp_path)}, "ended")
    dead.release("ended")
    asked = {full: (text(print_progress, expand(tmp_path), full), text(print_progress, list(expand(tmp_path)), full))
             for full in (False, True)}
    paths: list[str] = []  # each file whose lock was asked, whoever asked
    flock = fcntl.flock

    def counted(fd, operation):
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        return flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", counted)
    for full in (False, True):
        assert (text(print_progress, expand(tmp_path), full), text(print_progress, list(expand(tmp_path)), full)) \
            == asked[full]
    assert paths and all(".cluster_work_attempts" in path for path in paths), paths  # the journal's, no other


def record_lookups(looking, looked: list[str]) -> None:
    """Append to `looked` each path `os.stat` or `os.access` is asked of while `looking` (a monkeypatch) lasts."""
    for name in ("stat", "access"):
        def look(path, *args, _real=getattr(os, name), **options):
            folder = options.get("dir_fd")  # (a path relative to an open folder: that folder's path joined)
            looked.append(str(path) if folder is None else os.path.join(os.readlink(f"/proc/self/fd/{folder}"), path))
            return _real(path, *args, **options)
        looking.setattr(os, name, look)


def test_progress_from_the_index_stats_a_finished_experiments_repetition_files_not_its_config(tmp_path, monkeypatch):
    """-p from the index costs a finished experiment a stat of each repetition's file that decides, none of its
    config.yml (progress reads no config: an experiment's figures are its repetitions'), and says what its files
    say even where its config.yml was edited since (the MUTATIONS' edits, above)."""
    half_done(tmp_path)
    edit_a_stored_config(tmp_path)
    looked: list[str] = []
    with monkeypatch.context() as looking:
        record_lookups(looking, looked)
        groups, _, _ = progress_report(expand(tmp_path))
    finished = [name for run in groups["walk"] if isinstance(run, PendingOrFinishedRun) for name in run.names]
    assert "walk__s1.0_fa-1" in finished  # (its config edited: still from the index)
    for name in finished:
        folder = out(tmp_path) / "walk" / name.split("__", 1)[1]
        assert str(folder / "config.yml") not in looked
        for rep in range(2):
            one, results, status = RepetitionPaths.of(str(folder), rep).files
            assert ({str(one)} if os.path.exists(one) else {str(one), str(results), str(status)}) <= set(looked)
    for full in (False, True):
        assert text(print_progress, expand(tmp_path), full) == text(print_progress, list(expand(tmp_path)), full)


def more_iterations(found):
    for document in found:
        document["iterations"] += 2


def more_repetitions(found):
    for document in found:
        document["repetitions"] += 1


def other_params(found):
    found[0]["params"]["sleep"] = 0.0001


CHANGES = {"more iterations": more_iterations, "more repetitions": more_repetitions, "other params": other_params}


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_a_config_edited_by_the_user_is_planned_as_the_files_say(tmp_path, change):
    """The index holds what the files say, not what planning made of them: more iterations make finished
    repetitions partial (those whose status decided, and whose rows were not read, are read now)."""
    half_done(tmp_path)
    compare(tmp_path, change)
    assert done_runs(plan_of(expand(tmp_path)))  # (the index is still used where nothing changed)


SELECTIONS = {"-r 1": (Selection(repetition=1), Policy()),
              "-r 0 -i 1": (Selection(repetition=0, iteration=1), Policy()),
              "-d": (Selection(), Policy(delete=True)), "--retry-failed": (Selection(), Policy(retry_failed=True)),
              "-o": (Selection(), Policy(overwrite=True)), "-j 3-40": (Selection(jobs=(3, 40)), Policy())}


@pytest.mark.parametrize("selection, policy", SELECTIONS.values(), ids=list(SELECTIONS))
def test_selections_and_policies_decide_as_without_the_index(tmp_path, selection, policy):
    half_done(tmp_path)
    change = other_params if policy.overwrite else None
    plan = compare(tmp_path, change, selection, policy)  # (-d: the same rewrites, those of experiments on disk)
    if policy.delete:
        assert 0 < plan.totals.rewrites == sum(os.path.isdir(e.path) for e in expand(tmp_path)) < len(expand(tmp_path))


def test_a_repetition_run_again_with_r_and_i_is_read_again(tmp_path):
    half_done(tmp_path)
    plan = plan_of(expand(tmp_path), Selection(["walk__s0.5_fa-1"], repetition=0, iteration=1))
    from cluster_work.backends import SequentialExecutor
    from cluster_work.runner import ExperimentTask
    from cluster_work.stopping import stop_signals_handled
    from cluster_work.sweep import run_segments
    from cluster_work.vocabulary import RunSettings

    with stop_signals_handled(), SequentialExecutor(ExperimentTask(Deterministic, RunSettings(sync=False))) as executor:
        run_segments(plan.jobs, executor)
    compare(tmp_path)


def test_a_file_changed_within_a_clock_tick_of_being_read_is_never_trusted(tmp_path):
    """Git's racy rule: a file changed again within the tick it was read in keeps its mtime (and here its size
    and inode): an entry is written only where its files were over 2 s old when they were read."""
    run_some(tmp_path, (0, 40))  # just now: every file younger than 2 s
    write_index(tmp_path)
    store = repetition(tmp_path, "walk__s0.5_fa-1", 0)
    before = os.stat(store.results_file)
    data = open(store.results_file, "rb").read()
    last = data.rindex(b"{")
    with open(store.results_file, "r+b") as handle:  # its last row unreadable, the same size
        handle.seek(last)
        handle.write(b"x" * (len(data) - last - 1))
    os.utime(store.results_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # as within the same tick
    after = os.stat(store.results_file)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert rows(store) == 2
    compare(tmp_path)
    assert index_files(tmp_path) == []  # nothing was settled
    age(tmp_path)
    write_index(tmp_path)
    assert len(entries(tmp_path)) > 0  # settled now
    compare(tmp_path)


DAMAGES = {
    "deleted": lambda path: os.remove(path),
    "torn": lambda path: open(path, "r+b").truncate(os.path.getsize(path) // 2),
    "zeros": lambda path: open(path, "wb").write(bytes(4096)),
    "another version": lambda path: open(path, "w").write('{"v": 99, "experiments": {}}'),
    "garbage entries": lambda path: path.write_text(json.dumps({"v": 1, "experiments": {
        part: [[1, "x"], 3, {"a": None}] if n % 4 == 0 else [entry[0], "{}", 99, "[[0, 1, 2]]"] if n % 4 == 1
        else [entry[0], entry[1], 99, '[[0, "x", 1, 0, 0], [1, null, 2, 0.0, 0]]'] if n % 4 == 2 else "junk"
        for n, (part, entry) in enumerate(json.loads(path.read_bytes())["experiments"].items())}})),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=list(DAMAGES))
def test_a_deleted_or_damaged_index_is_ignored_and_written_again(tmp_path, damage):
    half_done(tmp_path)
    before = decisions(plan_of(expand(tmp_path)))
    for path in index_files(tmp_path):
        damage(path)
    plan = plan_of(expand(tmp_path))
    assert decisions(plan) == before
    assert not done_runs(plan)  # nothing in it was trusted
    apply_plan(plan)
    assert all(decode(path.read_bytes()) for path in index_files(tmp_path))
    assert done_runs(plan_of(expand(tmp_path))) and decisions(plan_of(expand(tmp_path))) == before


def test_planning_alone_writes_no_index_and_none_is_written_into_a_folder_of_no_experiment_of_ours(tmp_path):
    half_done(tmp_path)
    for path in index_files(tmp_path):
        os.remove(path)
    plan_of(expand(tmp_path))  # -p, --list, a refused run: planning only
    assert index_files(tmp_path) == []
    users = tmp_path / "users"  # a document folder holding only a user's folder with a config.yml
    (users / "out" / "walk" / "notes").mkdir(parents=True)
    (users / "out" / "walk" / "notes" / "config.yml").write_text("params: {}\n")
    age(users)
    apply_plan(plan_of(expand(users)))
    assert sorted(os.listdir(users / "out" / "walk")) == ["notes"]


def test_another_sweep_in_the_same_folder_keeps_its_entries(tmp_path):
    half_done(tmp_path)
    mine = entries(tmp_path)

    def other_grid(found):  # the same name and path, other points: some folders are the other's
        found[0]["grid"] = {"step": [0.5, 7.5], "fail_at": [-1, 3]}

    run_some_other = plan_of(expand(tmp_path, other_grid))
    assert decisions(run_some_other) == decisions(plan_of(list(expand(tmp_path, other_grid))))
    apply_plan(run_some_other)
    assert set(mine) <= set(entries(tmp_path))
    assert done_runs(compare(tmp_path))


def test_a_run_writes_the_index_at_its_end_and_the_next_resume_plans_from_it(tmp_path, cli):
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump_all(documents(tmp_path)))
    cli("Deterministic", str(config), "-j", "0", "80", cwd=tmp_path)
    age(tmp_path)
    cli("Deterministic", str(config), "-j", "80", "100", cwd=tmp_path)  # a -j run: planned one by one, no index
    assert index_files(tmp_path) == []
    cli("Deterministic", str(config), cwd=tmp_path)  # reads the files, writes the index; and at its end again
    assert entries(tmp_path)
    listed = cli("Deterministic", str(config), "--list", cwd=tmp_path, check_rc=0).stdout
    for path in index_files(tmp_path):
        os.remove(path)
    assert cli("Deterministic", str(config), "--list", cwd=tmp_path, check_rc=0).stdout == listed


def index_writer(tmp_path) -> Callable[[], object]:
    """For kill_a_writer (called in the writer): the index of the sweep's first document, every entry settled,
    written again and again."""
    [document] = expand_all(documents(tmp_path)[:1], Deterministic._default_params).documents
    index = FolderIndex.load(document, present_folders(document))
    for part in index.present:
        index.read(part)
    index.started += 10**11  # everything settled

    def write() -> None:
        index.loaded = set()
        assert index.write()
    return write


@pytest.mark.processes
def test_kill_9_while_the_index_is_written_leaves_the_old_or_the_new_one(tmp_path):
    half_done(tmp_path)
    before = decisions(plan_of(expand(tmp_path)))
    old = entries(tmp_path)
    instants = random.Random(25)
    for _ in range(5):
        kill_a_writer(lambda: index_writer(tmp_path), instants.uniform(0.0, 0.2))
        found = entries(tmp_path)  # whole: the old one or a new one, never a part of one
        assert found == old or set(found) >= set(old)
    assert decisions(plan_of(expand(tmp_path))) == before
    remove_an_experiment(tmp_path)  # a change, so that the next run writes the index
    apply_plan(plan_of(expand(tmp_path)))
    assert not [name for name in os.listdir(out(tmp_path) / "walk") if name.endswith(".tmp")]


def expected_stats(folder):
    """What an entry records of the experiment in `folder`: its config.yml's stat, then each repetition's
    rep_NN.jsonl's alone where that exists (the folder layout's files beside it decide nothing: ""), else "-" and
    the stats of the folder layout's results.jsonl and status.json ("-": missing)."""
    def stat(path):
        at = os.stat(path) if os.path.exists(path) else None
        return f"{at.st_size}:{at.st_mtime_ns}:{at.st_ino}" if at else "-"

    found = [stat(folder / "config.yml")]
    for rep in range(2):
        one, results, status = RepetitionPaths.of(str(folder), rep).files
        found += [stat(one), "", ""] if os.path.exists(one) else ["-", stat(results), stat(status)]
    return "|".join(found)


def test_the_index_names_only_the_files_of_repetitions(tmp_path):
    """Each entry's stats are those of config.yml and of each repetition's files that decide (the paths are
    paths.py's), as they are on disk."""
    half_done(tmp_path)
    found = entries(tmp_path)
    assert found[OLD_LAYOUT][0].split("|")[4] == "-"  # (its rep_01 keeps the folder layout)
    for part, (stats, _, _, reps) in found.items():
        assert len(json.loads(reps)) == 2
        assert stats == expected_stats(out(tmp_path) / "walk" / part)


@pytest.mark.parametrize("block", [4096, 1], ids=["blocks of 4096", "blocks of 1"])  # (1: blocks all done)
def test_a_done_experiment_is_checked_by_a_stat_of_its_config_and_of_each_repetition_file(tmp_path, monkeypatch,
                                                                                          block):
    """Planned from the index, a done experiment costs a stat of its config.yml and of each repetition's
    rep_NN.jsonl, and the folder layout's two files only where that is missing; files of the folder layout
    written beside a rep_NN.jsonl (a user's, in the repetition's folder) change nothing, not even the entry.
    Experiment by experiment, and a block whose experiments are all done checked at once."""
    half_done(tmp_path)
    monkeypatch.setattr(bulk_runs, "BLOCK", block)
    beside = out(tmp_path) / "walk" / "s1.0_fa-1" / "log" / "rep_00"
    (beside / "results.jsonl").write_text("")
    (beside / "status.json").write_text(json.dumps({"state": Record.STOPPED.value}))
    looked: list[str] = []
    with monkeypatch.context() as looking:
        record_lookups(looking, looked)
        whole = plan_of(expand(tmp_path))
    assert decisions(whole) == decisions(plan_of(list(expand(tmp_path))))
    done = [found[0] for run in done_runs(whole) for found in run.found
            if run.document.base_folder == str(out(tmp_path) / "walk")]
    assert {OLD_LAYOUT, "s1.0_fa-1"} <= set(done)
    for part in done:
        folder = out(tmp_path) / "walk" / part
        expected = {folder / "config.yml"}
        for rep in range(2):
            one, results, status = RepetitionPaths.of(str(folder), rep).files
            expected |= {one} if os.path.exists(one) else {one, results, status}
        assert {path for path in looked if path.startswith(f"{folder}{os.sep}")} == set(map(str, expected))


def usual_rep(rows=3, seconds=0.75, timed=3, status=None, rep=0):
    return [rep, status, rows, seconds, timed]


UNUSUAL = {  # one experiment's repetitions that `finished_times` does not sum as a usual one's
    "a finished status without a mean": [usual_rep(status={"state": Record.FINISHED.value, "iterations_done": 3})],
    "a finished status with its mean": [usual_rep(status={"state": Record.FINISHED.value, "iterations_done": 3,
                                                          "mean_iteration_time": 9.0})],
    "a stopped status": [usual_rep(rows=1, status={"state": Record.STOPPED.value, "iterations_done": 1})],
    "rows missing": [usual_rep(rows=2)],
    "no row timed": [usual_rep(seconds=0.0, timed=0)],
    "another repetition's number": [usual_rep(rep=1)],
    "two repetitions": [usual_rep(), usual_rep(rep=1)],
    "an infinite time": [usual_rep(seconds=float("inf"))],
}


@pytest.mark.parametrize("unusual", UNUSUAL.values(), ids=list(UNUSUAL))
def test_usual_experiments_of_a_folder_index_are_summed_as_each_would_be(unusual):
    """`usual_folder_times` (a block of -p's finished experiments summed at once, where no live run can hold one)
    gives what `finished_times` gives each, and nothing for a block holding an experiment it does not sum alike."""
    from cluster_work.progress_figures import finished_times, usual_folder_times

    usual = [[usual_rep(seconds=0.1 * at + 0.3, timed=1 + at % 3)] for at in range(7)]
    each = [finished_times(None, f"e{at}", reps, 1, 3) for at, reps in enumerate(usual)]
    assert usual_folder_times(usual, 1, 3) == tuple(zip(*each))
    assert usual_folder_times(usual, 2, 3) is None  # (a document of two repetitions: none of these is done)
    assert usual_folder_times(usual, 1, 4) is None
    assert usual_folder_times([*usual, None], 1, 3) is None  # (one read from its files)
    for at in (0, 3, 7):
        assert usual_folder_times([*usual[:at], unusual, *usual[at:]], 1, 3) is None
