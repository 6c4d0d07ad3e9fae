"""What a run pays to start its workers: `spawn` (the default) against `forkserver` with torch and
asyncrl_lab preloaded in the server (multiprocessing.set_forkserver_preload), in one run.

Each start method runs in a fresh Python process that trains A3C on CartPole with 2 workers for a
few thousand steps, several times in a row, as a notebook does; it prints each run's wall time.
With spawn every worker imports torch anew; with a preloaded forkserver the server imports it
once, and each worker is a fork of it.

    .venv/bin/python benchmarks/worker_startup.py [--runs 4] [--out results/worker_startup.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, sys, time
import multiprocessing as mp
import asyncrl_lab as lab
method = sys.argv[1]
if method == "forkserver":
    mp.set_forkserver_preload(["torch", "asyncrl_lab"])
times = []
if __name__ == "__main__":
    for _ in range(int(sys.argv[2])):
        t0 = time.perf_counter()
        lab.train("a3c", env="CartPole-v1", workers=2, total_steps=2_000, progress=False,
                  start_method=method)
        times.append(time.perf_counter() - t0)
    print(json.dumps(times))
"""


def measure(method: str, runs: int) -> list[float]:
    done = subprocess.run([sys.executable, "-c", CHILD, method, str(runs)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    from asyncrl_lab.provenance import provenance

    results = {"spawn": [], "forkserver": []}
    for _ in range(args.rounds):  # alternate, so that a slow moment hits both
        for method in results:
            results[method].append(measure(method, args.runs))
    summary = {}
    for method, rounds in results.items():
        first = statistics.median(r[0] for r in rounds)
        later = statistics.median(t for r in rounds for t in r[1:])
        summary[method] = {"first_run_s": first, "later_runs_s": later}
        print(f"{method:>10}: first run {first:.2f} s, later runs {later:.2f} s "
              f"(medians of {args.rounds} rounds of {args.runs} runs, 2 workers, 2,000 steps)")
    print(f"forkserver / spawn, later runs: "
          f"{summary['forkserver']['later_runs_s'] / summary['spawn']['later_runs_s']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rounds": results, "summary": summary, "provenance": provenance()}, f,
                      indent=2)


if __name__ == "__main__":
    main()
