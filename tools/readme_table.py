#!/usr/bin/env python3
"""Prints the README's benchmark table from a `bench --json` file.

    python3 tools/readme_table.py bench/results/latest.json
    python3 tools/readme_table.py --latency bench/results/latency.json

Columns: the multi-thread runtimes, then the one-thread ones, each group ending in its floor.
The latency workloads have a table of their own (`--latency`: the README's priorities section
and bench/results/latency.md): their medians are the run's fixed length.
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


VARIANTS = {"latency_under_load": "timer", "latency_under_load_foreign": "foreign thread"}


def latency(rows):
    """The latency_under_load table: the urgent task's lateness and the background's rate."""
    print("| variant | runtime | p50 | p99 | p99.9 | max | background polls/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        variant = VARIANTS.get(r["workload"])
        if variant is None:
            continue
        # In these rows `max_ns` is the urgent task's worst lateness, not a sample's length.
        figures = " | ".join(short(r[k]) for k in ("p50_ns", "p99_ns", "p999_ns", "max_ns"))
        print(f"| {variant} | {r['runtime']} | {figures} | {r['background_polls_per_s']:.0f} |")


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
    args = sys.argv[1:]
    if args[:1] == ["--latency"]:
        latency(json.load(open(args[1] if len(args) > 1 else "bench/results/latency.json")))
    else:
        main(args[0] if args else "bench/results/latest.json")
