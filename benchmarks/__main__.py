"""``python -m benchmarks [NAME ...] [--smoke] [--repeats N] [--json FILE] [--check]``.

Prints one section of tables per benchmark, then every target with its verdict. The exit status is
0 whatever the figures say, unless ``--check`` asks for a non-zero status on a missed target: timings
on a shared machine are evidence to read, not a gate to trip over by default.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from benchmarks.common import FULL, SMOKE, Result, Scale, machine

# name -> (module, one-line description); modules load lazily so one benchmark needs only its imports.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "throughput": ("benchmarks.throughput", "bundling MB/s vs naive tarfile and raw ISA-L"),
    "memory": ("benchmarks.memory", "peak RSS while bundling 1 GB (fresh child process)"),
    "concurrency": ("benchmarks.concurrency", "files/s with 50 ms per GetObject at several fetch concurrencies"),
    "overhead": ("benchmarks.overhead", "per-file cost of claims, commit and manifest on in-process moto"),
    "e2e": ("benchmarks.e2e", "landing-to-Distribution latency at 10 and 100 files/s on the embedded pipeline"),
    "burst": (
        "benchmarks.burst",
        "the N2 burst: 100 files/s for 60 s on the local-aws backend, and where the CPU goes",
    ),
    "scale": ("benchmarks.scale", "discrete-event model: latency, concurrency and binding limits at 1x-100x volume"),
    "coldstart": ("benchmarks.coldstart", "handler import and first invocation from the unpacked Lambda zip"),
    "floor": ("benchmarks.floor", "handler CPU-seconds and peak RSS against the GET + hash + ISA-L floor, one batch"),
    "phases": ("benchmarks.phases", "where one 400-file batch's wall time goes, per backend, idle and loaded"),
    "demo": ("benchmarks.demo", "make demo on a quiet and on a loaded machine (two CPU-bound neighbours)"),
}


def run(names: Sequence[str], scale: Scale) -> list[Result]:
    results: list[Result] = []
    for name in names:
        module = importlib.import_module(BENCHMARKS[name][0])
        started = time.perf_counter()
        result: Result = module.run(scale)
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="benchmarks to run (default: all): " + "; ".join(f"{k}: {v[1]}" for k, v in BENCHMARKS.items()),
    )
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, seconds in total; figures meaningless")
    parser.add_argument("--repeats", type=int, help="runs per measurement (median reported)")
    parser.add_argument("--json", type=Path, help="also write every figure, table and target to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    scale = SMOKE if args.smoke else FULL
    if args.repeats is not None:
        scale = replace(scale, repeats=max(1, args.repeats))

    print(f"data-aggregator benchmarks - {machine()} - scale {scale.name}\n", flush=True)
    results: list[Result] = []
    for name in args.names or list(BENCHMARKS):
        (result,) = run([name], scale)
        results.append(result)
        print(result.render(), flush=True)

    targets = [(r.name, t) for r in results for t in r.targets]
    if targets:
        print("### Targets\n")
        for name, target in targets:
            print(f"* [{'met' if target.met else 'MISSED'}] {name}: {target.name} - {target.detail}")
    if args.json:
        payload = {"machine": machine(), "scale": scale.name, "results": [r.to_json() for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    missed = [t for _, t in targets if not t.met]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
