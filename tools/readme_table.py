#!/usr/bin/env python3
"""Prints the README's benchmark table from a `bench --json` file.

    python3 tools/readme_table.py bench/results/latest.json

Columns: the multi-thread runtimes, then the one-thread ones, each group ending in its floor.
The latency workloads have a table of their own (bench/results/latency.md): their medians are
the run's fixed length.
"""
import json
import sys

COLUMNS = ["worksteal", "priority", "fifo", "tokio-mt", "smol", "floor-mt",
           "fifo-ct", "tokio-ct", "smol-ct", "floor-ct"]


def duration(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def short(ns):
    """A lateness: µs below a millisecond, else ms with one decimal."""
    if ns < 1e6:
        return f"{ns / 1e3:.0f} µs"
    return f"{ns / 1e6:.1f} ms"


def cell(r):
    w = r["workload"]
    if w == "idle_memory":
        return f"{r['bytes_per_task']:.0f} B"
    if w == "tcp_echo":
        return f"{r['round_trips_per_s'] / 1e3:.0f}k rt/s"
    if w in ("timer_lateness", "timers_light"):
        return f"{short(r['p50_ns'])} / {short(r['p99_ns'])}"
    if w == "rayon_roundtrip":
        return f"{r['us_per_round_trip']:.0f} µs"
    return duration(r["median_ns"])


def main(path):
    rows = json.load(open(path))
    workloads = []
    cells = {}
    for r in rows:
        if r["workload"].startswith("latency"):
            continue
        if r["workload"] not in workloads:
            workloads.append(r["workload"])
        cells[(r["workload"], r["runtime"])] = cell(r)
    print("| workload | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for w in workloads:
        print(f"| {w} | " + " | ".join(cells.get((w, c), "n/a") for c in COLUMNS) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.json")
