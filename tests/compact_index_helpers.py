"""What the tests of a compact store's index share: its stores in a sweep folder, a fresh process's view (nothing
read yet), and everything planning, --list and -p say of the sweep of huge_sweep_helpers, whole."""
from __future__ import annotations

from huge_sweep_helpers import expand, text

from cluster_work import compact_catalog, compact_index
from cluster_work.paths import COMPACT_FOLDER
from cluster_work.planning import make_plan
from cluster_work.reporting import print_plan, print_progress, write_progress_json
from cluster_work.selection import Policy, Selection


def plan_of(experiments, selection=Selection()):
    return make_plan(experiments, selection, Policy(), "test")


def roots(tmp_path):
    return sorted(str(path) for path in (tmp_path / "out").glob(f"*/{COMPACT_FOLDER}"))


def forget_summaries():
    compact_index._summaries.clear()  # as a new process starts: nothing read yet
    compact_catalog._catalogs.clear()


def everything(tmp_path):
    """What planning, --list and -p/-P (--json) say of the sweep, whole (by documents: the bulk paths)."""
    whole = plan_of(expand(tmp_path, "compact"))
    return (vars(whole.totals), [vars(job) for job in whole.jobs], text(print_plan, whole),
            text(print_plan, whole, as_json=True), text(print_progress, expand(tmp_path, "compact"), True),
            *(text(write_progress_json, expand(tmp_path, "compact"), full) for full in (True, False)))
