"""Actor-critic with experience replay, discrete actions: Algorithms 1 and 2 of Wang et al. (2017).

Each worker process runs `worker`, Algorithm 1: it plays a segment of up to k steps with the current
policy and learns from it on-policy, then replays n ~ Poisson(r) segments from its own memory and
learns from each off-policy. `acer_update` is Algorithm 2's update for one segment; the comments
quote its lines. The math is in pure functions: `returns.retrace_targets`,
`losses.acer_policy_objective`, `losses.average_kl_gradient`, `losses.trust_region_projection`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ACERConfig as Config
from ..envs import make_env
from ..losses import (PROB_EPS, acer_policy_objective, average_kl_gradient,
                      trust_region_projection)
from ..nets import ActorQCritic, make_actor, sample_index
from ..optim import gradient_update, make_optimizer
from ..parallel import AsyncContext
from ..returns import bootstrap_value, retrace_targets


def make_network(config: Config, obs_shape, n_actions) -> ActorQCritic:
    return ActorQCritic(obs_shape, n_actions, config.hidden_sizes)


def build_shared(config: Config, obs_shape, n_actions) -> dict:
    """The global parameters theta, theta_v, the average policy network theta_a (a copy of them at
    the start) and the optimizer, all in shared memory."""
    model = make_network(config, obs_shape, n_actions).share_memory()
    average = make_network(config, obs_shape, n_actions)
    average.load_state_dict(model.state_dict())
    return {"model": model, "average_model": average.share_memory(),
            "optimizer": make_optimizer(config, model.parameters())}


@dataclass
class Segment:
    """A trajectory x_0, a_0, r_0, mu(.|x_0), ..., x_k inside one episode."""

    states: np.ndarray  # x_0 .. x_k: k + 1 states; the last one closes the segment
    actions: np.ndarray  # a_0 .. a_{k-1}
    rewards: np.ndarray  # r_0 .. r_{k-1}
    behaviour_probs: np.ndarray  # mu(.|x_i), shape (k, n_actions): the policy that acted
    terminated: bool  # x_k is terminal, so Q_ret starts from 0 instead of V(x_k)

    def __len__(self) -> int:
        return len(self.actions)


class ReplayMemory:
    """One worker's memory of the segments it played, the oldest dropped beyond `capacity` steps.

    A segment is stored whole and ends where its episode ends, so a replayed trajectory never
    runs from one episode into the next: the Retrace recursion needs x_{i+1} to follow x_i.
    """

    def __init__(self, capacity: int):
        self.capacity, self.steps = capacity, 0
        self.segments: deque[Segment] = deque()

    def add(self, segment: Segment):
        self.segments.append(segment)
        self.steps += len(segment)
        while self.steps > self.capacity:
            self.steps -= len(self.segments.popleft())

    def sample(self, rng: np.random.Generator) -> Segment:
        """A stored segment, uniformly at random."""
        return self.segments[rng.integers(len(self.segments))]


class AveragePolicy:
    """The average policy network theta_a (in shared memory), as a worker uses it."""

    def __init__(self, network: ActorQCritic, model: ActorQCritic, alpha: float):
        self.network, self.alpha = network, alpha
        self._params, self._model_params = list(network.parameters()), list(model.parameters())

    @torch.no_grad()
    def probs(self, states: torch.Tensor) -> torch.Tensor:
        """f(.|phi_theta_a(x)) for a batch of states."""
        return torch.softmax(self.network.policy(self.network.trunk(states)), -1)

    @torch.no_grad()
    def soft_update(self):
        """theta_a <- alpha * theta_a + (1 - alpha) * theta, in place, after every update."""
        torch._foreach_lerp_(self._params, self._model_params, 1.0 - self.alpha)


def acer_update(ctx: AsyncContext, local: ActorQCritic, average: AveragePolicy, segment: Segment,
                global_step: int):
    """Algorithm 2 for one segment, with theta' = `local` already synchronized with theta."""
    config: Config = ctx.config
    states = torch.as_tensor(segment.states)
    actions = torch.as_tensor(segment.actions).unsqueeze(-1)
    mu = torch.as_tensor(segment.behaviour_probs)
    # compute f(.|phi_theta'(x_i)) and Q_theta'_v(x_i, .) for i = 0 .. k
    logits, q_values = local(states)
    probs = torch.softmax(logits, -1)
    f, q = probs[:-1], q_values[:-1]
    with torch.no_grad():
        values = (probs * q_values).sum(-1)                 # V_i <- sum_a Q(x_i, a) f(a|x_i)
        q_taken = q.gather(-1, actions).squeeze(-1)
        rho_taken = f.gather(-1, actions).squeeze(-1) / mu.gather(-1, actions).squeeze(-1)
        # Q_ret <- 0 for terminal x_k, V(x_k) otherwise; then back over i with rho_bar_i = min(1, rho_i)
        q_ret = retrace_targets(segment.rewards, q_taken.numpy(), values[:-1].numpy(),
                                rho_taken.clamp(max=1.0).numpy(),
                                bootstrap_value(segment.terminated, float(values[-1])), config.gamma)
    q_ret = torch.as_tensor(q_ret, dtype=torch.float32)

    # g <- min{c, rho_i} grad_phi log f(a_i) (Q_ret - V_i) + bias correction (+ entropy)
    phi = f.detach().requires_grad_()
    objective = acer_policy_objective(phi, q, actions.squeeze(-1), q_ret, mu, config.truncation_c,
                                      config.bias_correction, config.entropy_beta)
    (g,) = torch.autograd.grad(objective.sum(), phi)
    if config.trust_region:
        k = average_kl_gradient(average.probs(states[:-1]), phi.detach())  # k <- grad_phi KL[f_a || f]
        g = trust_region_projection(g, k, config.trust_region_delta)  # g - max{0, (k.g - delta)/|k|^2} k

    # d theta' <- d theta' + d phi / d theta' z*;  d theta'_v <- d theta'_v + grad (Q_ret - Q(x_i, a_i))^2
    critic_loss = 0.5 * (q_ret - q.gather(-1, actions).squeeze(-1)).pow(2).sum()
    loss = -(f * g).sum() + config.q_loss_coef * critic_loss
    # asynchronous update of theta using d theta' and of theta_v using d theta'_v
    gradient_update(ctx, local, loss, global_step, _diagnostics(objective, critic_loss, phi))
    average.soft_update()  # theta_a <- alpha theta_a + (1 - alpha) theta


def _diagnostics(objective: torch.Tensor, critic_loss: torch.Tensor, phi: torch.Tensor) -> dict:
    """The segment's terms per step: the policy objective negated (what the update minimises
    before the trust region), the critic's loss, the policy's entropy."""
    k = len(phi)
    entropy = -(phi * phi.clamp(min=PROB_EPS).log()).sum()
    return {"policy_loss": -objective.detach().sum() / k, "value_loss": critic_loss.detach() / k,
            "entropy": entropy.detach() / k}


def worker(ctx: AsyncContext):
    config: Config = ctx.config
    env = make_env(config.env, seed=ctx.seed, sticky_actions=config.sticky_actions,
                   episodic_life=config.episodic_life)
    local = make_network(config, ctx.model.obs_shape, ctx.model.n_actions)
    policy = make_actor(local, ctx.seed)  # reads f(.|phi_theta'(x)) of the local parameters
    average = AveragePolicy(ctx.shared["average_model"], ctx.model, config.average_decay)
    memory = ReplayMemory(config.replay_capacity)
    rng = np.random.default_rng(ctx.seed)
    obs, _ = env.reset()
    while ctx.running():                                    # repeat ... until max iteration
        ctx.sync(local)                                     # theta' <- theta
        # ACER on-policy: perform a_i according to f(.|phi_theta'(x_i)), mu(.|x_i) <- f(.|...)
        states, actions, rewards, mus = [obs], [], [], []
        for _ in range(config.t_max):
            mu = policy.probs(obs)
            action = sample_index(mu, rng)
            obs, reward, terminated, truncated, info = env.step(action)  # receive r_i and x_{i+1}
            states.append(obs)
            actions.append(action)
            rewards.append(reward)
            mus.append(mu)
            if terminated or truncated:
                break
        segment = Segment(np.stack(states), np.asarray(actions, dtype=np.int64),
                          np.asarray(rewards, dtype=np.float64),
                          np.asarray(mus, dtype=np.float32), bool(terminated))
        global_step = ctx.add_steps(len(segment))
        memory.add(segment)
        acer_update(ctx, local, average, segment, global_step)
        if memory.steps >= config.replay_start:
            for _ in range(rng.poisson(config.replay_ratio)):  # n <- Poisson(r)
                ctx.sync(local)
                acer_update(ctx, local, average, memory.sample(rng), global_step)  # off-policy

        if terminated or truncated:
            if "episode" in info:  # a real game over, not a lost life
                ctx.episode(info["episode"]["r"], info["episode"]["l"])
            obs, _ = env.reset()
    env.close()
