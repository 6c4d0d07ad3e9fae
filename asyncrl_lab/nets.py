"""Networks: a trunk with a softmax policy head and a linear value head (actor-critic methods),
the same with an LSTM cell between the trunk and the heads (A3C LSTM), with a policy head and a
head of action values (ACER), or with a head of action values only (value-based methods).

* vector observations: an MLP trunk (tanh);
* Atari frame stacks: the paper's network, conv 16 8x8/4 -> conv 32 4x4/2 -> fc 256, ReLU
  (Mnih et al. 2016, Section 8), input scaled from uint8 to [0, 1] inside the network.

The actor-critics can normalize vector observations first (`obs_norm`), with running statistics
kept in the network itself, so that a checkpoint carries them and evaluation applies them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn


def mlp_trunk(obs_dim: int, hidden_sizes) -> tuple[nn.Module, int]:
    layers, width = [], obs_dim
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.Tanh()]
        width = size
    return nn.Sequential(*layers), width


class Moments(NamedTuple):
    """A sample's count, mean and (population) variance: numbers and numpy arrays, or tensors."""
    count: float
    mean: np.ndarray
    var: np.ndarray


def merge_moments(a: Moments, b: Moments) -> Moments:
    """The moments of two samples together, from each one's (Chan et al. 1979): how a batch
    joins the running statistics, and how a Ray parameter server merges its workers'."""
    total = a.count + b.count
    if total == 0:
        return a
    delta = b.mean - a.mean
    m2 = a.var * a.count + b.var * b.count + delta ** 2 * a.count * b.count / total
    return Moments(total, a.mean + delta * b.count / total, m2 / total)


class ObsNorm(nn.Module):
    """(x - mean) / sqrt(var + 1e-8), clipped to +-10: the observation normalized by the running
    mean and variance of every observation seen in training (stable-baselines3's VecNormalize,
    inside the network). Inputs whose scales differ by 10x (CartPole's cart position against its
    pole angle) then reach the first layer on one scale.

    The statistics are buffers, so they travel with the parameters: a worker's sync copies them,
    a checkpoint saves them, and `update`, called in training only, is the one thing that moves
    them.
    """

    CLIP = 10.0  # VecNormalize's clip_obs: an outlier seen before the variance settles stays bounded

    def __init__(self, obs_shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(obs_shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(obs_shape, dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scaled = (obs - self.mean) / torch.sqrt(self.var + 1e-8)
        return scaled.clamp(-self.CLIP, self.CLIP).to(torch.float32)

    @torch.no_grad()
    def update(self, batch: torch.Tensor):
        """Merge a batch of observations (n, *obs_shape) into the statistics, in place."""
        batch = torch.as_tensor(batch, device=self.mean.device).to(torch.float64)
        merged = merge_moments(Moments(self.count, self.mean, self.var),
                               Moments(batch.shape[0], batch.mean(0), batch.var(0, unbiased=False)))
        self.mean.copy_(merged.mean)
        self.var.copy_(merged.var)
        self.count.copy_(merged.count)


def observe(model: nn.Module, batch):
    """Let the network's observation statistics learn from a batch (n, *obs_shape) of training
    observations; nothing when it does not normalize them (obs_norm off)."""
    if getattr(model, "normalizer", None) is not None:
        model.normalizer.update(batch)


def _normalizer(obs_shape: tuple[int, ...], obs_norm: bool) -> ObsNorm | None:
    if obs_norm and len(obs_shape) != 1:
        raise ValueError(f"obs_norm normalizes vector observations, not observations of shape "
                         f"{tuple(obs_shape)} (Atari frames are scaled inside the network)")
    return ObsNorm(obs_shape) if obs_norm else None


class AtariTrunk(nn.Module):
    """The paper's Atari network up to its 256-unit hidden layer."""

    def __init__(self, in_channels: int = 4):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 9 * 9, 256), nn.ReLU(),
        )
        for layer in self.net:  # orthogonal with ReLU's gain, as OpenAI Baselines' Atari networks
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(layer.weight, gain=nn.init.calculate_gain("relu"))
                nn.init.zeros_(layer.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # Channels-last frames speed up the convolutions' backward pass on CPU (oneDNN) with the
        # same values; the A2C chapter times both layouts.
        x = frames.to(torch.float32, memory_format=torch.channels_last, copy=True)
        return self.net(x.mul_(1 / 255.0))


def trunk_for(obs_shape: tuple[int, ...], hidden_sizes) -> tuple[nn.Module, int]:
    """The trunk for an observation shape and its output width: MLP or the paper's conv net."""
    if len(obs_shape) == 1:
        return mlp_trunk(obs_shape[0], hidden_sizes)
    if len(obs_shape) == 3 and tuple(obs_shape[1:]) == (84, 84):
        return AtariTrunk(obs_shape[0]), 256
    raise ValueError(f"no network for observations of shape {obs_shape}: "
                     "expected a vector (n,) or an Atari frame stack (k, 84, 84)")


class ActorCritic(nn.Module):
    """pi(a|s; theta) and V(s; theta_v) sharing every layer but the two heads."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes=(64, 64),
                 obs_norm: bool = False):
        super().__init__()
        self.obs_shape, self.n_actions = tuple(obs_shape), int(n_actions)
        self.normalizer = _normalizer(obs_shape, obs_norm)
        self.trunk, width = trunk_for(obs_shape, hidden_sizes)
        self.policy = nn.Linear(width, n_actions)
        self.value = nn.Linear(width, 1)
        # Small policy weights start near the uniform policy (pfrl, CleanRL do the same).
        nn.init.orthogonal_(self.policy.weight, gain=0.01)
        nn.init.zeros_(self.policy.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits (..., n_actions) and state values (...,)."""
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        hidden = self.trunk(obs)
        return self.policy(hidden), self.value(hidden).squeeze(-1)

    def initial_state(self, batch: int = 1):
        """A feed-forward network carries no state (see RecurrentActorCritic)."""
        return None

    def unroll(self, obs: torch.Tensor, state=None, resets=None):
        """`forward` over a rollout (t_max, batch, *obs_shape), as RecurrentActorCritic.unroll is
        called; there is no state to carry, reset or return."""
        logits, values = self(obs.flatten(0, 1))  # the conv trunk takes (batch, C, H, W)
        return logits.unflatten(0, obs.shape[:2]), values.unflatten(0, obs.shape[:2]), None


class RecurrentActorCritic(nn.Module):
    """The paper's A3C LSTM: the trunk, then an LSTM cell, then the policy and value heads, so that
    pi(a|s_t, h_t; theta) and V(s_t, h_t; theta_v) depend on what came before s_t through the
    state (h_t, c_t) ("an LSTM layer with 128 cells", 256 after the Atari network's hidden layer).

    `unroll` is the one forward pass, acting (one step) and the update (a whole rollout) alike, so
    that both compute the same outputs from the same state.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes=(64, 64),
                 lstm_cells: int = 128, obs_norm: bool = False):
        super().__init__()
        self.obs_shape, self.n_actions = tuple(obs_shape), int(n_actions)
        self.lstm_cells = int(lstm_cells)
        self.normalizer = _normalizer(obs_shape, obs_norm)
        self.trunk, width = trunk_for(obs_shape, hidden_sizes)
        self.lstm = nn.LSTMCell(width, lstm_cells)
        self.policy = nn.Linear(lstm_cells, n_actions)
        self.value = nn.Linear(lstm_cells, 1)
        nn.init.orthogonal_(self.policy.weight, gain=0.01)  # near-uniform at first, as ActorCritic
        nn.init.zeros_(self.policy.bias)
        # a forget gate open at first keeps the cell's memory from vanishing before it learns
        # anything (Jozefowicz et al. 2015; pfrl's and ikostrikov's A3C LSTMs do the same)
        for bias in (self.lstm.bias_ih, self.lstm.bias_hh):
            nn.init.zeros_(bias)
            bias.data[lstm_cells:2 * lstm_cells] = 0.5

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, c) at the start of an episode: zeros, one row per env."""
        device = self.policy.weight.device
        return (torch.zeros(batch, self.lstm_cells, device=device),
                torch.zeros(batch, self.lstm_cells, device=device))

    def unroll(self, obs: torch.Tensor, state, resets=None):
        """Logits (T, batch, n_actions), values (T, batch) and the state after the last step, from
        observations (T, batch, *obs_shape) and the state before the first. `resets` (T, batch),
        where true, zeroes an env's state before that step: a new episode began there.

        Gradients flow back through the T steps into nothing before them: the state given is a
        constant (truncated backpropagation through time, one rollout at a time)."""
        steps, batch = obs.shape[:2]
        obs = obs.flatten(0, 1)
        if self.normalizer is not None:
            obs = self.normalizer(obs)
        features = self.trunk(obs).unflatten(0, (steps, batch))
        h, c = state
        keep = None if resets is None else (~torch.as_tensor(resets, device=h.device)).unsqueeze(-1)
        hidden = []
        for t in range(steps):
            if keep is not None:
                h, c = h * keep[t], c * keep[t]
            h, c = self.lstm(features[t], (h, c))
            hidden.append(h)
        hidden = torch.stack(hidden)
        return self.policy(hidden), self.value(hidden).squeeze(-1), (h, c)


class ActorQCritic(nn.Module):
    """ACER's network: pi(a|s; theta) and Q(s, .; theta_v) sharing every layer but the two heads.
    V(s) is not a head: it is sum_a pi(a|s) Q(s, a)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes=(64, 64)):
        super().__init__()
        self.obs_shape, self.n_actions = tuple(obs_shape), int(n_actions)
        self.trunk, width = trunk_for(obs_shape, hidden_sizes)
        self.policy = nn.Linear(width, n_actions)
        self.q = nn.Linear(width, n_actions)
        nn.init.orthogonal_(self.policy.weight, gain=0.01)  # near-uniform at first, as ActorCritic
        nn.init.zeros_(self.policy.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits and action values, each (..., n_actions)."""
        hidden = self.trunk(obs)
        return self.policy(hidden), self.q(hidden)


class QNetwork(nn.Module):
    """Q(s, .; theta): one linear output per action on top of the trunk (value-based methods)."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden_sizes=(64, 64)):
        super().__init__()
        self.obs_shape, self.n_actions = tuple(obs_shape), int(n_actions)
        self.trunk, width = trunk_for(obs_shape, hidden_sizes)
        self.q = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action values (..., n_actions)."""
        return self.q(self.trunk(obs))


class TorchActor:
    """Samples actions from pi(.|s) and reads V(s) with the network itself (no autograd)."""

    state = None  # what a recurrent actor carries between steps: nothing here

    def __init__(self, model: ActorCritic, seed: int):
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self):
        """A new episode: nothing to forget."""

    @torch.no_grad()
    def probs(self, obs) -> np.ndarray:
        """pi(.|s) as float64 numpy (ACER stores it as the behaviour policy mu)."""
        logits = self.model(torch.as_tensor(obs).unsqueeze(0))[0][0]
        return torch.softmax(logits.double(), -1).numpy()

    @torch.no_grad()
    def act(self, obs, greedy: bool = False) -> int:
        logits = self.model(torch.as_tensor(obs).unsqueeze(0))[0][0]
        if greedy:
            return int(logits.argmax())
        return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=self.generator))

    @torch.no_grad()
    def value(self, obs) -> float:
        return float(self.model(torch.as_tensor(obs).unsqueeze(0))[1])


class RecurrentActor:
    """A RecurrentActorCritic's actor: acts on each observation with the LSTM state of the steps
    before it in the episode, and carries the state forward. `state` is (h, c) before the next
    observation; `reset()` starts an episode from zeros."""

    def __init__(self, model: RecurrentActorCritic, seed: int):
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)
        self.reset()

    def reset(self):
        self.state = self.model.initial_state()

    @torch.no_grad()
    def _step(self, obs):
        logits, values, state = self.model.unroll(torch.as_tensor(obs)[None, None], self.state)
        return logits[0, 0], values[0, 0], state

    def act(self, obs, greedy: bool = False) -> int:
        logits, _, self.state = self._step(obs)
        if greedy:
            return int(logits.argmax())
        return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=self.generator))

    def value(self, obs) -> float:
        """V(s, h) of the next observation from the current state, which it leaves as it is: the
        next `act` takes the same step."""
        return float(self._step(obs)[1])


def sample_index(weights: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn with probability proportional to the non-negative `weights` (unnormalized
    probabilities), from one uniform draw of `rng`."""
    cdf = np.cumsum(weights)
    return min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)


class NumpyMLPActor:
    """The same as TorchActor for MLP networks, several times faster on one observation.

    Acting on a single CartPole state is dominated by torch's per-call overhead (~5 us per op);
    this computes the same forward pass with numpy on *views* of the network's own weights (no
    copy: an in-place update of the network, such as a worker's sync, is seen at once).
    """

    state = None
    reset = TorchActor.reset

    def __init__(self, model: ActorCritic | ActorQCritic, seed: int):
        self._hidden = _NumpyTrunk(model.trunk, getattr(model, "normalizer", None))
        self.policy = _numpy_views(model.policy)
        self.value_head = _numpy_views(model.value) if isinstance(model, ActorCritic) else None
        self.rng = np.random.default_rng(seed)

    def probs(self, obs) -> np.ndarray:
        """pi(.|s) as float64 numpy (ACER stores it as the behaviour policy mu)."""
        w, b = self.policy
        logits = (w @ self._hidden(obs) + b).astype(np.float64)
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def act(self, obs, greedy: bool = False) -> int:
        w, b = self.policy
        logits = w @ self._hidden(obs) + b
        if greedy:
            return int(logits.argmax())
        return sample_index(np.exp(logits - logits.max()), self.rng)

    def value(self, obs) -> float:
        w, b = self.value_head
        return float((w @ self._hidden(obs) + b)[0])


def _numpy_views(linear: nn.Linear) -> tuple[np.ndarray, np.ndarray]:
    return linear.weight.detach().numpy(), linear.bias.detach().numpy()


class _NumpyTrunk:
    """The MLP trunk's forward pass in numpy, on views of the network's weights."""

    def __init__(self, trunk: nn.Sequential, normalizer: ObsNorm | None = None):
        self.layers = [_numpy_views(m) for m in trunk if isinstance(m, nn.Linear)]
        self.stats = None if normalizer is None else (normalizer.mean.numpy(),
                                                      normalizer.var.numpy())

    def __call__(self, obs) -> np.ndarray:
        h = np.asarray(obs, dtype=np.float32)
        if self.stats is not None:  # ObsNorm.forward
            mean, var = self.stats
            h = np.clip((h - mean) / np.sqrt(var + 1e-8), -ObsNorm.CLIP, ObsNorm.CLIP)
            h = h.astype(np.float32)
        for w, b in self.layers:
            h = np.tanh(w @ h + b)
        return h


class NumpyQ:
    """Q(s, .) of one observation for MLP Q networks, in numpy (see NumpyMLPActor for why)."""

    def __init__(self, model: QNetwork):
        self._hidden = _NumpyTrunk(model.trunk)
        self.head = _numpy_views(model.q)

    def __call__(self, obs) -> np.ndarray:
        w, b = self.head
        return w @ self._hidden(obs) + b


class TorchQ:
    """Q(s, .) of one observation, with the network itself (no autograd)."""

    def __init__(self, model: QNetwork):
        self.model = model

    @torch.no_grad()
    def __call__(self, obs) -> np.ndarray:
        return self.model(torch.as_tensor(obs).unsqueeze(0))[0].numpy()


def make_q_reader(model: QNetwork):
    """The fastest way to read Q(s, .) of one observation: numpy for MLPs, torch otherwise."""
    return NumpyQ(model) if isinstance(model.trunk, nn.Sequential) else TorchQ(model)


class GreedyQActor:
    """The policy a Q network defines: argmax_a Q(s, a). Acting is always greedy (`greedy` is
    accepted so that it can stand in for an actor-critic's actor)."""

    state = None
    reset = TorchActor.reset

    def __init__(self, model: QNetwork):
        self.q_values = make_q_reader(model)

    def act(self, obs, greedy: bool = True) -> int:
        return int(self.q_values(obs).argmax())


def resolve_device(device: str) -> torch.device:
    """The torch device a config names: "auto" is the GPU when torch sees one, else the CPU."""
    if not isinstance(device, str):
        raise ValueError(f"a device name is a string, not {type(device).__name__}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{device!r} is not a torch device name") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"only CPU and CUDA devices are supported, not {resolved.type!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("this torch sees no GPU (torch.cuda.is_available() is False)")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"this machine has {torch.cuda.device_count()} GPU(s)")
    return resolved


def make_actor(model: nn.Module, seed: int):
    """The fastest actor for a network: numpy for MLPs, torch otherwise; greedy in Q for a
    Q network."""
    if isinstance(model, QNetwork):
        return GreedyQActor(model)
    if isinstance(model, RecurrentActorCritic):
        return RecurrentActor(model, seed)
    return NumpyMLPActor(model, seed) if isinstance(model.trunk, nn.Sequential) else \
        TorchActor(model, seed)
