"""What the command line picks: experiments (-e), job indices (-j), one repetition (-r/-i), and how to
treat earlier results (-d, -o, -I)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ConfigError
from .expansion import ExpandedExperiment, Expansion


@dataclass(frozen=True)
class Selection:
    """What the command line picked: experiments (-e), job indices (-j), one repetition (-r/-i)."""

    experiments: Sequence[str] = ()
    jobs: Sequence[int] = ()  # the original's -j: one job index, or slice(start, stop[, step]) of them
    repetition: int | None = None
    iteration: int | None = None

    def job_indices(self, total: int) -> range | None:
        """The job indices -j picks among `total` jobs (None: all), as the original slices its job list."""
        if not self.jobs:
            return None
        if len(self.jobs) > 3:
            raise ConfigError("-j/--job takes one job index, or START STOP [STEP] (jobs START to STOP-1), "
                              f"got {len(self.jobs)} values")
        if len(self.jobs) == 1:
            index = self.jobs[0]
            if not -total <= index < total:
                raise ConfigError(f"-j/--job: no job {index}; the selected experiments have jobs 0 to "
                                  f"{total - 1} (see --list)")
            return range(index % total, index % total + 1)
        if len(self.jobs) == 3 and self.jobs[2] == 0:
            raise ConfigError("-j/--job: the step must not be 0")
        picked = range(total)[slice(*self.jobs)]
        if not picked:
            raise ConfigError(f"-j/--job {' '.join(map(str, self.jobs))} selects no job; the selected "
                              f"experiments have jobs 0 to {total - 1} (see --list)")
        return picked


@dataclass(frozen=True)
class Policy:
    """How to treat earlier results: -d deletes them, -o overwrites changed ones, -I ignores changes,
    --retry-failed runs quarantined repetitions again (plain failed ones are retried anyway)."""

    delete: bool = False
    overwrite: bool = False
    ignore_config: bool = False
    retry_failed: bool = False


def select_experiments(expanded: Sequence[ExpandedExperiment], names: Sequence[str],
                       source: str) -> Sequence[ExpandedExperiment]:
    """Keep the experiments named by base name, expanded name, or the name the original ClusterWork gave
    them; an unknown name is a ConfigError. Whole documents stay lazy (an Expansion)."""
    if not names:
        return expanded
    wanted = set(names)
    if isinstance(expanded, Expansion) and wanted <= {d.base for d in expanded.documents}:
        return Expansion([d for d in expanded.documents if d.base in wanted])
    selected = [e for e in expanded if wanted & {e.name, e.base_name, e.original_name}]
    known = {name for e in selected for name in (e.name, e.base_name, e.original_name)}
    unknown = [name for name in names if name not in known]
    if unknown:
        bases = sorted({e.base_name for e in expanded})
        raise ConfigError(f"{source}: unknown experiment(s) {', '.join(map(repr, unknown))}; "
                          f"the config defines: {', '.join(bases)}")
    return selected
