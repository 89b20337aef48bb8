"""`python -m cluster_work export {mlflow,tensorboard,wandb} CONFIG [--follow]`: a sweep's results into a tracker.

Without `--follow`, one pass: everything saved so far, then exit (0: all exported; 1: a tracker stayed
unreachable for `--wait` seconds, or some repetition could not be exported by then; 2: a bad command line
or config). With `--follow`, it keeps looking (every `--interval` seconds) until Ctrl-C or SIGTERM, then makes
a last pass. Run it again at any time: it continues where it stopped (see `engine`).

Each document's `export.<tracker>` block gives the options; the command line's override them. A run whose
config has the block starts this beside itself (`--beside-run`, see `beside`): then only the documents
with the block are exported, and the run's end (its end of our stdin) is the signal for the last pass.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..config import load_config
from ..errors import ClusterWorkError
from ..results import resolve_folder
from .engine import Exporter
from .journal import JournalBusy
from .spec import DEFAULT_INTERVAL, KEYS, check_options, make_tracker

log = logging.getLogger("cluster_work.export")
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cluster_work export",
                                     description="Export a sweep's results to a tracker, exactly once.")
    parser.add_argument("tracker", choices=sorted(KEYS))
    parser.add_argument("config", help="the experiments' YAML file (its `path` folders are exported)")
    parser.add_argument("--follow", action="store_true", help="keep exporting new rows until stopped")
    parser.add_argument("-e", "--experiments", nargs="+", default=[], metavar="NAME",
                        help="only these experiments (base names)")
    parser.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                        help=f"with --follow: seconds between two looks (default {DEFAULT_INTERVAL:g})")
    parser.add_argument("--wait", type=float, default=None, metavar="SECONDS",
                        help="how long to retry a tracker that cannot be reached at the end, or to wait for "
                             "another exporter into the same destination to end (default 60; 600 for the "
                             "exporter beside a run, which has no one waiting for it)")
    parser.add_argument("--budget", type=int, default=4000, metavar="STATS",
                        help="file system look-ups per poll, beyond the repetitions changing now (default 4000)")
    parser.add_argument("--tracking-uri", help="mlflow: the tracking URI (default: the config's, or "
                                               "$MLFLOW_TRACKING_URI)")
    parser.add_argument("--experiment-name", help="mlflow: the experiment's name, may hold {base} and {sweep}")
    parser.add_argument("--logdir", help="tensorboard: the log folder (default: <path>/tensorboard)")
    parser.add_argument("--project", help="wandb: the project, may hold {base} and {sweep}")
    parser.add_argument("--dir", help="wandb: the offline runs go below DIR/wandb (default: <path>)")
    parser.add_argument("--beside-run", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        groups, interval = _groups(args)
        exporters = [Exporter(make_tracker(args.tracker, options), sweeps.items(), args.budget)
                     for options, sweeps in groups]
    except ClusterWorkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        print(f"error: exporting to {args.tracker} needs its package: pip install 'cluster_work[{args.tracker}]' "
              f"({exc})", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the tracker refused its options (an unknown URI scheme, say)
        print(f"error: cannot export to {args.tracker}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
              file=sys.stderr)
        return EXIT_USAGE
    stop = threading.Event()
    if args.follow or args.beside_run:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    if args.beside_run:  # the run holds our stdin: its end (however the run ended) starts the last pass
        threading.Thread(target=_set_at_end_of_input, args=(stop,), daemon=True).start()
    try:
        return _export(exporters, args, interval, stop)
    finally:
        for exporter in exporters:
            exporter.close()


def _set_at_end_of_input(stop: threading.Event) -> None:
    sys.stdin.buffer.read()
    stop.set()


def _export(exporters: list[Exporter], args: argparse.Namespace, interval: float, stop: threading.Event) -> int:
    """Wait for the journals (another exporter into the same destination may hold one), follow the sweep where
    asked (until `stop`), then make the last pass. An exporter beside a run waits for the journals as long as
    its run lives, and, once the run ended, up to its patience more: the holder (the last pass of a run killed
    before, say) may have looked before this run's last rows, so this one's last pass is still owed."""
    waiting, patience = list(exporters), _wait(args)
    deadline, said, ended = time.monotonic() + patience, False, False
    while waiting:  # another exporter into the same destination (a run's last pass, say): wait for it
        for exporter in list(waiting):
            try:
                exporter.open()
                waiting.remove(exporter)
            except JournalBusy as exc:
                if (not args.beside_run or ended) and time.monotonic() > deadline:
                    print(f"error: another exporter follows this sweep into this {args.tracker} destination "
                          f"(it holds {exc}.lock) and did not end within {patience:g} s; stop it first",
                          file=sys.stderr)
                    return 1
                if not said:
                    log.info("%s: waiting for the exporter that holds %s.lock to end", args.tracker, exc)
                    said = True
        if not waiting:
            break
        if ended:
            time.sleep(min(interval, 1.0))
        elif stop.wait(min(interval, 1.0)):
            if not args.beside_run:
                return 0  # stopped (a signal) before it began
            ended, deadline = True, time.monotonic() + patience
            log.info("%s: the run ended; its last pass waits for the exporter that holds the journal",
                     args.tracker)
    if args.follow or args.beside_run:
        while not stop.is_set():
            began = time.monotonic()
            for exporter in exporters:
                exporter.poll()
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
    deadline = time.monotonic() + _wait(args)
    status = 0
    for exporter in exporters:
        done = exporter.catch_up(deadline)
        totals = exporter.totals
        print(f"{args.tracker}: {totals.rows:,} rows exported, {totals.replaced} runs replaced"
              + (f", {totals.errors} errors retried (see the warnings)" if totals.errors else "")
              + ("" if done else f"; {exporter.waiting} repetitions not exported yet (rerun to catch up)"))
        status = status or (0 if done else 1)
    return status


def _wait(args: argparse.Namespace) -> float:
    return args.wait if args.wait is not None else 600.0 if args.beside_run else 60.0


def _groups(args: argparse.Namespace) -> tuple[list[tuple[dict[str, Any], dict[str, frozenset[str] | None]]], float]:
    """The config's documents grouped by their tracker options: [(options, {sweep folder: base names})], and
    the poll interval."""
    documents = load_config(args.config, warn=lambda message: None, keep_unknown_tags=True)
    given = {key: getattr(args, key) for key in KEYS[args.tracker] if getattr(args, key, None) is not None}
    if args.tracker == "mlflow" and "tracking_uri" not in given and os.environ.get("MLFLOW_TRACKING_URI"):
        given.setdefault("tracking_uri", os.environ["MLFLOW_TRACKING_URI"])
    groups: dict[str, tuple[dict[str, Any], dict[str, set[str]]]] = {}
    wanted = set(args.experiments)
    for document in documents:
        block = (document.get("export") or {}).get(args.tracker) if isinstance(document.get("export"), dict) \
            else None
        if (args.beside_run and block is None) or (wanted and document["name"] not in wanted):
            continue
        where = "the command line" if given else args.config
        options = check_options(args.tracker, {**(block or {}), **given}, where, document["name"])
        key = json.dumps({k: v for k, v in options.items() if k != "interval"}, sort_keys=True)
        sweep = os.path.abspath(resolve_folder(args.config, document["path"]))
        groups.setdefault(key, (options, {}))[1].setdefault(sweep, set()).add(document["name"])
    unknown = wanted - {document["name"] for document in documents}
    if unknown:  # an expanded name (base__params), say: the exporter takes whole documents
        raise ClusterWorkError(f"{args.config}: -e: no document named {', '.join(map(repr, sorted(unknown)))}; "
                               "export selects documents by their base names: "
                               f"{', '.join(document['name'] for document in documents)}")
    if not groups:
        raise ClusterWorkError(f"{args.config}: no experiment to export"
                               + (f" named {', '.join(sorted(wanted))}" if wanted else ""))
    intervals = [options.get("interval", DEFAULT_INTERVAL) for options, _ in groups.values()]
    interval = args.interval if args.interval is not None else min(intervals)
    return [(options, {sweep: frozenset(names) for sweep, names in sweeps.items()})
            for options, sweeps in groups.values()], float(interval)
