"""Soak test: A3C with 2 workers on CartPole for 10 minutes; memory and throughput over time.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--every 30] [--out results/soak.txt]

Every `--every` seconds it samples the resident memory (RSS) of the parent and of each worker
process and the training throughput over the last interval. A leak shows as memory that keeps
growing; a slowdown (a growing queue, lock contention, a leak the allocator hides) as steps/s
that decay. The run is stopped at the end the way Ctrl-C stops one, which it also exercises.
"""
from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import psutil

import asyncrl_lab as lab
from asyncrl_lab.presets import preset_settings
A3C_CARTPOLE = preset_settings("a3c", "CartPole-v1")

MB = 2**20


class Sampler:
    """A `progress` callback: samples memory and throughput, stops the run after `seconds`."""

    def __init__(self, seconds: float, every: float):
        self.seconds, self.every = seconds, every
        self.rows, self.last = [], None
        self.parent = psutil.Process(os.getpid())

    def __call__(self, outcome):
        now = outcome.wall_time
        if self.last is None or now - self.last[0] >= self.every:
            # spawned workers are our children; forkserver's (the default) the server's
            workers = [p for p in self.parent.children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline()) or p.ppid() != self.parent.pid]
            rate = None if self.last is None else \
                (outcome.global_step - self.last[1]) / (now - self.last[0])
            self.rows.append((now, outcome.global_step, rate, self.parent.memory_info().rss / MB,
                              [w.memory_info().rss / MB for w in workers], len(outcome.episodes),
                              len(outcome.diagnostics)))
            self.last = (now, outcome.global_step)
            print(self.format(self.rows[-1]), flush=True)
        if now >= self.seconds:
            raise KeyboardInterrupt  # stop as Ctrl-C would

    @staticmethod
    def format(row) -> str:
        t, step, rate, parent, workers, episodes, samples = row
        rate = "" if rate is None else f"{rate:,.0f}"
        return (f"{t:7.0f} s  T={step:>12,}  {rate:>8} steps/s  parent {parent:6.1f} MB  "
                f"workers {' '.join(f'{w:6.1f}' for w in workers)} MB  {episodes:,} episodes  "
                f"{samples:,} diagnostics")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    sampler = Sampler(args.minutes * 60, args.every)
    print(f"A3C, CartPole-v1, 2 workers, {args.minutes:g} minutes, {os.cpu_count()} cores")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "interrupted" warning: this stop is the plan
        run = lab.train("a3c", workers=2, total_steps=10**12, seed=0, progress=sampler,
                        **A3C_CARTPOLE)
    # Row 0 is taken at start-up and row 1 closes the interval that includes it: memory is
    # compared from row 1, throughput from the interval after it.
    first, last = sampler.rows[1], sampler.rows[-1]
    rates = [r[2] for r in sampler.rows[2:]]
    lines = [Sampler.format(r) for r in sampler.rows] + [
        f"status {run.status}; {run.global_step:,} steps, {len(run.history):,} episodes in "
        f"{run.wall_time:.0f} s",
        f"parent memory {first[3]:.1f} -> {last[3]:.1f} MB ({last[3] - first[3]:+.1f} MB, "
        f"{(last[3] - first[3]) * MB / max(last[5] - first[5] + last[6] - first[6], 1):.0f} "
        "bytes per row recorded, episodes and sampled updates: the run's history, which the "
        "parent keeps)",
        *(f"worker {i} memory {a:.1f} -> {b:.1f} MB ({b - a:+.1f} MB)"
          for i, (a, b) in enumerate(zip(first[4], last[4]))),
        f"steps/s after start-up: first interval {rates[0]:,.0f}, last {rates[-1]:,.0f} "
        f"({rates[-1] / rates[0]:.2f}x); min {min(rates):,.0f}, max {max(rates):,.0f}",
    ]
    print("\n".join(lines[len(sampler.rows):]))
    if args.out:
        args.out.write_text("$ .venv/bin/python benchmarks/soak.py " +
                            f"--minutes {args.minutes:g} --every {args.every:g}\n" +
                            "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
