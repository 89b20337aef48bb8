"""How planning, progress and loading scale: `python benchmarks/planning_scale.py`.

- expanding and planning 10^5 (experiment, repetition) jobs (a 1,000-point grid x 100 repetitions) and
  taking every job, as a run does, first on an empty folder, then with every experiment's config on
  disk: seconds and peak memory; and how soon a 10^6-point grid hands out its first job;
- `-p` (the progress table) over 10^4 finished repetitions (100 experiments x 100);
- `load_results` of those 10^4 repetitions x 100 iterations (10^6 rows), with pyarrow's reader where it is
  installed, then with the plain reader alone (as without pyarrow); pandas and pyarrow imported before.
- (issue 25) parsing a config whose grid holds 10^4 values (its YAML alone, CPU); what a user asks of a huge
  sweep, from the command line as a user runs it, of a `--huge` x `--huge` grid (10^6 points, 1 repetition,
  1 iteration, a no-op experiment): `--list` and `--list --json`
  (seconds to the first line and to the end, to a pipe read and dropped), `-p`, `-p --json`, `-P` (to its
  first line: its 2 x 10^6 rows take minutes), each process's peak memory; planning a resume of a `--resume`
  x 100 grid whose every other experiment finished (first job, peak memory; the seconds per finished
  experiment say what a half-done 10^6 sweep costs), the same in a compact store with the index its last run
  wrote and without one (the first look after a kill -9), and its `-p`, `-p --json`, `--list`; rank 0's peak
  memory over a streamed sweep of `--jobs` jobs (the engine with an instant task: only rank 0's share).
  `--baseline FOLDER` runs each of these command lines with that other copy of cluster_work too (e.g.
  `git worktree add /tmp/main main`), side by side in the same run; `--compact-only`: the half-done compact
  sweep alone (its finished half every other point, the worst case for runs of alike experiments, unless
  `--contiguous`), with each command line's CPU seconds (on a loaded machine they say more than its wall time);
  its first `-p` after the index is stale by a small tail (a run killed after its index was written; alone:
  `--stale-only`); `--launcher-run SIZE`: a real run of a SIZE x 100 compact sweep with -n 2, its launcher's peak
  memory (VmHWM at its exit) and `load_results` of the store it left (sealed at its end).
Targets (issue 8): planning < 5 s and < 500 MB, -p < 2 s; (issue 15) load_results < 1 s; (issue 25) for
10^6 points --list's first line < 2 s and all < 15 s, -p and -p --json < 5 s, a half-done resume < 5 s,
rank 0 < 1 GB.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from unittest import mock

import yaml

from cluster_work import arrow_rows, load_results, results
from cluster_work.durability import committer
from cluster_work.expansion import expand_all
from cluster_work.paths import CONFIG_FILE, LOCKS_FILE, compact_root, segment_name
from cluster_work.planning import make_plan
from cluster_work.reporting import print_progress
from cluster_work.rows import to_plain
from cluster_work.selection import Policy, Selection
from cluster_work.store import _YAML_DUMPER, MARKER, ExperimentStore, encode_row


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, action) -> object:
    started = time.perf_counter()
    result = action()
    print(f"  {label:<58} {time.perf_counter() - started:6.2f} s   peak {peak_mb():6.0f} MB")
    return result


def import_readers() -> None:
    import pandas  # noqa: F401

    try:
        import pyarrow.json  # noqa: F401
    except ImportError:
        pass


def make_finished_sweep(folder: str, experiments: int, repetitions: int, iterations: int) -> list:
    """Write a finished sweep directly in the store's format (as a run would leave it)."""
    document = {"name": "big", "repetitions": repetitions, "iterations": iterations, "path": folder,
                "grid": {"p": list(range(experiments))}}
    expanded = expand_all([document])
    for experiment in expanded:
        store = ExperimentStore(experiment.path)
        store.write_config(experiment.config)
        for rep in range(repetitions):
            repetition = store.repetition(rep)
            repetition.create_folder()
            with open(repetition.results_file, "wb") as handle:
                handle.write(b"".join(encode_row({"iteration": n, "loss": 1 / (n + 1), "name": "x",
                                                  "iteration_time": 0.01, "repetition_time": 0.01 * n})
                                      for n in range(iterations)))
    return expanded


NOOP = """from cluster_work import ClusterWork


class Noop(ClusterWork):
    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        return {"x": n}


if __name__ == "__main__":
    Noop.run()
"""


LAUNCHER = """import atexit, os, runpy, sys

launcher = os.getpid()


def peak():  # the launcher's own peak memory (VmHWM) at its exit, its workers' apart: the last line of stderr
    if os.getpid() == launcher:
        with open("/proc/self/status") as status:
            print("peak", next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024,
                  file=sys.stderr)


atexit.register(peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def launcher_run(root: str, size: int, versions: list[tuple[str, dict[str, str]]], workers: int, limit: float,
                 rounds: int) -> None:
    """A real run from the command line (`noop.py config -n workers`) of a `size` x 100 one-iteration compact sweep,
    each version in a folder of its own: its seconds, its launcher's peak memory (its index rewrites every 60 s and,
    at its end, the last rewrite and the seal), then `load_results` of what it left (`rounds` times)."""
    for name, text in (("noop.py", NOOP), ("launcher.py", LAUNCHER)):
        with open(os.path.join(root, name), "w") as handle:
            handle.write(text)
    print(f"  a real run of a {size} x 100 compact sweep, -n {workers}: seconds, the launcher's peak memory, then"
          " load_results")
    for version, env in versions:
        path = os.path.join(root, f"run-{version}.yml")
        with open(path, "w") as handle:
            json.dump({"name": "run", "repetitions": 1, "iterations": 1, "store": "compact",
                       "path": os.path.join(root, f"run-{version}"),
                       "grid": {"a": list(range(size)), "b": list(range(100))}}, handle)
        started = time.perf_counter()
        with open(os.path.join(root, f"run-{version}.log"), "w+") as log:
            subprocess.run([sys.executable, "launcher.py", "noop.py", path, "-n", str(workers)], cwd=root, env=env,
                           stdout=subprocess.DEVNULL, stderr=log, check=True, timeout=limit)
            log.seek(0)
            peak = float(log.read().split()[-1])
        print(f"    {version:<9} run {time.perf_counter() - started:7.1f} s   launcher peak {peak:5.0f} MB")
        for _ in range(rounds):
            seconds, cpu, load_peak, rows = probed("load", path, env, limit)
            print(f"    {version:<9} load_results {seconds:6.2f} s ({cpu:6.2f} s CPU) for {rows:.0f} rows   peak"
                  f" {load_peak:5.0f} MB")


def command_figures(argv: list[str], env: dict[str, str], cwd: str, first_only: bool,
                    limit: float) -> tuple[float, float, float, float]:
    """(seconds to the first line of stdout, seconds to its end, peak MB, CPU seconds) of `argv`, its output read
    and dropped as a pipe to a reader does; `first_only`: killed after its first line; killed after `limit`
    seconds (then what it had not done yet is nan)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    timer = threading.Timer(limit, process.kill)
    timer.start()
    first = time.perf_counter() - started if process.stdout.readline() else math.nan
    if first_only:
        process.kill()
    while process.stdout.read(1 << 20):
        pass
    timer.cancel()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    total = time.perf_counter() - started if process.returncode == 0 else math.nan
    cpu = usage.ru_utime + usage.ru_stime if process.returncode == 0 else math.nan
    return first, total, usage.ru_maxrss / 1024, cpu


def probe(kind: str, config: str) -> None:
    """In a process of its own (this copy of cluster_work or a baseline's): `plan`: plan `config` and take its
    first job; `memory`: run all of `config`'s jobs through the engine with a task that answers at once
    (rank 0's share alone: plan, dispatch, outcomes, summary); `parse`: parse `config`'s text (its YAML alone)
    PARSES times; `load`: load_results of `config`; `index`, `seal`: what a run does at its end (its folder indexes;
    its compact stores sealed for load_results); prints seconds, CPU seconds (`parse`: the fastest parse's), peak MB
    (`load`: and its rows)."""
    from cluster_work.backends import SequentialExecutor
    from cluster_work.config import load_config, parse_documents
    from cluster_work.sweep import run_segments
    from cluster_work.vocabulary import Outcome, OutcomeKind

    started, cpu = time.perf_counter(), time.process_time()
    if kind == "load":  # load_results of the sweep (pandas and pyarrow imported first: once in a process)
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401

        started, cpu = time.perf_counter(), time.process_time()
        rows = len(load_results(config))
        print(time.perf_counter() - started, time.process_time() - cpu, own_peak_mb(), rows)
        return
    if kind == "parse":
        with open(config) as handle:
            text = handle.read()
        fastest = math.inf
        for _ in range(PARSES):
            before = time.process_time()
            parse_documents(text, config)
            fastest = min(fastest, time.process_time() - before)
        print(time.perf_counter() - started, fastest, own_peak_mb())
        return
    if kind == "seal":  # what a run's launcher does at its end for load_results: seal its compact stores
        from cluster_work import compact_frame

        for document in expand_all(load_config(config)).documents:
            compact_frame.seal(compact_root(document.base_folder))
        print(time.perf_counter() - started, time.process_time() - cpu, own_peak_mb())
        return
    if kind == "index":  # what a run does at its end: write each document's folder index
        from cluster_work import folder_index

        for document in expand_all(load_config(config)).documents:
            folder_index.refresh(document)
        print(time.perf_counter() - started, time.process_time() - cpu, own_peak_mb())
        return
    plan = make_plan(expand_all(load_config(config)), Selection(), Policy(), config)
    if kind == "plan":
        next(iter(plan.jobs))
    else:
        with SequentialExecutor(lambda item, context: Outcome(item.index, "", OutcomeKind.FINISHED)) as executor:
            run_segments(plan.jobs, executor)
    print(time.perf_counter() - started, time.process_time() - cpu, own_peak_mb())


def own_peak_mb() -> float:
    """This process's peak memory since it started its program (ru_maxrss also counts its parent's at fork)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


PARSES = 7  # times the `parse` probe parses its config


def probed(kind: str, config: str, env: dict[str, str], limit: float | None = None) -> list[float]:
    """(seconds, CPU seconds, peak MB[, rows]) of `probe` in a process of its own; nan where it ran past `limit`
    seconds."""
    try:
        output = subprocess.run([sys.executable, __file__, "--probe", kind, config], env=env, capture_output=True,
                                text=True, check=True, timeout=limit).stdout
    except subprocess.TimeoutExpired:
        return [math.nan] * (4 if kind == "load" else 3)
    return [float(figure) for figure in output.split()]


def write_half_done(path: str, size: int) -> int:
    """A `size` x 100 grid whose every other experiment finished (written as a run leaves it: its config.yml,
    log/rep_00.jsonl with its row: a repetition that ran to its end has no status record); the number
    finished. The configs' text comes from a template of one config (checked against three), not one YAML
    dump per experiment, so that 5 x 10^5 of them are written in minutes."""
    document = {"name": "half", "repetitions": 1, "iterations": 1, "path": path,
                "grid": {"a": list(range(size)), "b": list(range(100))}}
    [expanded] = expand_all([document]).documents
    marks = {"a": 1234567, "b": 7654321}  # in a sample's values, folder, name and log folder: made fields

    def text_of(experiment) -> str:
        return f"{MARKER}\n" + yaml.dump(to_plain(experiment.config), Dumper=_YAML_DUMPER, sort_keys=False,
                                           default_flow_style=False)

    def values(experiment) -> dict:
        return {str(key[-1]): value for key, value in experiment.varied.items()}

    [marked] = expand_all([{**document, "grid": {key: [value] for key, value in marks.items()}}])
    template = text_of(marked).replace("{", "{{").replace("}", "}}")
    for key, value in marks.items():
        template = template.replace(str(value), f"{{{key}}}")
    assert all(text_of(expanded[k]) == template.format(**values(expanded[k]))
               for k in (0, len(expanded) // 2, len(expanded) - 1))
    row = encode_row({"iteration": 0, "x": 0, "iteration_time": 0.001, "repetition_time": 0.001})
    for experiment in itertools.islice(expanded, 0, None, 2):
        folder = experiment.path
        repetition = ExperimentStore(folder).repetition(0)
        repetition.create_folder()
        with open(os.path.join(folder, CONFIG_FILE), "xb") as handle:
            handle.write(template.format(**values(experiment)).encode())
        with open(repetition.results_file, "xb") as handle:
            handle.write(row)
    return size * 50


def write_half_done_compact(path: str, size: int, contiguous: bool, whole: bool = False) -> tuple[dict, str]:
    """The same half-done grid in a compact store, its segment written as a run leaves it (a claim and a row per
    finished experiment: every other one, or the first half where `contiguous`, or all of them where `whole`);
    its document and the store's folder."""
    document = {"name": "half", "repetitions": 1, "iterations": 1, "path": path, "store": "compact",
                "grid": {"a": list(range(size)), "b": list(range(100))}}
    [expanded] = expand_all([document]).documents
    root = compact_root(expanded.base_folder)
    os.makedirs(root)
    open(os.path.join(root, LOCKS_FILE), "w").close()
    claimed = time.time()
    with open(os.path.join(root, segment_name("benchmark", os.getpid(), "00000000")), "wb") as segment:
        finished = itertools.islice(expanded, 0, len(expanded) // (1 if whole else 2)) if contiguous or whole \
            else itertools.islice(expanded, 0, None, 2)
        for number, experiment in enumerate(finished):
            segment.write(encode_row({"c": [experiment.name, 0], "t": claimed + number * 1e-6, "base": "half",
                                      "params": to_plain(experiment.params), "at": experiment.params_part}))
            segment.write(encode_row({"w": [experiment.name, 0], "row": {
                "iteration": 0, "x": 0, "iteration_time": 0.001, "repetition_time": 0.001}}))
    return document, root


TAIL = 1000  # experiments a run went on with after the index was written (a claim and a row each)


def stale_index(store: str, path: str, root: str, document: dict, versions: list[tuple[str, dict[str, str]]],
                refresh, limit: float) -> None:
    """The first -p after the index is stale by a small tail: the index written while a run went on (as its
    launcher rewrites it now and then), then TAIL more unfinished experiments claimed and run by that run's
    process (its segment grew), then a kill -9. Each version from the same bytes (its own index of them)."""
    [segment] = [name for name in os.listdir(store) if name.startswith("seg-")]
    segment = os.path.join(store, segment)
    covered = os.path.getsize(segment)
    [expanded] = expand_all([document]).documents
    later, count = time.time() + 10, min(TAIL, len(expanded) // 4)  # (unfinished, contiguous or not)
    tail = b"".join(encode_row(event) for number, experiment in enumerate(itertools.islice(
        expanded, len(expanded) - 2 * count + 1, None, 2))
                    for event in ({"c": [experiment.name, 0], "t": later + number * 1e-6, "base": "half",
                                   "params": to_plain(experiment.params), "at": experiment.params_part},
                                  {"w": [experiment.name, 0], "row": {"iteration": 0, "x": 0, "iteration_time": 0.001,
                                                                      "repetition_time": 0.001}}))
    print(f"  its index stale by a tail of {count} experiments ({len(tail)} bytes) written after it: the first -p")
    for version, env in versions:
        os.truncate(segment, covered)  # (the benchmark's own segment: back to what the index covers)
        if os.path.exists(os.path.join(store, "index.json")):
            os.unlink(os.path.join(store, "index.json"))
        refresh(env)
        with open(segment, "ab") as handle:
            handle.write(tail)
        for label in ("stale index", "then current"):  # (the first -p wrote the index of every byte)
            first, total, peak, cpu = command_figures([sys.executable, "noop.py", path, "-p"], env, root, False, limit)
            print(f"    -p {label:<13} {version:<9} all {total:6.2f} s ({cpu:6.2f} s CPU)   peak {peak:5.0f} MB")


def compact_resume(root: str, size: int, contiguous: bool, versions: list[tuple[str, dict[str, str]]], config,
                   limit: float, stale_only: bool = False) -> None:
    """Planning a resume of a half-done compact store: with the index its last run wrote, and without one (after
    a kill -9: the first look reads every segment and writes it); -p and -p --json from the command line."""
    document, store = write_half_done_compact(os.path.join(root, "half-compact"), size, contiguous)

    def refresh(env: dict[str, str]) -> None:  # as the run that wrote the segments does at its end, in a process
        script = "import sys; from cluster_work import compact_index; compact_index.refresh(sys.argv[1])"  # of its
        subprocess.run([sys.executable, "-c", script, store], env=env, check=True)  # own (a child's peak counts ours)

    def has_index(env: dict[str, str]) -> bool:
        return os.path.exists(os.path.join(env["PYTHONPATH"], "cluster_work", "compact_index.py"))

    path = config("half-compact", document)
    finished = size * 50
    if stale_only:
        stale_index(store, path, root, document, versions, refresh, limit)
        return
    print("  the same in a compact store (`store: compact`): plan, first job")
    for version, env in versions:
        for label, index in (("no index", False), ("its index", True)):
            if os.path.exists(os.path.join(store, "index.json")):
                os.unlink(os.path.join(store, "index.json"))
            if index and has_index(env):
                refresh(env)
            elif index:
                continue  # a baseline from before the index
            seconds, cpu, peak = probed("plan", path, env, limit)
            print(f"    {version:<9} {label:<10} {seconds:6.2f} s ({cpu:.2f} s CPU, {cpu / finished * 1e6:.0f} us a "
                  f"finished experiment: {cpu / finished * 5e5:.1f} s for a half-done 10^6)   peak {peak:5.0f} MB")
    stale_index(store, path, root, document, versions, refresh, limit)
    refresh(versions[0][1])  # the index its last run wrote (a baseline from before the index ignores it)
    for flags in ("-p", "-p --json", "--list"):
        for version, env in versions:
            first, total, peak, cpu = command_figures([sys.executable, "noop.py", path, *flags.split()], env, root,
                                                      False, limit)
            print(f"    {flags:<14} {version:<9} all {total:6.2f} s ({cpu:6.2f} s CPU)   peak {peak:5.0f} MB")
    for version, env in versions:
        seconds, cpu, peak, rows = probed("load", path, env, limit)
        print(f"    load_results   {version:<9} {seconds:6.2f} s ({cpu:6.2f} s CPU) for {rows:.0f} one-row repetitions"
              f"   peak {peak:5.0f} MB")


def finished_load(root: str, size: int, versions: list[tuple[str, dict[str, str]]], config, limit: float,
                  rounds: int) -> None:
    """load_results of a finished compact sweep of `size` x 100 one-iteration points (10^4: the 10^6-point random
    search of issue 25, as a surrogate's training set is read back), each version in a process of its own: its
    segment as written (as a killed run leaves it), then sealed as a run's end leaves it (compact_sealed; the seal
    timed, in a process of its own; this version alone: a baseline without seals reads the segment again)."""
    document, _ = write_half_done_compact(os.path.join(root, "finished-compact"), size, False, whole=True)
    path = config("finished-compact", document)
    print(f"  load_results of a finished compact sweep: {size * 100} one-row repetitions ({rounds} rounds, versions"
          " in turn)")
    written: dict[str, list[float]] = {}
    for sealed in (False, True):
        if sealed:
            seconds, cpu, peak = probed("seal", path, versions[0][1], limit)
            print(f"    sealed, as a run's end seals it: {seconds:.2f} s ({cpu:.2f} s CPU), peak {peak:.0f} MB")
        for _ in range(rounds):
            times = []
            for version, env in versions[:1] if sealed else versions:
                seconds, cpu, peak, rows = probed("load", path, env, limit)
                times.append(seconds)
                if not sealed:
                    written.setdefault(version, []).append(seconds)
                print(f"    {version:<9} {'sealed' if sealed else 'as written':<10} {seconds:6.2f} s ({cpu:6.2f} s CPU)"
                      f" for {rows:.0f} rows   peak {peak:5.0f} MB")
            if len(times) > 1:
                print(f"    this / {versions[-1][0]}: {times[0] / times[-1]:.2f}x")
            if sealed:
                print("    sealed / as written (its median): "
                      + ", ".join(f"{times[0] / statistics.median(figures):.2f}x ({version})"
                                  for version, figures in written.items()))


def folders_resume(root: str, resume: int, versions: list[tuple[str, dict[str, str]]], config) -> None:
    """Planning a resume of a half-done sweep in the default layout (a folder per point): each version without
    an index (after a kill -9: it reads every started experiment's files), then with the index its own last run
    wrote at its end (`folder_index.refresh`, 2 s after the files were written, or a small sweep's dated back:
    the racy rule leaves out what changed within 2 s; each version writes its own, since their formats may
    differ)."""
    from cluster_work.paths import FOLDER_INDEX_FILE  # (here: a baseline's probes import this file too)

    half = os.path.join(root, "half")
    index = os.path.join(half, "half", FOLDER_INDEX_FILE)
    finished = write_half_done(half, resume)
    half_config = config("half", {"path": half, "grid": {"a": list(range(resume)), "b": list(range(100))}})
    print(f"  resume a {resume} x 100 grid, {finished} experiments finished (every other one): plan, first job")
    if finished > 10_000:
        time.sleep(2.1)
    else:  # a small sweep's files dated 3 s back (as if written then), sooner than waiting 2 s
        written = time.time() - 3
        for folder, _, names in os.walk(half):
            for name in names:
                os.utime(os.path.join(folder, name), (written, written))
    for version, env in versions:
        for label in ("no index", "its index"):
            if label == "no index":
                with contextlib.suppress(FileNotFoundError):
                    os.remove(index)
            else:
                probed("index", half_config, env)
                assert os.path.exists(index)
            seconds, cpu, peak = probed("plan", half_config, env)
            print(f"    {version:<9} {label:<10} {seconds:6.2f} s ({cpu:.2f} s CPU, {cpu / finished * 1e6:.1f} us a "
                  f"finished experiment: {cpu / finished * 5e5:.1f} s for a half-done 10^6)   peak {peak:5.0f} MB",
                  flush=True)
    with open(os.path.join(root, "noop.py"), "w") as handle:
        handle.write(NOOP)
    print("  -p of it from the command line, each version with the index it wrote (-p reads it, never writes it):")
    for flags in ("-p", "-p --json"):
        for version, env in versions:
            probed("index", half_config, env)
            _, total, peak, cpu = command_figures([sys.executable, "noop.py", half_config, *flags.split()], env, root,
                                                  False, PROGRESS_LIMIT)
            print(f"    {flags:<10} {version:<9} {total:6.2f} s ({cpu:.2f} s CPU)   peak {peak:5.0f} MB", flush=True)


PROGRESS_LIMIT = 600.0  # seconds after which a -p of the half-done default-layout sweep is stopped (nan)


def huge_sweeps(root: str, size: int, resume: int, compact: int, contiguous: bool, jobs: int, baseline: str | None,
                limit: float, rounds: int, compact_only: bool = False, stale_only: bool = False) -> None:
    """Issue 25's figures, each for this copy of cluster_work and for `baseline` (if given), side by side; a
    command line is stopped after `limit` seconds (nan: what it had not done by then); `compact_only`: the
    half-done compact sweep's alone."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    versions = [("this", {**os.environ, "PYTHONPATH": here})]
    versions += [("baseline", {**os.environ, "PYTHONPATH": os.path.abspath(baseline)})] if baseline else []
    with open(os.path.join(root, "noop.py"), "w") as handle:
        handle.write(NOOP)

    def config(name: str, document: dict) -> str:
        path = os.path.join(root, f"{name}.yml")
        with open(path, "w") as handle:
            json.dump({"repetitions": 1, "iterations": 1, "path": os.path.join(root, name), "name": name,
                       **document}, handle)  # (JSON is YAML)
        return path

    if compact_only or stale_only:
        compact_resume(root, compact, contiguous, versions, config, limit, stale_only)
        return
    parse = os.path.join(root, "parse.yml")  # YAML as a user writes it, flow lists of the grid's values
    with open(parse, "w") as handle:
        handle.write(f"name: parse\nrepetitions: 1\niterations: 1\npath: {root}\n"
                     f"grid:\n  a: {list(range(10_000))}\n  b: {list(range(100))}\n")
    print(f"  parse a config whose grid holds 10,100 values, in one process (CPU, the fastest of {PARSES}):")
    for version, env in versions:
        print(f"    {version:<9} {probed('parse', parse, env)[1] * 1000:6.1f} ms")
    grid = config("huge", {"grid": {"a": list(range(size)), "b": list(range(size))}})
    print(f"  a {size} x {size} grid ({size * size} points), from the command line; seconds to the first line, "
          "to the end, peak memory:")
    for flags, first_only in (("--list", False), ("--list --json", False), ("-p", False), ("-p --json", False),
                              ("-P", True)):
        for version, env in versions:
            first, total, peak, _ = command_figures([sys.executable, "noop.py", grid, *flags.split()], env, root,
                                                    first_only, limit)
            end = "(its first line only)" if first_only else f"all {total:6.2f} s"
            print(f"    {flags:<14} {version:<9} first line {first:6.2f} s   {end:<21} peak {peak:5.0f} MB")
    folders_resume(root, resume, versions, config)
    compact_resume(root, compact, contiguous, versions, config, limit)
    finished_load(root, compact, versions, config, limit, rounds)
    streamed = config("streamed", {"grid": {"a": list(range(jobs // 1000)), "b": list(range(1000))}})
    print(f"  rank 0 over a sweep of {jobs} jobs (an instant task: rank 0's share alone)")
    for version, env in versions:
        seconds, cpu, peak = probed("memory", streamed, env)
        print(f"    {version:<9} {seconds:6.2f} s ({cpu / jobs * 1e6:.1f} us CPU a job)   peak {peak:5.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=int, default=1000, help="grid points of the planning sweep")
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--experiments", type=int, default=100, help="experiments of the finished sweep")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--huge", type=int, default=1000, help="the huge grid is this x this (0: not measured)")
    parser.add_argument("--resume", type=int, default=200, help="the half-done grid is this x 100")
    parser.add_argument("--resume-only", action="store_true",
                        help="measure only the resume of the half-done grid in the default layout")
    parser.add_argument("--compact-resume", type=int, default=10_000,
                        help="the half-done grid in a compact store is this x 100 (10^4: 10^6 points, measured)")
    parser.add_argument("--contiguous", action="store_true",
                        help="the compact store's finished half is the grid's first half, not every other point")
    parser.add_argument("--compact-only", action="store_true", help="measure the half-done compact sweep alone")
    parser.add_argument("--load-only", type=int, metavar="SIZE",
                        help="measure only load_results of a finished compact sweep of SIZE x 100 one-row points")
    parser.add_argument("--launcher-run", type=int, metavar="SIZE",
                        help="measure only a real run of a SIZE x 100 compact sweep with -n 2 (10^4: 10^6 points, "
                             "~6 minutes): the launcher's peak memory, then load_results of what it left")
    parser.add_argument("--stale-only", action="store_true",
                        help="the first -p of the half-done compact sweep, its index stale by a small tail, alone")
    parser.add_argument("--jobs", type=int, default=10**6, help="jobs of the sweep rank 0's memory is taken over")
    parser.add_argument("--baseline", help="another copy of cluster_work (its repository folder) to compare with")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --load-only's and the huge sweeps' load")
    parser.add_argument("--limit", type=float, default=300, help="seconds after which a command line is stopped")
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(*args.probe)
        return
    root = tempfile.mkdtemp(prefix="cw-scale-")
    try:
        print(f"planning_scale: {os.cpu_count()} cores")
        if args.resume_only or args.load_only or args.launcher_run:
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            versions = [("this", {**os.environ, "PYTHONPATH": here})]
            versions += [("baseline", {**os.environ, "PYTHONPATH": os.path.abspath(args.baseline)})] if args.baseline \
                else []

            def config(name: str, document: dict) -> str:
                path = os.path.join(root, f"{name}.yml")
                with open(path, "w") as handle:
                    json.dump({"repetitions": 1, "iterations": 1, "name": name, **document}, handle)
                return path

            if args.launcher_run:
                launcher_run(root, args.launcher_run, versions, 2, args.limit * 4, args.rounds)
            elif args.load_only:
                finished_load(root, args.load_only, versions, config, args.limit, args.rounds)
            else:
                folders_resume(root, args.resume, versions, config)
            return
        if args.huge:  # first, while this process is small: a child's peak counts its parent's size at fork
            huge_sweeps(root, args.huge, args.resume, args.compact_resume, args.contiguous, args.jobs, args.baseline,
                        args.limit, args.rounds, args.compact_only, args.stale_only)
        if args.compact_only or args.stale_only:
            return
        jobs = args.grid * args.repetitions
        document = {"name": "plan", "repetitions": args.repetitions, "iterations": 10,
                    "path": os.path.join(root, "plan"), "params": {"model": {"width": 8}, "lr": 0.1},
                    "grid": {"lr": [round(0.001 * (k + 1), 6) for k in range(args.grid)]}}
        expanded = timed(f"expand {args.grid} grid points", lambda: expand_all([document]))

        def plan_and_list_jobs() -> list:  # what a run does: plan, then take every job
            return list(make_plan(expanded, Selection(), Policy(), "benchmark").jobs)

        assert len(timed(f"plan and take {jobs} jobs (nothing on disk)", plan_and_list_jobs)) == jobs
        timed(f"write {args.grid} experiment configs (a run's first jobs do)",
              lambda: [ExperimentStore(e.path).write_config(e.config) for e in expanded])
        assert len(timed(f"plan and take {jobs} jobs again (configs on disk)", plan_and_list_jobs)) == jobs
        big = {"name": "huge", "repetitions": 1, "iterations": 1, "path": os.path.join(root, "huge"),
               "grid": {"a": list(range(100)), "b": list(range(100)), "c": list(range(100))}}
        huge = make_plan(expand_all([big]), Selection(), Policy(), "benchmark")
        timed("first job of a 10^6-point grid (expand, plan, take one)",
              lambda: next(iter(make_plan(expand_all([big]), Selection(), Policy(), "benchmark").jobs)))
        assert len(huge.jobs) == 10**6
        reps = args.experiments * args.repetitions
        finished = os.path.join(root, "finished")
        print(f"  (writing a finished sweep of {reps} repetitions x {args.iterations} iterations...)")
        sweep = make_finished_sweep(finished, args.experiments, args.repetitions, args.iterations)
        committer.commit()  # as a run ends: no group commit left syncing while the reads below are timed
        timed(f"-p over {reps} finished repetitions",
              lambda: print_progress(sweep, full=False, stream=io.StringIO()))
        timed("import pandas and pyarrow (once in a process)", import_readers)
        frame = timed(f"load_results of {reps} repetitions x {args.iterations} iterations",
                      lambda: load_results(finished))
        assert len(frame) == reps * args.iterations
        with mock.patch.object(results, "_fast_reader", lambda: arrow_rows.Reader(None)):
            plain = timed("the same with the plain reader alone (as without pyarrow)", lambda: load_results(finished))
        assert plain.equals(frame)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
