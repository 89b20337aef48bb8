"""The runner in an MPI group, in-process: two ranks as threads over a communicator made of a condition."""
import threading

from thread_comm import ThreadComm

from cluster_work.backends.base import TaskContext
from cluster_work.errors import StoreError
from cluster_work.expansion import expand_all
from cluster_work.runner import run_segment
from cluster_work.store import ResultsWriter
from cluster_work.vocabulary import OutcomeKind, RunSettings, Segment


def test_a_leader_that_cannot_write_releases_its_group(tmp_path, monkeypatch):
    from experiments import GroupSum

    [experiment] = expand_all([{"name": "g", "repetitions": 1, "iterations": 5, "path": str(tmp_path / "out")}])
    appends = []

    def append(self, row):  # the third row meets a full disk
        appends.append(row)
        if len(appends) == 3:
            raise StoreError("cannot write results.jsonl: No space left on device")

    monkeypatch.setattr(ResultsWriter, "append", append)
    shared = {"condition": threading.Condition()}
    outcomes = {}

    def rank(number):
        comm = ThreadComm(number, 2, shared)
        outcomes[number] = run_segment(GroupSum, Segment(0, experiment, 0), RunSettings(sync=False),
                                       TaskContext(comm=comm, write=number == 0))

    threads = [threading.Thread(target=rank, args=(number,), daemon=True) for number in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)  # a member left waiting in a collective would never return
    assert not any(thread.is_alive() for thread in threads), "a rank of the group hangs in a collective"
    assert outcomes[0].kind == OutcomeKind.STORE_FAILURE and outcomes[1].kind == OutcomeKind.STORE_FAILURE

