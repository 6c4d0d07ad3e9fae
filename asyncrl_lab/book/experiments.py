"""Multi-seed runs and measurements, as the chapters and the benchmarks run them.

Quick mode: set the environment variable ASYNCRL_QUICK=1 and `budget(full, quick)` returns the
small budget, so the test suite can execute every chapter in minutes. Quick mode proves that the
code runs; only the full budgets produce results that teach what the text says.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch.multiprocessing as mp

from ..run import Run
from ..training import train

# The committed results (long runs, benchmarks), found from the package rather than from the
# working directory, so that a chapter's notebook runs anywhere: in the grader's sandbox too.
RESULTS = Path(__file__).resolve().parents[2] / "results"


def quick_mode() -> bool:
    """True when ASYNCRL_QUICK is set to something other than '', '0', 'false' or 'no'."""
    return os.environ.get("ASYNCRL_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def budget(full, quick):
    """`quick` in quick mode, `full` otherwise (step counts, seed lists, sweep values)."""
    return quick if quick_mode() else full


def train_seeds(algo: str, seeds, *, progress: bool = True, **options) -> list[Run]:
    """One `train(algo, seed=s, **options)` per seed, in turn (each run already uses every
    worker process it is given, so runs are not overlapped)."""
    return [train(algo, seed=seed, progress=progress, **options) for seed in seeds]


def steady_rate(run: Run) -> float:
    """Env steps per second between the run's first and last finished episodes: the training
    throughput with process start-up and shutdown left out."""
    h = run.history
    if len(h) < 2 or h.wall_time[-1] <= h.wall_time[0]:
        raise ValueError(f"{run!r} has fewer than two episodes at distinct times; train it longer "
                         "to measure its throughput")
    return float((h.global_step[-1] - h.global_step[0]) / (h.wall_time[-1] - h.wall_time[0]))


def training_rate(algo: str, *, warmup: float = 0.25, **options) -> tuple[Run, float]:
    """Train `algo` (`train`'s arguments but `progress`, which this uses) and return the run with
    its steady-state throughput: env steps per second after the first `warmup` fraction of its
    steps, from the progress reports. Unlike `steady_rate` it needs no finished episodes, so it
    suits Atari's long games."""
    samples = []
    run = train(algo, progress=lambda outcome: samples.append((outcome.wall_time,
                                                                outcome.global_step)), **options)
    after = [(t, s) for t, s in samples if s >= warmup * run.global_step]
    if len(after) < 2 or after[-1][0] <= after[0][0]:
        raise ValueError(f"{run!r} is too short to measure its throughput; train it longer")
    (t1, s1), (t2, s2) = after[0], after[-1]
    return run, (s2 - s1) / (t2 - t1)


def env_steps_per_second(env_id: str = "CartPole-v1", steps: int = 50_000, seed: int = 0) -> float:
    """Raw stepping rate of one env with random actions: no learning, no network."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def threads_vs_processes(n: int, env_id: str = "CartPole-v1", steps: int = 50_000) -> dict:
    """Total env steps/s of `n` envs stepped by `n` threads and by `n` processes (spawn), each
    stepping its own env; and of one env alone. Shows what the GIL does to Python actors."""
    rates = {"1 env, 1 thread": env_steps_per_second(env_id, steps)}
    spawn = mp.get_context("spawn")
    for label, pool in ((f"{n} threads", ThreadPoolExecutor(n)),
                        (f"{n} processes", ProcessPoolExecutor(n, mp_context=spawn))):
        with pool:
            list(pool.map(env_steps_per_second, [env_id] * n, [1_000] * n))  # start-up, imports
            start = time.perf_counter()
            list(pool.map(env_steps_per_second, [env_id] * n, [steps] * n, range(n)))
            rates[label] = n * steps / (time.perf_counter() - start)
    return rates


def score_at(run, at: float, x: str = "global_step", window: int = 100) -> float:
    """The mean return of the last `window` episodes among those that ended by `at` (env steps,
    or seconds with x="wall_time"; fewer at the start); nan before the first episode ends. A run
    that ended before `at` keeps its last score."""
    ended = np.flatnonzero(getattr(run.history, x) <= at)
    if len(ended) == 0:
        return float("nan")
    return float(run.history.rolling_mean(window)[ended[-1]])


def solve_summary(runs, threshold: float = 475.0, window: int = 100) -> dict:
    """How many runs reached a rolling mean of `threshold`, and the medians of the global steps
    and seconds they needed (None where no run did): the numbers a chapter glues."""
    hits = [run.history.first_reaching(threshold, window) for run in runs]
    solved = [hit for hit in hits if hit is not None]
    return {"solved": len(solved), "runs": len(runs),
            "median_steps": float(np.median([h[0] for h in solved])) if solved else None,
            "median_seconds": float(np.median([h[1] for h in solved])) if solved else None,
            "median_final": float(np.median([run.history.rolling_mean(window)[-1]
                                             for run in runs if len(run.history)]))}


def methods_summary(runs_by_label: dict, threshold: float = 475.0) -> dict:
    """Per label, `solve_summary` of its runs and the median over them of their steps/s (global
    steps over wall time): the columns of the book's summary of the methods."""
    return {label: {**solve_summary(runs, threshold),
                    "steps_per_second": float(np.median([r.global_step / r.wall_time
                                                         for r in runs]))}
            for label, runs in runs_by_label.items()}
