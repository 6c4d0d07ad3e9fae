"""How correlated are the samples an update learns from? The measurement behind the chapter
"From DQN to parallel actor-learners".

An update averages gradients over a batch of B transitions. If the B samples were independent,
the batch mean of any feature would have variance sigma^2 / B. Consecutive states of one actor are
strongly correlated, so their batch mean varies much more: the batch is worth fewer independent
samples. The *effective sample size* of a way of forming batches is

    ESS = sigma^2 / Var(batch mean),

for one feature: B for independent samples, 1 for B copies of one state. Over a state's several
features we take the harmonic mean of their ESS (the mean of Var(batch mean) / sigma^2, inverted):
the most correlated feature dominates, as it should, and an oscillating feature, whose
anti-correlation makes its batch mean *more* precise than independent samples would, cannot hide
it.
"""
from __future__ import annotations

import numpy as np

from ..envs import make_env


def collect_streams(env_id: str, n_actors: int, steps: int, seed: int = 0,
                    policy=None) -> np.ndarray:
    """States seen by `n_actors` independent actors over `steps` steps each, as an array of shape
    (n_actors, steps, obs_dim). `policy(obs, rng) -> action` defaults to uniform random actions.
    Episodes that end are reset, as an actor-learner's stream would be."""
    streams = []
    for actor in range(n_actors):
        env = make_env(env_id, seed=seed + actor, training=False)
        rng = np.random.default_rng(seed + actor)
        obs, _ = env.reset()
        states = []
        for _ in range(steps):
            states.append(np.asarray(obs, dtype=np.float64).ravel())
            action = (rng.integers(env.action_space.n) if policy is None else policy(obs, rng))
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                obs, _ = env.reset()
        env.close()
        streams.append(states)
    return np.asarray(streams)


def actor_batches(streams: np.ndarray, n_actors: int, batch_size: int, n_batches: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Batches as parallel actor-learners produce them: `n_actors` actors, each contributing
    `batch_size // n_actors` consecutive states from its own stream at a random time.
    Returns shape (n_batches, batch_size, obs_dim)."""
    total_actors, steps, _ = streams.shape
    if not 1 <= n_actors <= total_actors:
        raise ValueError(f"n_actors must be between 1 and the {total_actors} streams given, "
                         f"not {n_actors}")
    if batch_size % n_actors:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of n_actors ({n_actors})")
    run = batch_size // n_actors
    batches = []
    for _ in range(n_batches):
        actors = rng.choice(total_actors, size=n_actors, replace=False)
        starts = rng.integers(0, steps - run + 1, size=n_actors)
        batches.append(np.concatenate([streams[a, s:s + run] for a, s in zip(actors, starts)]))
    return np.asarray(batches)


def replay_batches(streams: np.ndarray, batch_size: int, n_batches: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Batches as DQN's experience replay draws them: uniformly from everything stored."""
    pool = streams.reshape(-1, streams.shape[-1])
    return pool[rng.integers(0, len(pool), size=(n_batches, batch_size))]


def effective_sample_size(batches: np.ndarray, variance: np.ndarray | None = None) -> float:
    """The harmonic mean over features of sigma^2 / Var(batch mean); `variance` (sigma^2 per
    feature) defaults to the variance of all the samples in `batches`."""
    batches = np.asarray(batches, dtype=np.float64)
    if batches.ndim != 3 or len(batches) < 2:
        raise ValueError("batches must have shape (n_batches >= 2, batch_size, n_features), "
                         f"not {batches.shape}")
    if variance is None:
        variance = batches.reshape(-1, batches.shape[-1]).var(axis=0)
    variance = np.asarray(variance, dtype=np.float64)
    keep = variance > 0  # a constant feature carries no information
    return float(1.0 / np.mean(batches.mean(axis=1).var(axis=0)[keep] / variance[keep]))


def autocorrelation(streams: np.ndarray, max_lag: int) -> np.ndarray:
    """Correlation between a state feature at time t and at time t + lag within each actor's
    stream, pooled over actors: shape (max_lag + 1, obs_dim); lag 0 is 1."""
    streams = np.asarray(streams, dtype=np.float64)
    centred = streams - streams.reshape(-1, streams.shape[-1]).mean(axis=0)
    variance = (centred ** 2).mean(axis=(0, 1))
    variance[variance == 0] = np.nan
    lags = [np.mean(centred[:, : streams.shape[1] - lag] * centred[:, lag:], axis=(0, 1))
            for lag in range(max_lag + 1)]
    return np.asarray(lags) / variance
