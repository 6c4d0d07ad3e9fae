"""Where a recurrent policy's gradient reaches: the measurement behind the chapter "A3C with
memory".

A3C's worker with an LSTM acts step by step without gradients, keeps the LSTM state it had at
each rollout's first step, and its update runs the rollout again from that state (algos/a3c.py).
`gradient_reach` measures, with that real code path, how strongly the value at one step depends
on each earlier observation through the gradient, and the same for backpropagation through the
whole episode.
"""
from __future__ import annotations

import numpy as np
import torch

from ..nets import RecurrentActor, RecurrentActorCritic


def gradient_reach(model: RecurrentActorCritic, obs: torch.Tensor, t_max: int, at: int,
                   truncated: bool = True) -> np.ndarray:
    """|dV(s_at) / d o_t| (the gradient's norm over the observation's features) for every step t of
    one episode's observations `obs` (T, *obs_shape).

    truncated: as A3C's worker computes it. The actor steps through the episode, the state at the
    start of every rollout of `t_max` steps is kept, and the rollout holding step `at` is run again
    from its kept state, with gradients. Otherwise: one pass over the whole episode from zeros
    (full backpropagation through time).
    """
    if not 0 <= at < len(obs):
        raise ValueError(f"at={at} is not a step of an episode of {len(obs)} observations")
    first = at - at % t_max if truncated else 0
    inputs = obs.clone().requires_grad_(True)  # every step's, so that any path to one shows
    if truncated:
        actor = RecurrentActor(model, seed=0)
        for t in range(first):
            actor.act(inputs[t])  # the state after step t, as the worker carries it
        start = actor.state
    else:
        start = model.initial_state()
    _, values, _ = model.unroll(inputs[first:at + 1, None], start)
    values[-1, 0].backward()
    return inputs.grad.flatten(1).norm(dim=1).numpy()
