"""The returns math, as pure functions on plain arrays (tested on hand-computed cases).

A rollout of k steps s_t .. s_{t+k-1} ends in one of three ways, and the bootstrap value
that closes it differs:

* the episode *terminated* (a real terminal state): nothing follows, bootstrap 0;
* the episode was *truncated* by a time limit: the state still has a future, bootstrap V(s_{t+k});
* the rollout hit t_max steps mid-episode: bootstrap V(s_{t+k}).

Treating truncation like termination biases the returns downward near the time limit, a common
bug in public implementations; `bootstrap_value` is the one place that makes the choice.
"""
from __future__ import annotations

import numpy as np


def bootstrap_value(terminated: bool, last_value: float) -> float:
    """R for the state after the rollout: 0 on termination, V(s_{t+k}) otherwise (Algorithm S3)."""
    return 0.0 if terminated else float(last_value)


def n_step_returns(rewards, bootstrap: float, gamma: float) -> np.ndarray:
    """Forward-view n-step returns of one rollout, computed backwards as in Algorithm S3.

    R_i = r_i + gamma * R_{i+1}, starting from R_k = bootstrap, so that
    R_i = sum_{j=i}^{k-1} gamma^(j-i) r_j + gamma^(k-i) * bootstrap.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be a 1-D sequence, got shape {rewards.shape}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    returns = np.empty_like(rewards)
    R = float(bootstrap)
    for i in range(len(rewards) - 1, -1, -1):
        R = rewards[i] + gamma * R
        returns[i] = R
    return returns
