"""Asynchronous n-step Q-learning: Algorithm S2 of Mnih et al. (2016).

Each worker process runs `worker`. The comments quote the lines of Algorithm S2 they implement.
What the value-based methods share (Q networks, exploration, target network, update) is in
`asyncrl_lab.value_methods`.
"""
from __future__ import annotations

from ..config import NStepQConfig as Config
from ..envs import make_env
from ..parallel import AsyncContext
from ..returns import bootstrap_value, n_step_returns
from ..value_methods import EpsilonGreedy, TargetNetwork, build_shared, make_network, q_update

__all__ = ["Config", "build_shared", "make_network", "worker"]


def worker(ctx: AsyncContext):
    config: Config = ctx.config
    env = make_env(config.env, seed=ctx.seed, sticky_actions=config.sticky_actions,
                   episodic_life=config.episodic_life)
    local = make_network(config, ctx.model.obs_shape, ctx.model.n_actions)
    policy = EpsilonGreedy.for_worker(ctx, local)           # epsilon-greedy in Q(s, .; theta')
    target = TargetNetwork(ctx.shared, config.target_update_interval)
    target.maybe_sync(ctx.global_step)                      # initialize theta^- <- theta (on resume)
    global_step = ctx.global_step
    obs, _ = env.reset()
    while ctx.running():                                    # repeat ... until T > T_max
        ctx.sync(local)                                     # clear d theta; synchronize theta' = theta
        states, actions, rewards = [], [], []
        for _ in range(config.t_max):                       # until terminal s_t or t - t_start == t_max
            action = policy.act(obs, global_step)           # a_t epsilon-greedy in Q(s_t, .; theta')
            next_obs, reward, terminated, truncated, info = env.step(action)
            states.append(obs)
            actions.append(action)
            rewards.append(reward)                          # receive reward r_t and new state s_{t+1}
            obs = next_obs
            if terminated or truncated:
                break
        global_step = ctx.add_steps(len(rewards))           # t <- t + 1, T <- T + 1 for each step
        # R = 0 for terminal s_t, max_a Q(s_t, a; theta^-) otherwise (also after a truncation)
        R = bootstrap_value(terminated, target.q_values(obs).max())
        # for i in t-1 .. t_start: R <- r_i + gamma * R; accumulate d(R - Q(s_i, a_i; theta'))^2
        returns = n_step_returns(rewards, R, config.gamma)
        q_update(ctx, local, states, actions, returns, global_step)  # asynchronous update of theta
        target.maybe_sync(global_step)                      # if T mod I_target == 0: theta^- <- theta

        if terminated or truncated:
            if "episode" in info:  # a real game over, not a lost life
                ctx.episode(info["episode"]["r"], info["episode"]["l"])
            obs, _ = env.reset()
    env.close()
