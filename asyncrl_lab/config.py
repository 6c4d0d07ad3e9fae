"""One dataclass per algorithm, validated on construction.

A bad value raises a ValueError that names the field, the value and what is allowed, before any
process starts. Defaults follow the paper (REFERENCE.md) where it gives one; values marked
(impl) are common implementation defaults.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

START_METHODS = ("spawn", "fork", "forkserver")
OPTIMIZERS = ("rmsprop", "adam")


def _fail(cls_name: str, name: str, value, allowed: str):
    raise ValueError(f"{cls_name}.{name}={value!r} is not allowed: {name} must be {allowed}")


def _positive_int(config, key: str):
    value = getattr(config, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(type(config).__name__, key, value, "an integer >= 1")


@dataclass(frozen=True)
class Config:
    """Settings shared by every method: the environment, the budget, the optimizer, the network."""

    env: str = "CartPole-v1"
    total_steps: int = 200_000
    seed: int = 0
    gamma: float = 0.99
    lr: float = 7e-4
    lr_anneal: bool = True  # linearly to 0 at total_steps, as in the paper
    optimizer: str = "rmsprop"
    rmsprop_alpha: float = 0.99
    optimizer_eps: float = 0.1  # (impl) suits shared RMSProp (eps outside the sqrt); use ~1e-8 with adam
    max_grad_norm: float = 40.0  # (impl)
    hidden_sizes: tuple = (64, 64)  # MLP trunk for vector observations; Atari uses the paper's conv net
    sticky_actions: bool = False  # Atari: the paper has none; ALE v5 defaults to 0.25
    episodic_life: bool = False  # Atari: a lost life ends the training episode

    def __post_init__(self):
        name = type(self).__name__
        ints = {
            "total_steps": (self.total_steps, 1, "an integer >= 1"),
            "seed": (self.seed, 0, "an integer >= 0"),
        }
        for key, (value, low, allowed) in ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                _fail(name, key, value, allowed)
        self._check_float("gamma", lambda g: 0.0 < g <= 1.0, "in (0, 1]")
        self._check_float("lr", lambda v: v > 0, "a positive number")
        self._check_float("rmsprop_alpha", lambda v: 0.0 < v < 1.0, "in (0, 1)")
        self._check_float("optimizer_eps", lambda v: v > 0, "a positive number")
        self._check_float("max_grad_norm", lambda v: v > 0, "a positive number")
        for key in ("lr_anneal", "sticky_actions", "episodic_life"):
            if not isinstance(getattr(self, key), bool):
                _fail(name, key, getattr(self, key), "True or False")
        if self.optimizer not in OPTIMIZERS:
            _fail(name, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        sizes = self._as_tuple("hidden_sizes")
        if not (isinstance(sizes, tuple) and sizes and all(
                isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in sizes)):
            _fail(name, "hidden_sizes", self.hidden_sizes, "a non-empty tuple of positive integers")
        if not isinstance(self.env, str) or not self.env:
            _fail(name, "env", self.env, "a Gymnasium environment id such as 'CartPole-v1'")
        from .envs import check_env_id  # deferred: imports gymnasium and ale_py

        check_env_id(self.env)

    def _as_tuple(self, key):
        """The field's value, a list (as JSON and the CLI give it) stored as a tuple."""
        value = getattr(self, key)
        if isinstance(value, list):
            value = tuple(value)
            object.__setattr__(self, key, value)
        return value

    def _check_float(self, key, ok, allowed):
        value = getattr(self, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(type(self).__name__, key, value, f"a number {allowed}")
        if not math.isfinite(value) or not ok(value):
            _fail(type(self).__name__, key, value, allowed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} option(s) {unknown}; allowed: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class AsyncConfig(Config):
    """Settings shared by every asynchronous method (one process per actor-learner)."""

    workers: int = 2
    shared_optimizer_stats: bool = True  # the paper's "shared RMSProp"; False: per-worker statistics
    start_method: str = "spawn"

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self, "workers")
        if not isinstance(self.shared_optimizer_stats, bool):
            _fail(type(self).__name__, "shared_optimizer_stats", self.shared_optimizer_stats,
                  "True or False")
        if self.start_method not in START_METHODS:
            _fail(type(self).__name__, "start_method", self.start_method, f"one of {START_METHODS}")


@dataclass(frozen=True)
class A3CConfig(AsyncConfig):
    """Asynchronous advantage actor-critic, feed-forward (Algorithm S3)."""

    t_max: int = 5
    entropy_beta: float = 0.01
    value_loss_coef: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        _check_actor_critic(self)


def _check_actor_critic(config):
    _positive_int(config, "t_max")
    config._check_float("entropy_beta", lambda v: v >= 0, "a number >= 0")
    config._check_float("value_loss_coef", lambda v: v > 0, "a positive number")


@dataclass(frozen=True)
class ACERConfig(AsyncConfig):
    """Actor-critic with experience replay, discrete actions (Wang et al. 2017, Algorithms 1-2).

    The paper's and OpenAI Baselines' values: truncation c = 10, trust region delta = 1, average
    policy decay alpha = 0.99, replay ratio 4, segments of 20 steps, 50,000 steps of replay per
    worker and replay from 10,000, critic loss coefficient 0.5, entropy 0.01.
    """

    t_max: int = 20  # k: the steps of one on-policy segment (fewer where an episode ends)
    entropy_beta: float = 0.01
    q_loss_coef: float = 0.5  # weight of sum_i (Q_ret_i - Q(x_i, a_i))^2 / 2 in the loss
    truncation_c: float = 10.0  # c: importance weights are truncated at c, the rest corrected
    bias_correction: bool = True  # False: drop the correction term (an ablation)
    trust_region: bool = True  # False: use g itself instead of its projection (an ablation)
    trust_region_delta: float = 1.0  # delta: bound on the linearized KL to the average policy
    average_decay: float = 0.99  # alpha: theta_a <- alpha * theta_a + (1 - alpha) * theta
    replay_ratio: float = 4.0  # r: off-policy updates per on-policy update ~ Poisson(r)
    # steps each worker's replay memory keeps, the oldest dropped; segments store their frame
    # stacks whole, so on Atari the default takes about 1.5 GB per worker
    replay_capacity: int = 50_000
    replay_start: int = 10_000  # steps a worker's memory must hold before it replays

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self, "t_max")
        _positive_int(self, "replay_capacity")
        if isinstance(self.replay_start, bool) or not isinstance(self.replay_start, int) or \
                not 0 <= self.replay_start <= self.replay_capacity:
            _fail(type(self).__name__, "replay_start", self.replay_start,
                  f"an integer from 0 to replay_capacity ({self.replay_capacity})")
        self._check_float("entropy_beta", lambda v: v >= 0, "a number >= 0")
        self._check_float("q_loss_coef", lambda v: v > 0, "a positive number")
        self._check_float("truncation_c", lambda v: v > 0, "a positive number")
        self._check_float("trust_region_delta", lambda v: v > 0, "a positive number")
        self._check_float("average_decay", lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        self._check_float("replay_ratio", lambda v: v >= 0, "a number >= 0")
        for key in ("bias_correction", "trust_region"):
            if not isinstance(getattr(self, key), bool):
                _fail(type(self).__name__, key, getattr(self, key), "True or False")


@dataclass(frozen=True)
class A2CConfig(Config):
    """Synchronous advantage actor-critic: one process steps n_envs environments as a vector.

    Defaults are OpenAI Baselines' and stable-baselines3's (impl): 16 envs, t_max 5, RMSProp with
    eps 1e-5, gradients clipped to norm 0.5 (the loss is a mean over the batch, not a sum). Our
    eps is added outside the square root (torch's form, as in ikostrikov's pytorch-a2c); theirs
    inside it, which floors the denominator at sqrt(1e-5) ~ 3e-3 and all but freezes layers with
    small gradients (the 2592x256 layer of the Atari network, whose policy then stayed uniform
    after 1.5M Pong steps with eps 3e-3 here).
    """

    n_envs: int = 16
    t_max: int = 5
    entropy_beta: float = 0.01
    value_loss_coef: float = 0.5
    optimizer_eps: float = 1e-5
    max_grad_norm: float = 0.5
    device: str = "auto"  # "auto": CUDA when torch sees a GPU, else CPU; or "cpu", "cuda", "cuda:1"

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self, "n_envs")
        _check_actor_critic(self)
        from .nets import resolve_device  # deferred: imports torch

        try:
            resolve_device(self.device)
        except ValueError as err:
            _fail(type(self).__name__, "device", self.device,
                  f"'auto', 'cpu', 'cuda' or 'cuda:N' ({err})")


@dataclass(frozen=True)
class QConfig(AsyncConfig):
    """Settings the asynchronous value-based methods share (Algorithms S1 and S2).

    Steps are agent steps; on Atari one is 4 frames, so the paper's 4M frames of epsilon annealing
    are 1M steps and its target network update every 40,000 frames is every 10,000 steps.
    """

    epsilon_anneal_steps: int = 1_000_000  # epsilon falls linearly from 1 to its final value
    final_epsilons: tuple = (0.1, 0.01, 0.5)  # each worker draws its final epsilon from these
    final_epsilon_probs: tuple = (0.4, 0.3, 0.3)  # with these probabilities
    target_update_interval: int = 10_000  # I_target: theta^- <- theta every this many global steps

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        _positive_int(self, "epsilon_anneal_steps")
        _positive_int(self, "target_update_interval")
        for key in ("final_epsilons", "final_epsilon_probs"):
            value = self._as_tuple(key)
            if not (isinstance(value, tuple) and value and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    and 0.0 <= v <= 1.0 for v in value)):
                _fail(name, key, value, "a non-empty tuple of numbers in [0, 1]")
        if len(self.final_epsilon_probs) != len(self.final_epsilons):
            _fail(name, "final_epsilon_probs", self.final_epsilon_probs,
                  f"one probability per final epsilon ({len(self.final_epsilons)} of them)")
        if abs(sum(self.final_epsilon_probs) - 1.0) > 1e-6:
            _fail(name, "final_epsilon_probs", self.final_epsilon_probs, "probabilities summing to 1")


@dataclass(frozen=True)
class OneStepQConfig(QConfig):
    """Asynchronous one-step Q-learning (Algorithm S1)."""

    async_update_interval: int = 5  # I_AsyncUpdate: steps of accumulated gradients per update

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self, "async_update_interval")


@dataclass(frozen=True)
class OneStepSarsaConfig(OneStepQConfig):
    """Asynchronous one-step Sarsa (Algorithm S1 with the on-policy target)."""


@dataclass(frozen=True)
class NStepQConfig(QConfig):
    """Asynchronous n-step Q-learning (Algorithm S2)."""

    t_max: int = 5

    def __post_init__(self):
        super().__post_init__()
        _positive_int(self, "t_max")


CONFIGS = {"one_step_q": OneStepQConfig, "one_step_sarsa": OneStepSarsaConfig,
           "n_step_q": NStepQConfig, "a3c": A3CConfig, "a2c": A2CConfig, "acer": ACERConfig}


def config_for(algo: str) -> type:
    """The config class of an algorithm name, or a ValueError listing the known ones."""
    if not isinstance(algo, str) or algo.lower() not in CONFIGS:
        raise ValueError(f"unknown algorithm {algo!r}; available: {sorted(CONFIGS)}")
    return CONFIGS[algo.lower()]


__all__ = ["A2CConfig", "ACERConfig", "AsyncConfig", "A3CConfig", "Config", "CONFIGS", "NStepQConfig",
           "OneStepQConfig", "OneStepSarsaConfig", "QConfig", "config_for"]
