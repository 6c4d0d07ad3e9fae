"""The returns math, as pure functions on plain arrays (tested on hand-computed cases).

A rollout of k steps s_t .. s_{t+k-1} ends in one of three ways, and the bootstrap value
that closes it differs:

* the episode *terminated* (a real terminal state): nothing follows, bootstrap 0;
* the episode was *truncated* by a time limit: the state still has a future, bootstrap V(s_{t+k});
* the rollout hit t_max steps mid-episode: bootstrap V(s_{t+k}).

Treating truncation like termination biases the returns downward near the time limit, a common
bug in public implementations; `bootstrap_value` is the one place that makes the choice.

The value-based methods bootstrap from the target network theta^-: one-step Q-learning from
max_a Q(s', a; theta^-), one-step Sarsa from Q(s', a'; theta^-) with a' the action the behaviour
policy takes next, n-step Q-learning from max_a Q(s_{t+k}, a; theta^-) at the end of the rollout.
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


def _check_one_step(reward, terminated, next_q_values, gamma):
    next_q_values = np.asarray(next_q_values, dtype=np.float64)
    if next_q_values.ndim < 1:
        raise ValueError("next_q_values must hold one value per action (last axis), "
                         f"got shape {next_q_values.shape}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    alive = 1.0 - np.asarray(terminated, dtype=np.float64)
    return np.asarray(reward, dtype=np.float64), alive, next_q_values


def q_learning_target(reward, terminated, next_q_values, next_action, gamma: float):
    """y = r + gamma * max_a' Q(s', a'; theta^-), and y = r if s' is terminal (Algorithm S1).

    Off-policy: `next_action`, the action the behaviour policy takes in s', does not enter the
    target (the argument is there so that both one-step targets are called alike). Works
    elementwise on batches: next_q_values has one row of action values per transition.
    """
    reward, alive, next_q_values = _check_one_step(reward, terminated, next_q_values, gamma)
    return reward + alive * gamma * next_q_values.max(axis=-1)


def sarsa_target(reward, terminated, next_q_values, next_action, gamma: float):
    """y = r + gamma * Q(s', a'; theta^-) with a' the action taken next, and y = r if s' is terminal.

    On-policy: the target follows the behaviour policy, exploration included.
    """
    reward, alive, next_q_values = _check_one_step(reward, terminated, next_q_values, gamma)
    chosen = np.take_along_axis(next_q_values, np.asarray(next_action)[..., None], axis=-1)
    return reward + alive * gamma * chosen[..., 0]


def batched_n_step_returns(rewards, dones, end_values, last_values, gamma: float) -> np.ndarray:
    """n-step returns of a batch of rollouts run side by side (A2C): arrays of shape
    (t_max, n_envs), in which an env's episode may end and the next begin mid-rollout.

    R_t = r_t + gamma * R_{t+1}, except where an episode ended at step t (`dones[t]`): there the
    chain restarts from `end_values[t]` (0 on termination, V(s') of the last state on truncation,
    as `bootstrap_value` decides). After the last step R = `last_values`, V(s_{t+t_max}).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must have shape (t_max, n_envs), got {rewards.shape}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    dones = np.broadcast_to(np.asarray(dones, dtype=bool), rewards.shape)
    end_values = np.broadcast_to(np.asarray(end_values, dtype=np.float64), rewards.shape)
    returns = np.empty_like(rewards)
    R = np.broadcast_to(np.asarray(last_values, dtype=np.float64), rewards.shape[1:])
    for t in range(len(rewards) - 1, -1, -1):
        R = rewards[t] + gamma * np.where(dones[t], end_values[t], R)
        returns[t] = R
    return returns


def retrace_targets(rewards, q_taken, values, truncated_rhos, bootstrap: float,
                    gamma: float) -> np.ndarray:
    """Retrace targets Q_ret of one replayed segment x_0 .. x_k (ACER, Algorithm 2 of Wang et al.
    2017), computed backwards:

        Q_ret <- bootstrap                       (0 if x_k is terminal, else V(x_k))
        for i = k-1 .. 0:
            Q_ret <- r_i + gamma * Q_ret          -> the target of Q(x_i, a_i)
            Q_ret <- rho_bar_i * (Q_ret - Q(x_i, a_i)) + V(x_i)

    `q_taken[i]` is Q(x_i, a_i), `values[i]` is V(x_i) = sum_a pi(a|x_i) Q(x_i, a), and
    `truncated_rhos[i]` is rho_bar_i = min(1, pi(a_i|x_i) / mu(a_i|x_i)). The two limits: with
    rho_bar = 0 the targets are one-step targets r_i + gamma * V(x_{i+1}), the trace cut where an
    action the behaviour policy took is unlikely under pi; with rho_bar = 1 and Q(x_i, a_i) =
    V(x_i) they are the n-step returns. In between, the trace carries the observed rewards as far
    as the importance weights allow, with low variance (weights at most 1) and no bias from the
    off-policy data (Munos et al. 2016).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    arrays = {"q_taken": q_taken, "values": values, "truncated_rhos": truncated_rhos}
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in arrays.items()}
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be a 1-D sequence, got shape {rewards.shape}")
    for name, a in arrays.items():
        if a.shape != rewards.shape:
            raise ValueError(f"{name} must have the rewards' shape {rewards.shape}, got {a.shape}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    q_taken, values, rho_bar = arrays["q_taken"], arrays["values"], arrays["truncated_rhos"]
    targets = np.empty_like(rewards)
    q_ret = float(bootstrap)
    for i in range(len(rewards) - 1, -1, -1):
        q_ret = rewards[i] + gamma * q_ret
        targets[i] = q_ret
        q_ret = rho_bar[i] * (q_ret - q_taken[i]) + values[i]
    return targets
