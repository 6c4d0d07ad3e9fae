"""Asynchronous advantage actor-critic: Algorithm S3 of Mnih et al. (2016), feed-forward or, with
`lstm_cells`, the paper's A3C LSTM.

Each worker process runs `worker`. The comments quote the lines of Algorithm S3 they implement.

With an LSTM the worker does what pfrl's A3C does. It carries the LSTM state (h, c) from step to
step and from one rollout to the next, so that the policy remembers the whole episode; it keeps
the state it had at the rollout's first step, t_start; and the update runs the rollout again from
that state, so that backpropagation goes through the rollout's t_max steps and stops at its start
(truncated backpropagation through time): the stored state is a constant, and no gradient reaches
an earlier rollout, whose parameters theta' were other ones. The state starts from zeros in every
episode; on Atari with episodic_life a lost life ends the training episode, and the state too.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import A3CConfig as Config
from ..envs import make_env
from ..losses import actor_critic_terms
from ..nets import ActorCritic, RecurrentActorCritic, make_actor, observe
from ..optim import gradient_update, make_optimizer
from ..parallel import AsyncContext
from ..returns import bootstrap_value, n_step_returns


def make_network(config: Config, obs_shape, n_actions) -> ActorCritic | RecurrentActorCritic:
    if config.lstm_cells:
        return RecurrentActorCritic(obs_shape, n_actions, config.hidden_sizes, config.lstm_cells,
                                    config.obs_norm)
    return ActorCritic(obs_shape, n_actions, config.hidden_sizes, config.obs_norm)


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
        start_state = policy.state                          # (h, c) at t_start (None: feed-forward)
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

        # accumulate gradients wrt theta' and theta'_v over the rollout (one pass over it, from
        # the state at t_start: gradients stop there)
        observations = torch.as_tensor(np.stack(states))
        logits, values, _ = local.unroll(observations[:, None], start_state)
        terms = actor_critic_terms(logits[:, 0], values[:, 0], torch.as_tensor(actions),
                                   torch.as_tensor(returns, dtype=torch.float32))
        loss = terms.loss(config.entropy_beta, config.value_loss_coef)
        # asynchronous update of theta using d theta and of theta_v using d theta_v
        gradient_update(ctx, local, loss, global_step, terms.means(len(rewards)))
        # with obs_norm, the shared observation statistics learn from the rollout, lock-free as
        # the parameters (the local copy keeps the ones the rollout was acted and updated with)
        observe(ctx.model, observations)

        if terminated or truncated:
            if "episode" in info:  # a real game over, not a lost life
                ctx.episode(info["episode"]["r"], info["episode"]["l"])
            obs, _ = env.reset()
            policy.reset()                                  # a new episode: (h, c) from zeros
    env.close()
