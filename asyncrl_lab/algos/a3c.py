"""Asynchronous advantage actor-critic, feed-forward: Algorithm S3 of Mnih et al. (2016).

Each worker process runs `worker`. The comments quote the lines of Algorithm S3 they implement.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import A3CConfig as Config
from ..envs import make_env
from ..losses import actor_critic_loss
from ..nets import ActorCritic, make_actor
from ..optim import gradient_update, make_optimizer
from ..parallel import AsyncContext
from ..returns import bootstrap_value, n_step_returns


def make_network(config: Config, obs_shape, n_actions) -> ActorCritic:
    return ActorCritic(obs_shape, n_actions, config.hidden_sizes)


def build_shared(config: Config, obs_shape, n_actions) -> dict:
    """The global parameters theta, theta_v and the optimizer, in shared memory."""
    model = make_network(config, obs_shape, n_actions).share_memory()
    return {"model": model, "optimizer": make_optimizer(config, model.parameters())}


def worker(ctx: AsyncContext):
    config: Config = ctx.config
    env = make_env(config.env, seed=ctx.seed, sticky_actions=config.sticky_actions,
                   episodic_life=config.episodic_life)
    local = make_network(config, ctx.model.obs_shape, ctx.model.n_actions)
    policy = make_actor(local, ctx.seed)  # acts with the local parameters theta'
    obs, _ = env.reset()
    while ctx.running():                                    # repeat ... until T > T_max
        ctx.sync(local)                                     # synchronize theta' = theta, theta'_v = theta_v
        states, actions, rewards = [], [], []
        for _ in range(config.t_max):                       # until terminal s_t or t - t_start == t_max
            action = policy.act(obs)                        # perform a_t according to pi(a_t|s_t; theta')
            next_obs, reward, terminated, truncated, info = env.step(action)
            states.append(obs)
            actions.append(action)
            rewards.append(reward)                          # receive reward r_t and new state s_{t+1}
            obs = next_obs
            if terminated or truncated:
                break
        global_step = ctx.add_steps(len(rewards))           # T <- T + 1 for each step taken
        # R = 0 for terminal s_t, V(s_t; theta'_v) otherwise (also after a time-limit truncation)
        R = bootstrap_value(terminated, policy.value(obs))
        returns = n_step_returns(rewards, R, config.gamma)

        # accumulate gradients wrt theta' and theta'_v over the rollout (one batched pass)
        logits, values = local(torch.as_tensor(np.stack(states)))
        loss = actor_critic_loss(logits, values, torch.as_tensor(actions),
                                 torch.as_tensor(returns, dtype=torch.float32),
                                 config.entropy_beta, config.value_loss_coef)
        # asynchronous update of theta using d theta and of theta_v using d theta_v
        gradient_update(ctx, local, loss, global_step)

        if terminated or truncated:
            if "episode" in info:  # a real game over, not a lost life
                ctx.episode(info["episode"]["r"], info["episode"]["l"])
            obs, _ = env.reset()
    env.close()
