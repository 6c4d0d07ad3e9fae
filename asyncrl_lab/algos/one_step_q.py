"""Asynchronous one-step Q-learning: Algorithm S1 of Mnih et al. (2016).

Each worker process runs `worker`. The comments quote the lines of Algorithm S1 they implement.
`one_step_worker` is the loop; one-step Sarsa (`one_step_sarsa.py`) runs the same loop with its own
target. What the value-based methods share (Q networks, exploration, target network, update) is in
`asyncrl_lab.value_methods`.
"""
from __future__ import annotations

from ..config import OneStepQConfig as Config
from ..envs import make_env
from ..parallel import AsyncContext
from ..returns import q_learning_target
from ..value_methods import EpsilonGreedy, TargetNetwork, build_shared, make_network, q_update

__all__ = ["Config", "build_shared", "make_network", "one_step_worker", "worker"]


def one_step_worker(ctx: AsyncContext, one_step_target):
    """Algorithm S1 with `one_step_target(r, terminated, Q(s', .; theta^-), a', gamma)` as y."""
    config = ctx.config
    env = make_env(config.env, seed=ctx.seed, sticky_actions=config.sticky_actions,
                   episodic_life=config.episodic_life)
    local = make_network(config, ctx.model.obs_shape, ctx.model.n_actions)
    # Q(s, a; theta) read from the worker's copy of theta, refreshed after every update
    policy = EpsilonGreedy.for_worker(ctx, local)
    target = TargetNetwork(ctx.shared, config.target_update_interval)
    target.maybe_sync(ctx.global_step)                      # initialize theta^- <- theta (on resume)
    ctx.sync(local)
    global_step = ctx.global_step
    obs, _ = env.reset()                                    # get initial state s
    action = policy.act(obs, global_step)                   # a: epsilon-greedy in Q(s, .; theta)
    states, actions, targets = [], [], []                   # d theta <- 0
    while ctx.running():                                    # repeat ... until T > T_max
        next_obs, reward, terminated, truncated, info = env.step(action)  # new state s', reward r
        # the action taken in s' (Sarsa's a'), chosen now because Sarsa's target needs it
        next_action = policy.act(next_obs, global_step)
        # y = r for terminal s', r + gamma * max_a' Q(s', a'; theta^-) otherwise (Sarsa: Q(s', a'))
        y = one_step_target(reward, terminated, target.q_values(next_obs), next_action,
                            config.gamma)
        states.append(obs)                                  # accumulate gradients wrt theta:
        actions.append(action)                              # kept as (s, a, y) and summed in one
        targets.append(y)                                   # batched pass at the update
        obs, action = next_obs, next_action                 # s = s'
        global_step = ctx.add_steps(1)                      # T <- T + 1 and t <- t + 1
        target.maybe_sync(global_step)                      # if T mod I_target == 0: theta^- <- theta
        episode_over = terminated or truncated
        if len(states) == config.async_update_interval or episode_over:  # t mod I_AsyncUpdate == 0
            q_update(ctx, local, states, actions, targets, global_step)  # or s is terminal: update
            states, actions, targets = [], [], []           # clear gradients d theta <- 0
            ctx.sync(local)
        if episode_over:
            if "episode" in info:  # a real game over, not a lost life
                ctx.episode(info["episode"]["r"], info["episode"]["l"])
            obs, _ = env.reset()
            action = policy.act(obs, global_step)
    env.close()


def worker(ctx: AsyncContext):
    one_step_worker(ctx, q_learning_target)
