"""The asynchronous value-based methods on CartPole-v1, with the package's CartPole settings
(asyncrl_lab.experiments.CARTPOLE), over several seeds: the numbers behind the learning tests'
thresholds and budgets.

For each method and seed it prints the global step (and wall time) at which the mean return of the
last 100 training episodes first reaches 200 and 475, the final training mean, the greedy policy's
mean return over 20 episodes, and the steps per second; then the medians.

    .venv/bin/python benchmarks/value_methods_cartpole.py --seeds 0 1 2 3 4 --steps 200000 \
        [--out results/value_methods_cartpole.txt]
"""
from __future__ import annotations

import argparse
import statistics
import sys

import asyncrl_lab as lab
from asyncrl_lab.book.experiments import steady_rate
from asyncrl_lab.presets import preset_settings
CARTPOLE = {algo: preset_settings(algo, "CartPole-v1") for algo in ("one_step_q", "one_step_sarsa", "n_step_q", "a3c")}

METHODS = ("one_step_q", "one_step_sarsa", "n_step_q")


def measure(algo: str, seed: int, steps: int) -> dict:
    run = lab.train(algo, seed=seed, workers=2, total_steps=steps, progress=False, **CARTPOLE[algo])
    hits = {t: run.history.first_reaching(t) for t in (200, 475)}
    return {"hits": hits, "final": float(run.history.rolling_mean(100)[-1]),
            "greedy": run.evaluate(episodes=20)["mean"], "rate": steady_rate(run)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    lines = [f"CartPole-v1, 2 workers, {args.steps:,} global steps per run, seeds {args.seeds}"]

    def show(line):
        print(line, flush=True)
        lines.append(line)

    for algo in args.methods:
        show(f"\n{algo}: {CARTPOLE[algo]}")
        show(f"{'seed':>4} {'T to 200':>9} {'s to 200':>8} {'T to 475':>9} {'s to 475':>8} "
             f"{'final':>6} {'greedy':>6} {'steps/s':>8}")
        results = []
        for seed in args.seeds:
            r = measure(algo, seed, args.steps)
            results.append(r)
            cells = []
            for t in (200, 475):
                hit = r["hits"][t]
                cells += [f"{hit[0]:>9,}", f"{hit[1]:>8.1f}"] if hit else [f"{'-':>9}", f"{'-':>8}"]
            show(f"{seed:>4} {' '.join(cells)} {r['final']:>6.0f} {r['greedy']:>6.0f} "
                 f"{r['rate']:>8,.0f}")
        for t in (200, 475):
            hits = [r["hits"][t] for r in results if r["hits"][t]]
            if hits:
                show(f"reached {t} in {len(hits)} of {len(results)} seeds: median T "
                     f"{statistics.median(h[0] for h in hits):,.0f} (range {min(h[0] for h in hits):,}"
                     f"-{max(h[0] for h in hits):,}), median {statistics.median(h[1] for h in hits):.1f} s")
            else:
                show(f"reached {t} in 0 of {len(results)} seeds")
        show(f"median final training mean {statistics.median(r['final'] for r in results):.0f}, "
             f"median greedy return {statistics.median(r['greedy'] for r in results):.0f}, "
             f"median {statistics.median(r['rate'] for r in results):,.0f} steps/s")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + f"\n\ncommand: python {' '.join(sys.argv)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
