#!/usr/bin/env python3
"""Ratios of bench medians that hold up on a noisy machine.

One `bench` run gives each runtime's median, but on a shared 2-core machine a whole process can
run fast or slow (another tenant, the clock, where the threads land): in one run the floor took
10.8 ms on yield_many, in the next 5.1. A ratio between two runtimes of the *same* process is
steadier than either figure. This script runs `bench` ROUNDS times, each time as a new process
(and, with several binaries, in a shuffled order per round), divides every runtime's median by
the median of REF from the same process, and prints the median of those ratios over the rounds,
beside the median of the raw figures.

    cargo build --release -p bench
    python3 tools/ratios.py --rounds 9 --ref floor-ct -- \\
        yield_many ping_pong --runtime fifo-ct --runtime floor-ct --samples 10

Several binaries (an A/B of a change, each built in its own target directory) are compared by
giving each with --bin NAME=PATH; every column then has one figure per binary.

The two CPUs of a shared machine need not run alike: on one host here a process on CPU 1 ran
every runtime about 1.7x slower than on CPU 0, so that a run's figures depended on where it
landed. For one-thread runtimes, --pin CPU runs every process on that CPU (with taskset).
"""

import argparse
import collections
import random
import re
import statistics
import subprocess
import sys

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def to_us(cell):
    """A bench table cell ("1.23 ms", "456.7 µs", "97 B") as a number (times in µs)."""
    m = re.match(r"([\d.]+)\s*(\S+)?", cell.strip())
    if not m:
        raise ValueError(cell)
    return float(m.group(1)) * UNITS.get(m.group(2) or "", 1.0)


def medians(output):
    """{(workload, runtime): median} from one bench run's markdown table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 5 or cells[1] in ("", "workload") or cells[1].startswith("-"):
            continue
        try:
            rows[(cells[1], cells[2])] = to_us(cells[3])
        except ValueError:
            continue
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--ref", required=True, help="the runtime every ratio is taken to")
    p.add_argument(
        "--bin",
        action="append",
        default=[],
        help="NAME=PATH of a bench binary (default: this=target/release/bench)",
    )
    p.add_argument("--pin", metavar="CPU", help="run every process on this CPU (taskset -c)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then bench's arguments")
    a = p.parse_args()
    args = a.bench_args[1:] if a.bench_args[:1] == ["--"] else a.bench_args
    if "--runtime" in args and a.ref not in args:
        sys.exit(f"--ref {a.ref} must be one of the runtimes given to bench")
    bins = [b.split("=", 1) for b in a.bin] or [["this", "target/release/bench"]]

    raw = collections.defaultdict(list)
    ratio = collections.defaultdict(list)
    for _ in range(a.rounds):
        order = bins[:]
        random.shuffle(order)
        for name, path in order:
            pin = ["taskset", "-c", a.pin] if a.pin is not None else []
            run = subprocess.run([*pin, path, *args], capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"{path} failed:\n{run.stderr}")
            rows = medians(run.stdout)
            for (workload, runtime), v in rows.items():
                raw[(workload, runtime, name)].append(v)
                ref = rows.get((workload, a.ref))
                if ref:
                    ratio[(workload, runtime, name)].append(v / ref)

    names = [n for n, _ in bins]
    keys = sorted({(w, r) for (w, r, _) in raw if r != a.ref})
    where = f", each on CPU {a.pin}" if a.pin is not None else ""
    print(
        f"{a.rounds} processes per binary{where}; ratio = median over them of "
        f"(median / {a.ref}'s median in the same process)"
    )
    print()
    print(
        "| workload | runtime | "
        + " | ".join(f"{n}: median (µs)" for n in names)
        + " | "
        + " | ".join(f"{n}: ratio to {a.ref}" for n in names)
        + " |"
    )
    print("|---|---|" + "---:|" * (2 * len(names)))
    for w, r in keys:
        med = [statistics.median(raw[(w, r, n)]) if raw[(w, r, n)] else float("nan") for n in names]
        rat = [statistics.median(ratio[(w, r, n)]) if ratio[(w, r, n)] else float("nan") for n in names]
        print(
            f"| {w} | {r} | "
            + " | ".join(f"{x:.1f}" for x in med)
            + " | "
            + " | ".join(f"{x:.2f}" for x in rat)
            + " |"
        )


if __name__ == "__main__":
    main()
