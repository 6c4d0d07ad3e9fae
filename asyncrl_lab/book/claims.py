"""The paper's claims, measured: the analysis behind the chapter "The paper's claims, measured".

A run's score is its training return, the mean of its last 100 episodes (the rolling mean every
study stops on), read at the end of the run (`final_score`) or at a given env step or second
(`experiments.score_at`); the time to a score is `experiments.solve_summary`'s. Table 2's
speed-up is the paper's definition: the wall time one worker needs to reach a fixed score over
the time k workers need; its data-efficiency side is the same ratio of env steps. Aggregates over seeds come from rliable (Agarwal et al. 2021): the interquartile mean with
stratified-bootstrap confidence intervals, and performance profiles.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .experiments import solve_summary

# Table 2 of Mnih et al. (2016): the training speed-up with 1 to 16 threads, averaged over seven
# Atari games
PAPER_TABLE_2 = {
    "one-step Q": {1: 1.0, 2: 3.0, 4: 6.3, 8: 13.3, 16: 24.1},
    "one-step Sarsa": {1: 1.0, 2: 2.8, 4: 5.9, 8: 13.1, 16: 22.1},
    "n-step Q": {1: 1.0, 2: 2.7, 4: 5.9, 8: 10.7, 16: 17.2},
    "A3C": {1: 1.0, 2: 2.1, 4: 3.7, 8: 6.9, 16: 12.5},
}
CARTPOLE_MAX = 500.0  # CartPole-v1's longest episode: the normalization of the aggregates


def final_score(run, window: int = 100) -> float:
    """The mean training return of the run's last `window` episodes; nan for a run that diverged
    (its network is no longer a policy) or played no episode."""
    returns = run.history.episode_return
    if getattr(run, "diverged", False) or len(returns) == 0:
        return float("nan")
    return float(returns[-window:].mean())


def speedups(runs_by_label: dict, methods, workers, score: float, label=None) -> dict:
    """Table 2 measured: for each method and worker count, `solve_summary` of its runs at `score`
    and the ratios of its medians to one worker's: `speedup` (time, the paper's definition) and
    `data_efficiency` (env steps; above 1: fewer steps with more workers). `label(method, k)`
    names a variant (the study's labels by default)."""
    label = label or (lambda method, k: f"{method}, {k} worker{'s' * (k > 1)}")
    table = {}
    for method in methods:
        one = solve_summary(runs_by_label[label(method, 1)], score)
        table[method] = {}
        for k in workers:
            row = solve_summary(runs_by_label[label(method, k)], score)
            both = row["solved"] and one["solved"]
            table[method][k] = {
                **row,
                "speedup": one["median_seconds"] / row["median_seconds"] if both else float("nan"),
                "data_efficiency": (one["median_steps"] / row["median_steps"] if both
                                    else float("nan"))}
    return table


def share_reaching(scores, score: float) -> float:
    """The fraction of runs whose score reached `score` (a diverged run's nan does not)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(np.nan_to_num(scores, nan=-np.inf) >= score))


def normalized(scores_by_label: dict, maximum: float = CARTPOLE_MAX) -> dict:
    """Scores as rliable takes them: {label: array (runs, 1 task)} in [0, 1], a diverged run's nan
    as 0 (it ends with no policy)."""
    return {label: np.nan_to_num(np.asarray(s, dtype=np.float64), nan=0.0).reshape(-1, 1) / maximum
            for label, s in scores_by_label.items()}


@contextmanager
def _seeded(seed: int):
    """rliable's stratified bootstrap draws its resamples from numpy's global random state
    (StratifiedBootstrap.update_indices), whatever random_state it is given: seed that, and
    restore it after, so that an interval is the same on every build."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm_intervals(scores: dict, reps: int = 2000, seed: int = 0) -> dict:
    """{label: (IQM, lower, upper)}: rliable's interquartile mean over the runs with its 95%
    stratified-bootstrap confidence interval."""
    from rliable import library as rly, metrics

    with _seeded(seed):
        points, intervals = rly.get_interval_estimates(
            scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps)
    return {label: (float(points[label][0]), float(intervals[label][0, 0]),
                    float(intervals[label][1, 0])) for label in scores}


def performance_profiles(scores: dict, taus, reps: int = 2000, seed: int = 0) -> dict:
    """{label: (fraction of runs scoring above each tau, lower, upper)}: rliable's performance
    profile (score distribution) with 95% stratified-bootstrap bands."""
    from rliable import library as rly

    with _seeded(seed):
        profiles, bands = rly.create_performance_profile(scores, np.asarray(taus), reps=reps)
    return {label: (profiles[label], bands[label][0], bands[label][1]) for label in scores}
