"""Wall seconds of the commands a person runs after `bayesgen demo`, first and second call.

Issue 20's target: every command after `train` on the demo run (sample, reconstruct, encode,
interpolate, plot, report, runs) in <= 3 s wall when run a second time, `bayesgen --help` in
<= 1.5 s. The compilation cache starts empty (a fresh BAYESGEN_CACHE_DIR), so the first call
compiles and the second loads what it compiled; the demo run itself is trained first, which
also fills the cache with training's programs (as a user's first `bayesgen demo` does).

    python benchmarks/bench_cli_latency.py [--repeats 3]

Prints a markdown table (median of the repeats of each call) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ("bayesgen --help", ["--help"]),
    ("sample --n 64", ["sample", "{run}", "--n", "64", "--out", "{tmp}/samples.png"]),
    ("reconstruct", ["reconstruct", "{run}", "--out", "{tmp}/reconstructions.png"]),
    ("encode", ["encode", "{run}", "--out", "{tmp}/codes.csv"]),
    ("interpolate", ["interpolate", "{run}", "--out", "{tmp}/interpolation.png"]),
    ("plot (7 figures)", ["plot", "{run}"]),
    ("report", ["report", "{run}"]),
    ("runs", ["runs", "{runs}"]),
    ("evaluate (K = 1000, 180 images)", ["evaluate", "{run}"]),
]


def call(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bayesgen", *argv], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh caches per measurement (median reported)")
    args = parser.parse_args()
    rows = {label: ([], []) for label, _ in COMMANDS}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
            env["BAYESGEN_CACHE_DIR"] = f"{tmp}/cache"
            runs, run = Path(tmp, "runs"), Path(tmp, "runs", "demo")
            call(["demo", "--out", str(run), "--quiet"], env)
            for label, argv in COMMANDS:
                argv = [a.format(run=run, runs=runs, tmp=tmp) for a in argv]
                rows[label][0].append(call(argv, env))
                rows[label][1].append(call(argv, env))
    print("| command | first call (s) | second call (s) |\n|---|---|---|")
    for label, (first, second) in rows.items():
        print(f"| {label} | {statistics.median(first):.2f} | {statistics.median(second):.2f} |")


if __name__ == "__main__":
    main()
