"""The campaign loop: `Composite` runs several drivers side by side, each seeing its own indices, and
`drive` carries out each driver's `Step` (what to run, what to cancel, whether its own store failed)."""
from cluster_work.backends import SequentialExecutor
from cluster_work.campaign import Composite, PlainSweep, drive
from cluster_work.expansion import ExpandedExperiment
from cluster_work.stopping import RunStop, stop_requested
from cluster_work.vocabulary import Outcome, OutcomeKind, Segment, Step

EXPERIMENT = ExpandedExperiment("a", "a", {"iterations": 1})


class Recorder:
    """A driver of two fixed segments that keeps the outcomes it is given; on the first it asks to cancel
    its second segment and says its own store failed (`failing`)."""

    def __init__(self, failing=False):
        self.seen, self.failing = [], failing

    def start(self):
        return [Segment(0, EXPERIMENT, rep=0), Segment(1, EXPERIMENT, rep=1)]

    def on_outcome(self, outcome):
        self.seen.append(outcome)
        return Step(cancel=(1, 7), store_failed=True) if self.failing else Step()


def test_each_driver_sees_its_own_index_and_the_executors_outcome_is_left_as_it_came():
    first, second = Recorder(), Recorder()
    composite = Composite([first, second])
    sent = list(composite.start())
    assert [item.index for item in sent] == [0, 1, 2, 3]
    came = Outcome(3, "b rep 1", OutcomeKind.FINISHED)
    assert composite.on_outcome(came) == Step([], (), False)
    assert [o.index for o in second.seen] == [1] and first.seen == []
    assert came.index == 3  # an outcome is never rewritten in place


def test_a_step_comes_back_in_the_runs_indices_with_only_the_cancels_still_in_flight():
    first, second = Recorder(), Recorder(failing=True)
    composite = Composite([first, second])
    list(composite.start())
    step = composite.on_outcome(Outcome(2, "a rep 0", OutcomeKind.FINISHED))
    assert step == Step([], (3,), True)  # its own 1 is the run's 3; its 7 was never in flight


def finish(item, context):
    kind = OutcomeKind.INTERRUPTED if context.stop_requested() else OutcomeKind.FINISHED
    return Outcome(item.index, item.label, kind)


def test_a_drivers_own_store_failure_stops_the_run_at_once():
    ended, stop, process_stopped = [], RunStop(), stop_requested()  # the run's own flag: the process's stays as it was
    plain = PlainSweep([Segment(n, EXPERIMENT, rep=n) for n in range(5)], ended.append)
    failing = Recorder(failing=True)
    with SequentialExecutor(finish, stop=stop) as executor:
        drive(Composite([failing, plain]), executor)
    assert stop.requested() and stop_requested() == process_stopped
    assert len(failing.seen) == 1 and ended == []  # nothing more was started: the other segments wait for a rerun
