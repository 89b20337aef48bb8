"""The campaign loop's `Composite`: several drivers side by side, each seeing its own indices."""
from cluster_work.campaign import Composite
from cluster_work.expansion import ExpandedExperiment
from cluster_work.vocabulary import Outcome, OutcomeKind, Segment


class Recorder:
    """A driver of two fixed segments that keeps the outcomes it is given."""

    def __init__(self):
        self.seen = []

    def start(self):
        experiment = ExpandedExperiment("a", "a", {"iterations": 1})
        return [Segment(0, experiment, rep=0), Segment(1, experiment, rep=1)]

    def on_outcome(self, outcome):
        self.seen.append(outcome)
        return ()

    def cancellations(self):
        return []


def test_each_driver_sees_its_own_index_and_the_executors_outcome_is_left_as_it_came():
    first, second = Recorder(), Recorder()
    composite = Composite([first, second])
    sent = list(composite.start())
    assert [item.index for item in sent] == [0, 1, 2, 3]
    came = Outcome(3, "b rep 1", OutcomeKind.FINISHED)
    composite.on_outcome(came)
    assert [o.index for o in second.seen] == [1] and first.seen == []
    assert came.index == 3  # an outcome is never rewritten in place
