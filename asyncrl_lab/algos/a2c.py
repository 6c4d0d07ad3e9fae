"""Synchronous advantage actor-critic (A2C; OpenAI Baselines, 2017): A3C with its actor-learners
made synchronous.

One process steps `n_envs` environments as a vector with one set of parameters theta. Every env
takes t_max steps, each step one batched forward pass for all of them; then the coordinator makes
a single update from the whole batch with A3C's loss (a mean over the batch instead of a sum,
because the batch is n_envs times larger). No update is ever computed from stale parameters.
The comments quote Algorithm S3's lines where A2C does the same thing.

With `lstm_cells`, each env's LSTM state is carried as A3C's worker carries its own (see
algos/a3c.py): kept at the rollout's start, the update re-runs the rollout from it, and where an
env's episode ends inside the rollout its state is zeroed before the next step, in acting and in
the update alike.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import A2CConfig as Config
from ..envs import make_vector_env
from ..losses import actor_critic_terms
from ..nets import observe, resolve_device
from ..optim import gradient_update, make_optimizer
from ..parallel import Context
from ..returns import batched_n_step_returns
from . import a3c

make_network = a3c.make_network  # the same networks: feed-forward or with an LSTM

def build_shared(config: Config, obs_shape, n_actions) -> dict:
    """The parameters theta, theta_v and the optimizer, on config.device (CUDA when available)."""
    model = make_network(config, obs_shape, n_actions).to(resolve_device(config.device))
    return {"model": model, "optimizer": make_optimizer(config, model.parameters())}


def sample_actions(logits: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    """One action per row from softmax(logits), drawn with `rng` (the same draws on any device)."""
    probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
    cdf = probs.cumsum(axis=1)
    u = rng.random(len(probs))[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), probs.shape[1] - 1)


def _rows(memory, envs: np.ndarray):
    """The LSTM states of some envs (None without an LSTM)."""
    if memory is None:
        return None
    rows = torch.as_tensor(envs, device=memory[0].device)
    return tuple(m[rows] for m in memory)


def _zero_ended(memory, ended: np.ndarray):
    """The LSTM states with those of the envs whose episode ended zeroed."""
    if memory is None:
        return None
    keep = ~torch.as_tensor(ended, device=memory[0].device)[:, None]
    return tuple(m * keep for m in memory)


def coordinator(ctx: Context):
    config: Config = ctx.config
    model = ctx.model
    device = next(model.parameters()).device
    envs = make_vector_env(config.env, config.n_envs, config.seed,
                           sticky_actions=config.sticky_actions, episodic_life=config.episodic_life)
    rng = np.random.default_rng(config.seed)
    t_max, n = config.t_max, config.n_envs
    states = np.empty((t_max + 1, n, *envs.single_observation_space.shape),
                      dtype=envs.single_observation_space.dtype)
    actions = np.empty((t_max, n), dtype=np.int64)
    rewards, end_values = np.empty((t_max, n)), np.zeros((t_max, n))
    dones = np.empty((t_max, n), dtype=bool)
    memory = model.initial_state(n)  # the envs' LSTM states (None without an LSTM)
    try:
        obs = envs.reset()
        while ctx.running():                                    # repeat ... until T > T_max
            start_memory = memory                               # each env's state at t_start
            for t in range(t_max):                              # every env takes t_max steps
                states[t] = obs
                with torch.no_grad():                           # one forward pass for all envs
                    logits, _, memory = model.unroll(torch.as_tensor(obs, device=device)[None],
                                                     memory)
                actions[t] = sample_actions(logits[0], rng)     # perform a_t ~ pi(a_t|s_t; theta)
                obs, rewards[t], terminated, truncated, final_obs, finished = envs.step(actions[t])
                dones[t] = terminated | truncated
                end_values[t] = 0.0                             # R = 0 for terminal s_t ...
                cut = truncated & ~terminated                   # ... V(s_t) after a time limit
                if cut.any():
                    final = torch.as_tensor(final_obs[cut], device=device)[None]
                    with torch.no_grad():
                        _, last, _ = model.unroll(final, _rows(memory, cut))
                    end_values[t][cut] = last[0].cpu().numpy()
                memory = _zero_ended(memory, dones[t])          # new episodes: their state from 0
                global_step = ctx.add_steps(n)                  # T <- T + 1 for each env's step
                for env_index, episode_return, length in finished:
                    ctx.episode(episode_return, length, actor=env_index)
            states[t_max] = obs
            # one batched pass over the rollouts and the state after them (R = V(s_t) to bootstrap),
            # from each env's state at t_start, zeroed after each step where its episode ended
            resets = np.concatenate([np.zeros((1, n), dtype=bool), dones])
            logits, values, _ = model.unroll(torch.as_tensor(states, device=device), start_memory,
                                             resets)
            logits, values = logits.flatten(0, 1), values.flatten(0, 1)
            last_values = values[-n:].detach().cpu().numpy()
            returns = batched_n_step_returns(rewards, dones, end_values, last_values, config.gamma)
            batch_actions = torch.as_tensor(actions, device=device).flatten()
            batch_returns = torch.as_tensor(returns, dtype=torch.float32, device=device).flatten()
            # A3C's loss (a sum over the steps), averaged over the batch
            terms = actor_critic_terms(logits[:-n], values[:-n], batch_actions, batch_returns)
            loss = terms.loss(config.entropy_beta, config.value_loss_coef) / (t_max * n)
            gradient_update(ctx, model, loss, global_step,      # one update of theta and theta_v
                            terms.means(t_max * n))
            # with obs_norm, the observation statistics learn from the rollout after the update,
            # so that acting and the update used the same ones
            observe(model, torch.as_tensor(states[:-1], device=device).flatten(0, 1))
    finally:
        envs.close()
