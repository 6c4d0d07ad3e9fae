"""What the asynchronous value-based methods (one-step Q, one-step Sarsa, n-step Q) share.

* the shared Q network theta and the shared target network theta^- (`build_shared`);
* exploration as in the paper: each worker draws its final epsilon from {0.1, 0.01, 0.5} with
  probabilities {0.4, 0.3, 0.3} and anneals epsilon linearly from 1 to it (`EpsilonGreedy`);
* the target network update "if T mod I_target == 0 then theta^- <- theta" (`TargetNetwork`);
* the update: the squared TD error summed over the steps since the last update, backpropagated
  into the worker's copy of theta and applied through the shared optimizer (`q_update`).
"""
from __future__ import annotations

import numpy as np
import torch

from .losses import q_value_loss
from .nets import QNetwork, make_q_reader
from .optim import gradient_update, make_optimizer
from .parallel import worker_seeds


def make_network(config, obs_shape, n_actions) -> QNetwork:
    return QNetwork(obs_shape, n_actions, config.hidden_sizes)


def build_shared(config, obs_shape, n_actions) -> dict:
    """theta, theta^- (a copy of theta), the count of target updates so far, and the optimizer,
    all in shared memory."""
    model = make_network(config, obs_shape, n_actions).share_memory()
    target = make_network(config, obs_shape, n_actions)
    target.load_state_dict(model.state_dict())
    return {"model": model, "target": target.share_memory(),
            "target_version": torch.zeros(1, dtype=torch.int64).share_memory_(),
            "optimizer": make_optimizer(config, model.parameters())}


def draw_final_epsilon(config, rng: np.random.Generator) -> float:
    """One worker's final epsilon: a draw from config.final_epsilons with final_epsilon_probs.

    Different workers explore differently, which is what replaces replay's decorrelation."""
    return float(rng.choice(config.final_epsilons, p=config.final_epsilon_probs))


def _worker_exploration(config, seed: int) -> tuple[float, np.random.Generator]:
    """A worker's final epsilon and the generator it then explores with, both from its seed."""
    rng = np.random.default_rng(seed)
    return draw_final_epsilon(config, rng), rng


def worker_final_epsilons(config) -> list[float]:
    """The final epsilon each worker of a run with this config draws (the draw is seeded)."""
    return [_worker_exploration(config, seed)[0] for seed in worker_seeds(config)]


def epsilon_at(global_step: int, final_epsilon: float, anneal_steps: int) -> float:
    """Epsilon at global step T: linear from 1 at T = 0 to final_epsilon at T = anneal_steps."""
    fraction = min(1.0, global_step / anneal_steps)
    return 1.0 + fraction * (final_epsilon - 1.0)


class EpsilonGreedy:
    """The epsilon-greedy policy of a Q network: a uniformly random action with probability
    epsilon(T), argmax_a Q(s, a) otherwise."""

    def __init__(self, q_values, n_actions: int, final_epsilon: float, anneal_steps: int,
                 rng: np.random.Generator):
        self.q_values, self.n_actions = q_values, n_actions
        self.final_epsilon, self.anneal_steps, self.rng = final_epsilon, anneal_steps, rng

    @classmethod
    def for_worker(cls, ctx, local: QNetwork) -> "EpsilonGreedy":
        """A worker's policy: epsilon-greedy in its local network's Q(s, .; theta'), with the final
        epsilon drawn from the worker's own seed (see `worker_final_epsilons`)."""
        final_epsilon, rng = _worker_exploration(ctx.config, ctx.seed)
        return cls(make_q_reader(local), local.n_actions, final_epsilon,
                   ctx.config.epsilon_anneal_steps, rng)

    def act(self, obs, global_step: int) -> int:
        if self.rng.random() < epsilon_at(global_step, self.final_epsilon, self.anneal_steps):
            return int(self.rng.integers(self.n_actions))
        return int(self.q_values(obs).argmax())


class TargetNetwork:
    """theta^- in shared memory, copied from theta each time T passes a multiple of I_target.

    The paper's test "T mod I_target == 0" assumes T moves by one; here T moves by a rollout at a
    time and two workers may move it at once, so a worker copies when T // I_target exceeds the
    shared count of copies made. That count is written before the copy: a second worker that
    reaches the same multiple a moment later sees it and does not copy again.

    A resumed run starts the count at 0, so its workers' first check copies the loaded theta into
    theta^- (unless T is still below I_target: then theta^- is the seed's initial network, as it
    was in the original run).
    """

    def __init__(self, shared: dict, interval: int):
        self.model, self.source = shared["target"], shared["model"]
        self.q_values = make_q_reader(self.model)  # Q(s, .; theta^-), for the targets
        self.version = shared["target_version"].numpy()
        self.interval = interval
        self._params, self._source_params = list(self.model.parameters()), \
            list(self.source.parameters())

    @torch.no_grad()
    def maybe_sync(self, global_step: int) -> bool:
        """theta^- <- theta if T has passed a multiple of I_target since the last copy."""
        due = global_step // self.interval
        if due <= self.version[0]:
            return False
        self.version[0] = due
        torch._foreach_copy_(self._params, self._source_params)
        return True


def q_update(ctx, local: QNetwork, states, actions, targets, global_step: int):
    """d theta = sum_i d(y_i - Q(s_i, a_i; theta'))^2 / d theta' over the transitions since the last
    update (one batched pass at fixed theta', equal to accumulating step by step), then the
    asynchronous update of theta with it."""
    q_values = local(torch.as_tensor(np.stack(states)))
    loss = q_value_loss(q_values, torch.as_tensor(actions),
                        torch.as_tensor(np.asarray(targets), dtype=torch.float32))
    gradient_update(ctx, local, loss, global_step, {"value_loss": loss.detach() / len(actions)})
