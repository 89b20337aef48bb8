"""Quarantine: deciding from the attempts journals which repetition ends runs (fast, in-process), and the
journals themselves (torn lines, dead and live writers, compaction)."""
import fcntl
import os

import pytest
from quarantine_helpers import begin, end, ended, journal

from cluster_work.attempts import (
    AttemptJournal,
    compact,
    last_open_attempt,
    lost_attempt_signal,
    parse,
    parse_attempt,
    read_index,
)
from cluster_work.quarantine import Attempt, assess, crash_signal, mark_innocents, trailing
from cluster_work.repetition_state import decide
from cluster_work.vocabulary import RepetitionState, Suspicion

A, B, C = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"


@pytest.mark.parametrize("attempts, rows_now, expected", [
    ([], 3, None),
    ([Attempt(A, 1.0, 0)], 2, Suspicion(1, 2)),
    ([Attempt(A, 1.0, 0), Attempt(B, 2.0, 2)], 2, Suspicion(2, 2)),
    ([Attempt(A, 1.0, 0), Attempt(B, 2.0, 2)], 3, Suspicion(1, 3)),  # made progress in B: an innocent
    ([Attempt(A, 1.0, 0), Attempt(B, 2.0, 3)], 1, Suspicion(1, 1)),  # started over in B, died before A's point
    ([Attempt(A, 1.0, 0), Attempt(B, 2.0, 3), Attempt(C, 3.0, 4)], 4, Suspicion(2, 4)),
    ([Attempt(A, 1.0, 2), Attempt(B, 2.0, 2), Attempt(C, 3.0, 2)], 2, Suspicion(3, 2)),
    ([Attempt(A, 1.0, 2), Attempt(A, 1.0, 2)], 2, Suspicion(1, 2)),  # one run counts once
    ([Attempt(A, 1.0, 0), Attempt(B, 2.0, 0)], 0, Suspicion(2, 0)),  # dies in reset: before any row
], ids=["none", "one-death", "two-deaths-same-point", "progress-between", "died-elsewhere",
        "last-two-of-three", "three-in-a-row", "same-run-twice", "in-reset"])
def test_assess(attempts, rows_now, expected):
    assert assess(attempts, rows_now) == expected


P, I, Q = ("pill", 0), ("innocent", 0), ("pill without a stack", 0)
SAME_POINT = (Attempt(A, 1.0, 2), Attempt(B, 2.0, 2))  # open at iteration 2 in both dead runs A and B


@pytest.mark.parametrize("suspects, crashed, quarantined", [
    ({P: SAME_POINT, I: SAME_POINT}, {A: {P}, B: {P}}, {P}),
    ({P: SAME_POINT, I: SAME_POINT}, {}, {P, I}),  # no stack anywhere (host lost, OOM kill): everyone open
    ({P: SAME_POINT, I: SAME_POINT}, {A: {P}}, {P}),  # B died without a stack: I ended only it
    ({P: SAME_POINT, I: SAME_POINT}, {A: {P, I}, B: {P, I}}, {P, I}),  # two that crash at once
    ({P: SAME_POINT[1:], Q: (Attempt(A, 1.0, 2), *SAME_POINT[1:], Attempt(C, 3.0, 2))}, {B: {P}}, {Q}),
], ids=["culprit-with-a-stack-and-an-innocent", "no-signal-anywhere", "signal-in-one-run",
        "two-culprits-in-each-run", "a-pill-without-a-stack-passes-over-an-explained-run"])
def test_a_crash_with_a_stack_makes_the_other_open_attempts_of_its_run_innocents(suspects, crashed, quarantined):
    marked = mark_innocents(suspects, crashed)
    found = {key for key, attempts in marked.items() if (suspicion := assess(attempts, 2)) and suspicion.quarantined}
    assert found == quarantined


def test_an_innocent_in_every_run_is_not_suspected_at_all():
    marked = mark_innocents({P: SAME_POINT, I: SAME_POINT}, {A: {P}, B: {P}})
    assert [a.innocent for a in marked[I]] == [True, True] and assess(marked[I], 2) is None
    assert assess(marked[P], 2) == Suspicion(2, 2)


STACK = 'Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n  File "x.py"\n'


def _log_in_parts(tmp_path, first: str, *parts: str) -> list[int]:
    """`walk/p/rep.log` written as `first`, then each of `parts` appended: the log's size before each part."""
    log = tmp_path / "walk" / "p" / "rep.log"
    log.parent.mkdir(parents=True)
    log.write_text(first)
    sizes = []
    for part in parts:
        sizes.append(log.stat().st_size)
        with open(log, "a") as handle:
            handle.write(part)
    return sizes


@pytest.mark.parametrize("before, in_a, in_b, quarantined", [
    ("", STACK, STACK, {"p"}),
    ("", "", "", {"p", "i"}),  # SIGKILLed twice (OOM): no stack, the rule suspects every open attempt
    ("", STACK, "", {"p"}),  # i's attempt in A is innocent; B (no stack) suspects it once
    ("", "", "some output\n", {"p", "i"}),
    (STACK, "a print\n", "", {"p", "i"}),  # a stack from before run A explains neither A nor B
    ("x" * 20000, "y" * 20000 + STACK, "z" * 20000, {"p"}),  # long logs: the stack ends its attempt's part
], ids=["segv-twice", "sigkill-twice", "segv-then-sigkill", "no-stack-with-output", "stack-from-an-earlier-run",
        "long-output"])
def test_index_finds_the_crash_of_each_attempt_in_its_part_of_the_log(tmp_path, before, in_a, in_b, quarantined):
    """Journals of two dead runs, each with p and i open at iteration 2; p's log holds what p wrote before,
    during A and during B: its begins name the log's size then."""
    size_a, size_b = _log_in_parts(tmp_path, before, in_a, in_b)
    journal(tmp_path, A, 1, begin("p", 0, 2, 1, "walk/p/rep.log", size_a))
    journal(tmp_path, A, 2, begin("i", 0, 2, 1.5))
    journal(tmp_path, B, 1, begin("p", 0, 2, 10, "walk/p/rep.log", size_b))
    journal(tmp_path, B, 2, begin("i", 0, 2, 10.5))
    index = read_index(str(tmp_path))
    suspicions = {name: assess(index.of(name, rep), 2) for name, rep in index.suspects}
    assert {name for name, suspicion in suspicions.items() if suspicion and suspicion.quarantined} == quarantined


@pytest.mark.parametrize("before, during, signal", [
    ("", STACK, "SIGSEGV"),
    (STACK, "output\n", None),  # a stack from an earlier attempt is not this one's
    ("", "", None),  # killed without a stack (SIGKILL, a host lost)
], ids=["stack-during-the-attempt", "stack-from-before", "no-stack"])
def test_the_signal_of_a_lost_attempt_is_read_from_its_part_of_the_log(tmp_path, before, during, signal):
    """How an MPI rank that ULFM reports only as gone died: the dead process's open attempt names the log
    and its size when the attempt began; faulthandler's stack after that offset names the signal."""
    [offset] = _log_in_parts(tmp_path, before, during)
    journal(tmp_path, A, 1, begin("p", 0, 2, 1, "walk/p/rep.log", offset))
    journal(tmp_path, A, 2, begin("i", 0, 2, 1.5, "walk/p/rep.log", 0))  # another repetition's attempt
    assert lost_attempt_signal(str(tmp_path), ("p", 0)) == signal


def test_a_live_process_attempt_is_not_taken_for_a_lost_one(tmp_path):
    log = tmp_path / "p.log"
    log.write_text(STACK)
    path = journal(tmp_path, A, 1, begin("p", 0, 2, 1, "p.log", 0))
    with open(path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as its living writer holds it
        assert lost_attempt_signal(str(tmp_path), ("p", 0)) is None
    assert lost_attempt_signal(str(tmp_path), ("p", 0)) == "SIGSEGV"


def test_compaction_keeps_where_each_attempt_began_in_its_log(tmp_path):
    log = tmp_path / "p.log"
    log.write_text("output\n" + STACK)
    journal(tmp_path, A, 1, begin("p", 0, 2, 1, "p.log", 7))
    journal(tmp_path, A, 2, begin("i", 0, 2, 1.5))
    compact(str(tmp_path))
    assert not list((tmp_path / ".cluster_work_attempts").glob(f"{A}.*"))
    index = read_index(str(tmp_path))
    assert index.of("p", 0)[0].log_offset == 7 and index.of("i", 0)[0].innocent


@pytest.mark.parametrize("runs, quarantined", [(1, False), (2, True), (3, True)], ids=["once", "twice", "thrice"])
def test_quarantined_from_two_runs_on(runs, quarantined):
    suspicion = Suspicion(runs, 5, "SIGSEGV")
    assert suspicion.quarantined == quarantined
    assert ("suspected of ending" in suspicion.describe()) == quarantined
    assert "iteration 5; SIGSEGV" in suspicion.describe()


@pytest.mark.parametrize("closed, kept", [
    ([], [1.0, 2.0]),
    ([(C, 1.5)], [2.0]),
    ([(C, 2.5)], []),
    ([(C, 0.5), (C, 1.5)], [2.0]),
    ([(B, 2.001)], [2.0]),  # a group's leader closed (a stop signal) while its member died
    ([(B, 2.001), (C, 1.5)], [2.0]),
], ids=["never-closed", "closed-between", "closed-after-all", "several-closes", "same-run-closes-nothing",
        "same-run-and-later-run"])
def test_trailing_keeps_the_unclosed_attempts_no_other_run_closed_after(closed, kept):
    unclosed = [Attempt(B, 2.0, 2), Attempt(A, 1.0, 0)]
    assert [a.began for a in trailing(unclosed, closed)] == kept


@pytest.mark.parametrize("text, signal", [
    ("", None),
    ("Fatal Python error: Segmentation fault\n\nCurrent thread 0x1 (most recent call first):\n", "SIGSEGV"),
    ("Fatal Python error: Aborted\n...\nFatal Python error: Bus error\n", "SIGBUS"),
    ("Fatal Python error: Floating-point exception\n", "SIGFPE"),
    ("RuntimeError: Fatal error in my code\n", None),
], ids=["empty", "segv", "last-one-wins", "fpe", "not-faulthandler"])
def test_crash_signal_from_faulthandler_output(text, signal):
    assert crash_signal(text) == signal


@pytest.mark.parametrize("state_args, expected", [
    (({}, 5, 2, False, True), RepetitionState.QUARANTINED),
    (({}, 5, 5, False, True), RepetitionState.FINISHED),  # all rows saved: nothing left to suspect
    (({}, 5, 2, True, True), RepetitionState.RUNNING),
    (({"state": "failed"}, 5, 2, False, True), RepetitionState.QUARANTINED),
    (({"state": "failed"}, 5, 2, False, False), RepetitionState.FAILED),
    (({"state": "stopped"}, 5, 2, False, True), RepetitionState.STOPPED),
], ids=["partial", "finished", "running", "failed-before", "failed", "stopped"])
def test_decide_with_quarantine(state_args, expected):
    assert decide(*state_args) == expected


@pytest.mark.parametrize("line, parsed", [
    ('begin 12.500 3 7 "walk__x1"', ("begin", 12.5, ("walk__x1", 3), 7)),
    ('begin 12.500 3 7 "walk x1" 120 "walk/x 1/log/rep_03/rep.log"', ("begin", 12.5, ("walk x1", 3), 7)),
    ('end 13.000 3 "walk__x 1"', ("end", 13.0, ("walk__x 1", 3), 0)),
    ("stop 14.000 SIGTERM", ("stop", 14.0, None, 0)),
], ids=["begin", "begin-with-its-log", "end-name-with-space", "stop"])
def test_parse(line, parsed):
    assert parse(line) == parsed


@pytest.mark.parametrize("line", ['begin 12.5 3 7 "walk', "begin 12.5", "bogus 1 2", "", 'begin 12.5 3 7 "walk" 12 "lo',
                                  'begin 12.5 3 7 "walk" 12 "log"begin 13.0 3 7 "walk"'],
                         ids=["torn-name", "torn-fields", "unknown", "empty", "torn-log", "torn-then-joined"])
def test_parse_refuses_torn_lines(line):
    with pytest.raises(ValueError):
        parse(line)


@pytest.mark.parametrize("lines, torn, open_one", [
    ([begin("e", 0, 0, 1)], "", ("e", 0, 0)),
    ([begin("e", 0, 0, 1), end("e", 0, 2)], "", None),
    ([begin("e", 0, 0, 1), end("e", 0, 2), begin("e", 1, 3, 3)], "", ("e", 1, 3)),
    ([begin("e", 0, 0, 1), "stop 2.000 SIGTERM"], "", None),
    ([begin("e", 0, 0, 1)], 'end 2.000 0 "e', ("e", 0, 0)),  # the end was torn by a power loss
    ([begin("e", 0, 0, 1)], "be", ("e", 0, 0)),
    ([], 'begin 1.000 0 0 "e', None),  # a torn begin: the process never got to run it
    ([begin("e", 0, 0, 1), 'end 2.000 0 "e', begin("e", 1, 3, 3)], "", ("e", 1, 3)),  # torn, then more
], ids=["open", "closed", "last-open", "stopped", "torn-end", "torn-garbage", "torn-begin-only",
        "torn-in-the-middle"])
def test_a_dead_journal_leaves_open_only_its_last_begin(tmp_path, lines, torn, open_one):
    path = journal(tmp_path, A, 1, *lines, torn=torn)
    found = last_open_attempt(str(path), A)
    assert (None if found is None else (*found[0], found[1].saved)) == open_one


def test_a_long_journal_is_read_from_its_tail(tmp_path):
    lines = [line for n in range(2000) for line in (begin("e", n, 0, n), end("e", n, n + 0.5))]
    path = journal(tmp_path, A, 1, *lines, begin("e", 7, 2, 9999))
    assert path.stat().st_size > 20 * 4096
    key, attempt = last_open_attempt(str(path), A)
    assert key == ("e", 7) and attempt == Attempt(A, 9999.0, 2)


def test_index_counts_dead_runs_only(tmp_path):
    """Dead runs' open attempts count; an ended run's do not (the run reported its lost worker itself);
    a live run's (some journal of it locked) count for nothing; a later closed attempt clears."""
    journal(tmp_path, A, 1, begin("x", 0, 0, 1), end("x", 0, 2), begin("y", 0, 0, 3))  # dead
    journal(tmp_path, A, 2, begin("z", 0, 0, 1))  # dead: its worker died with the run
    journal(tmp_path, B, 1, begin("y", 0, 2, 10))  # ended run: its open attempt is a reported worker death
    journal(tmp_path, B, 2, begin("w", 0, 0, 10))
    ended(tmp_path, B)
    journal(tmp_path, C, 1, begin("z", 0, 1, 20), end("z", 0, 21), begin("v", 0, 0, 22))  # alive
    live = open(journal(tmp_path, C, 2), "a")
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        index = read_index(str(tmp_path))
    finally:
        live.close()
    # y: open in A, then begun and survived in B (ended): closed after; z: closed only in the live run C;
    # v: only in the live run
    assert index.suspects == {("z", 0): (Attempt(A, 1.0, 0),)}
    assert index.of("y", 0) == () and index.of("v", 0) == ()
    after = read_index(str(tmp_path))  # C's lock is gone: C is dead now, and it closed z after A
    assert after.suspects == {("v", 0): (Attempt(C, 22.0, 0),)}


def test_two_dead_runs_in_a_row_make_a_suspect_of_two_runs(tmp_path):
    journal(tmp_path, A, 1, begin("x", 0, 0, 1), end("x", 0, 2), begin("p", 0, 0, 3))
    journal(tmp_path, B, 1, begin("p", 0, 2, 10))
    index = read_index(str(tmp_path))
    assert index.of("p", 0) == (Attempt(A, 3.0, 0), Attempt(B, 10.0, 2))
    assert assess(index.of("p", 0), 2).quarantined


@pytest.mark.parametrize("crash_between", [False, True], ids=["clean", "killed-before-removing"])
def test_compaction_keeps_what_matters_and_repeats_safely(tmp_path, crash_between):
    files = [journal(tmp_path, A, 1, begin("x", 0, 0, 1), end("x", 0, 2), begin("p", 0, 0, 3)),
             journal(tmp_path, B, 1, begin("p", 0, 2, 10)),
             journal(tmp_path, C, 1, begin("x", 1, 0, 11), end("x", 1, 12))]
    ended(tmp_path, C)
    before = read_index(str(tmp_path)).suspects
    copies = {path: path.read_bytes() for path in files}
    compact(str(tmp_path))
    assert not any(path.exists() for path in files)
    assert read_index(str(tmp_path)).suspects == before
    if crash_between:  # as if killed after the summary was written, before the journals were removed
        for path, data in copies.items():
            path.write_bytes(data)
        compact(str(tmp_path))
        summary = (tmp_path / ".cluster_work_attempts" / "summary.jsonl").read_text().splitlines()
        assert len(summary) == 2  # each attempt once
    journal(tmp_path, C + "d", 1, begin("p", 0, 2, 30), end("p", 0, 31))  # p survived a later run
    ended(tmp_path, C + "d")
    assert read_index(str(tmp_path)).suspects == {}


def test_the_journal_writes_one_line_per_event_and_holds_its_lock(tmp_path):
    from cluster_work.expansion import ExpandedExperiment
    from cluster_work.store import is_locked
    from cluster_work.vocabulary import Segment

    config = {"_config_path": str(tmp_path), "path": str(tmp_path / "e"), "repetitions": 1, "iterations": 3}
    segment = Segment(0, ExpandedExperiment("e", "e", config), 0, run_id=A)
    writer = AttemptJournal()
    writer.begin(segment, 2)
    writer.stopped(15)
    writer.end(segment)
    writer.begin(Segment(1, segment.experiment, 0), 0)  # not stamped: recorded nowhere
    [path] = (tmp_path / ".cluster_work_attempts").iterdir()
    assert path.name == f"{A}.{os.uname().nodename}.{os.getpid()}" and is_locked(str(path))
    kinds = [parse(line)[0] for line in path.read_text().splitlines()]
    assert kinds == ["begin", "stop", "end"]
    writer.release(A)
    assert not is_locked(str(path))


@pytest.mark.parametrize("where", ["e/log/rep_00/rep.log", "../elsewhere/rep.log"], ids=["in-the-sweep", "outside"])
def test_a_begin_names_its_log_and_the_bytes_it_held(tmp_path, where):
    from cluster_work.expansion import ExpandedExperiment
    from cluster_work.vocabulary import Segment

    sweep = tmp_path / "sweep"
    log = sweep / where
    log.parent.mkdir(parents=True)
    config = {"_config_path": str(sweep), "path": str(sweep / "e"), "repetitions": 1, "iterations": 3}
    segment = Segment(0, ExpandedExperiment("e", "e", config), 0, run_id=A)
    writer = AttemptJournal()
    writer.begin(segment, 0, str(log))  # no log yet
    log.write_text("12 bytes...\n")
    writer.begin(segment, 1, str(log))
    writer.release(A)
    [path] = (sweep / ".cluster_work_attempts").iterdir()
    attempts = [parse_attempt(line, A)[1] for line in path.read_text().splitlines()]
    assert [(a.saved, a.log_offset) for a in attempts] == [(0, 0), (1, 12)]
    assert {os.path.normpath(sweep / a.log) for a in attempts} == {os.path.normpath(log)}


def test_deleting_an_experiment_forgets_its_attempts(tmp_path):
    """-d/-o: the attempts of a deleted experiment say nothing about the one that starts over."""
    journal(tmp_path, A, 1, begin("p", 0, 2, 1))
    journal(tmp_path, B, 1, begin("q", 0, 2, 2))
    compact(str(tmp_path), forget=frozenset({"p"}))
    assert read_index(str(tmp_path)).suspects == {("q", 0): (Attempt(B, 2.0, 2),)}
    compact(str(tmp_path), forget=frozenset({"q"}))  # from the summary too
    assert read_index(str(tmp_path)).suspects == {}
