"""Writing an MPI hostfile from a Slurm allocation: `python -m cluster_work.hostfile > hostfile`.

Expands `SLURM_JOB_NODELIST` as `scontrol show hostnames` does (`node[01-03,07]`, `r[1-2]-n[1-2]`)
and gives each node the slots of `SLURM_TASKS_PER_NODE` (`2(x3),1`), in Open MPI's
(`node01 slots=2`) or MPICH's (`node01:2`) format.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
from collections.abc import Sequence

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise ValueError(f"unbalanced brackets in node list {text!r}")
    return parts + [current] if current else parts


def _expand_range(body: str) -> list[str]:
    values = []
    for item in body.split(","):
        match = _RANGE.match(item.strip())
        if not match:
            raise ValueError(f"bad range {item!r} in node list")
        first, last = match.group(1), match.group(2) or match.group(1)
        width = len(first)  # keep leading zeros: node[01-03]
        values += [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
    return values


def expand_nodelist(nodelist: str) -> list[str]:
    """`node[01-02],gpu5` -> ['node01', 'node02', 'gpu5'], as `scontrol show hostnames` prints."""
    hosts = []
    for part in _split_top_level(nodelist.strip()):
        pieces = re.split(r"(\[[^\]]*\])", part)
        choices = [_expand_range(p[1:-1]) if p.startswith("[") else [p] for p in pieces if p]
        hosts += ["".join(combo) for combo in itertools.product(*choices)]
    return hosts


def expand_counts(spec: str) -> list[int]:
    """`2(x3),1` -> [2, 2, 2, 1] (the format of SLURM_TASKS_PER_NODE)."""
    counts = []
    for item in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", item)
        if not match:
            raise ValueError(f"bad task count {item!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def hostfile_text(hosts: Sequence[str], slots: Sequence[int], flavor: str = "openmpi") -> str:
    if len(slots) == 1:
        slots = list(slots) * len(hosts)
    if len(slots) != len(hosts):
        raise ValueError(f"{len(hosts)} hosts but {len(slots)} slot counts")
    line = "{host} slots={slots}" if flavor == "openmpi" else "{host}:{slots}"
    return "".join(line.format(host=h, slots=s) + "\n" for h, s in zip(hosts, slots))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster_work.hostfile", description=__doc__.splitlines()[0])
    parser.add_argument("--nodelist", default=os.environ.get("SLURM_JOB_NODELIST", os.environ.get("SLURM_NODELIST")),
                        help="node list (default: $SLURM_JOB_NODELIST)")
    parser.add_argument("--slots", default=os.environ.get("SLURM_TASKS_PER_NODE"),
                        help="slots per node, e.g. 16 or 2(x3),1 (default: $SLURM_TASKS_PER_NODE, else 1)")
    parser.add_argument("--flavor", choices=["openmpi", "mpich"], default="openmpi")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    args = parser.parse_args(argv)
    if not args.nodelist:
        print("error: no node list: run inside a Slurm allocation or pass --nodelist", file=sys.stderr)
        return 2
    try:
        text = hostfile_text(expand_nodelist(args.nodelist), expand_counts(args.slots or "1"), args.flavor)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
