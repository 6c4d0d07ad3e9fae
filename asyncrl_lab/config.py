"""One dataclass per algorithm, validated on construction.

Each field is declared once with `option(default, doc, check)`: its meaning, one sentence, is the
CLI's `--help` text and the book's reference page (`describe`); its check runs on construction,
so a bad value raises a ValueError that names the field, the value and what is allowed, before any
process starts. Defaults follow the paper (REFERENCE.md) where it gives one; fields marked (impl)
are common implementation defaults. The tuned settings per env live in `presets.py`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

START_METHODS = ("spawn", "fork", "forkserver")
BACKENDS = ("processes", "ray")
OPTIMIZERS = ("rmsprop", "adam", "momentum")


class Check(NamedTuple):
    """A test a field's value must pass, and the words for what it allows."""

    ok: Callable[[object], bool]
    allowed: str


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(low: int) -> Check:
    return Check(lambda v: _is_int(v) and v >= low, f"an integer >= {low}")


def number(ok: Callable[[float], bool], allowed: str) -> Check:
    return Check(lambda v: _is_number(v) and ok(v), allowed)


def one_of(choices: tuple) -> Check:
    return Check(lambda v: v in choices, f"one of {choices}")


FLAG = Check(lambda v: isinstance(v, bool), "True or False")
POSITIVE = number(lambda v: v > 0, "a positive number")
NON_NEGATIVE = number(lambda v: v >= 0, "a number >= 0")
SIZES = Check(lambda v: isinstance(v, tuple) and len(v) > 0 and all(_is_int(h) and h >= 1 for h in v),
              "a non-empty tuple of positive integers")
PROBABILITIES = Check(lambda v: isinstance(v, tuple) and len(v) > 0 and all(
    _is_number(p) and 0.0 <= p <= 1.0 for p in v), "a non-empty tuple of numbers in [0, 1]")
ADDRESS = Check(lambda v: isinstance(v, str) and (v == "" or ":" in v),
                "empty or a running Ray cluster's 'HOST:PORT'")
ENV_ID = Check(lambda v: isinstance(v, str) and v != "",
               "a Gymnasium environment id such as 'CartPole-v1'")


def option(default, doc: str, check: Check | None = None):
    """A config field: its default, its meaning in one sentence, and the check its value must pass."""
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check})


def with_default(parent: type, name: str, default):
    """The field `name` of `parent` with another default: its meaning and check stay the same."""
    inherited = parent.__dataclass_fields__[name].metadata
    return dataclasses.field(default=default, metadata=inherited)


def _fail(cls_name: str, name: str, value, allowed: str):
    raise ValueError(f"{cls_name}.{name}={value!r} is not allowed: {name} must be {allowed}")


@dataclass(frozen=True)
class Config:
    """Settings shared by every method: the environment, the budget, the optimizer, the network."""

    env: str = option("CartPole-v1", "Gymnasium environment id; ALE/...-v5 ids get the paper's "
                      "Atari preprocessing.", ENV_ID)
    total_steps: int = option(200_000, "Global steps T to train for, summed over all actors "
                              "(on Atari one step is 4 frames).", integer(1))
    seed: int = option(0, "Seed of the run; each worker's seed is derived from it.", integer(0))
    gamma: float = option(0.99, "Discount factor of the returns.",
                          number(lambda g: 0.0 < g <= 1.0, "in (0, 1]"))
    lr: float = option(7e-4, "Learning rate at the start of training.", POSITIVE)
    lr_anneal: bool = option(True, "Anneal the learning rate linearly to 0 at total_steps, as "
                             "the paper does.", FLAG)
    optimizer: str = option("rmsprop", "Optimizer of the shared parameters.", one_of(OPTIMIZERS))
    rmsprop_alpha: float = option(0.99, "RMSProp's decay of its mean of squared gradients.",
                                  number(lambda v: 0.0 < v < 1.0, "in (0, 1)"))
    momentum: float = option(0.9, "Momentum SGD's decay alpha of its average of gradients, m <- "
                             "alpha m + (1 - alpha) grad (the paper's form; its value is not given "
                             "there: 0.9, the usual one).",
                             number(lambda v: 0.0 <= v < 1.0, "in [0, 1)"))
    optimizer_eps: float = option(0.1, "Added to the optimizer's denominator, outside the square "
                                  "root (impl; suits shared RMSProp; use ~1e-8 with adam).", POSITIVE)
    max_grad_norm: float = option(40.0, "Gradients are clipped to this global norm before each "
                                  "update (impl).", POSITIVE)
    hidden_sizes: tuple = option((64, 64), "Widths of the MLP trunk for vector observations "
                                 "(Atari uses the paper's conv net).", SIZES)
    sticky_actions: bool = option(False, "Atari: repeat the previous action with probability "
                                  "0.25 (ALE v5's default; the paper has none).", FLAG)
    episodic_life: bool = option(False, "Atari: a lost life ends the training episode.", FLAG)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list) and isinstance(f.default, tuple):
                value = tuple(value)  # as JSON and the CLI give it
                object.__setattr__(self, f.name, value)
            check = f.metadata.get("check")
            if check is not None and not check.ok(value):
                _fail(type(self).__name__, f.name, value, check.allowed)
        self._check()

    def _check(self):
        """Checks that involve more than one field, or more than the value itself."""
        from .envs import check_env_id  # deferred: imports gymnasium and ale_py

        check_env_id(self.env)

    @classmethod
    def describe(cls) -> list[dict]:
        """Every field: its name, type, default and meaning (the CLI's --help, the reference page)."""
        return [{"name": f.name, "type": f.type if isinstance(f.type, str) else f.type.__name__,
                 "default": f.default, "doc": f.metadata["doc"]} for f in dataclasses.fields(cls)]

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

    workers: int = option(2, "Actor-learner processes; each steps its own env.", integer(1))
    shared_optimizer_stats: bool = option(True, "Share the optimizer's statistics between workers "
                                          "(the paper's shared RMSProp); False: per worker.", FLAG)
    start_method: str = option("forkserver", "How worker processes start (multiprocessing); "
                               "forkserver imports torch once per session, spawn once per worker.",
                               one_of(START_METHODS))
    backend: str = option("processes", "Where the workers run: 'processes' on this machine, "
                          "sharing memory; 'ray': Ray actors and a parameter server, on a cluster "
                          "or a local Ray.", one_of(BACKENDS))
    ray_address: str = option("", "With backend 'ray': a running cluster's HOST:PORT; empty "
                              "starts a local Ray for the run with `workers` CPUs.", ADDRESS)

    def _check(self):
        super()._check()
        if self.ray_address and self.backend != "ray":
            raise ValueError(f"ray_address={self.ray_address!r} needs backend='ray' (the "
                             f"backend is {self.backend!r})")


def _entropy_beta():
    return option(0.01, "Weight beta of the policy's entropy bonus in the loss.", NON_NEGATIVE)


@dataclass(frozen=True)
class A3CConfig(AsyncConfig):
    """Asynchronous advantage actor-critic (Algorithm S3), feed-forward or with an LSTM."""

    t_max: int = option(5, "Steps of a rollout before each update (fewer where an episode ends).",
                        integer(1))
    entropy_beta: float = _entropy_beta()
    value_loss_coef: float = option(0.5, "Weight of the value loss beside the policy's.", POSITIVE)
    lstm_cells: int = option(0, "Cells of an LSTM layer between the trunk and the heads (the "
                             "paper's A3C LSTM: 128, 256 on Atari); 0: feed-forward.", integer(0))
    obs_norm: bool = option(False, "Normalize vector observations by their running mean and "
                            "variance in training, kept in the network (VecNormalize's, impl).",
                            FLAG)


@dataclass(frozen=True)
class ACERConfig(AsyncConfig):
    """Actor-critic with experience replay, discrete actions (Wang et al. 2017, Algorithms 1-2).

    The paper's and OpenAI Baselines' values: truncation c = 10, trust region delta = 1, average
    policy decay alpha = 0.99, replay ratio 4, segments of 20 steps, 50,000 steps of replay per
    worker and replay from 10,000, critic loss coefficient 0.5, entropy 0.01.
    """

    t_max: int = option(20, "k: the steps of one on-policy segment (fewer where an episode ends).",
                        integer(1))
    entropy_beta: float = _entropy_beta()
    q_loss_coef: float = option(0.5, "Weight of sum_i (Q_ret_i - Q(x_i, a_i))^2 / 2 in the loss.",
                                POSITIVE)
    truncation_c: float = option(10.0, "c: importance weights are truncated at c and the rest "
                                 "corrected.", POSITIVE)
    bias_correction: bool = option(True, "Keep the bias-correction term (False: an ablation).", FLAG)
    trust_region: bool = option(True, "Project the gradient onto the trust region (False: use "
                                "it as it is, an ablation).", FLAG)
    trust_region_delta: float = option(1.0, "delta: bound on the linearized KL divergence to the "
                                       "average policy.", POSITIVE)
    average_decay: float = option(0.99, "alpha: the average network moves as theta_a <- alpha "
                                  "theta_a + (1 - alpha) theta.",
                                  number(lambda v: 0.0 <= v < 1.0, "in [0, 1)"))
    replay_ratio: float = option(4.0, "r: off-policy updates per on-policy update ~ Poisson(r).",
                                 NON_NEGATIVE)
    replay_capacity: int = option(50_000, "Steps each worker's replay memory keeps, the oldest "
                                  "dropped (on Atari the default takes about 1.5 GB per worker).",
                                  integer(1))
    replay_start: int = option(10_000, "Steps a worker's memory must hold before it replays.",
                               integer(0))

    def _check(self):
        super()._check()
        if self.replay_start > self.replay_capacity:
            _fail(type(self).__name__, "replay_start", self.replay_start,
                  f"an integer from 0 to replay_capacity ({self.replay_capacity})")


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

    n_envs: int = option(16, "Environments stepped together as one vector.", integer(1))
    t_max: int = with_default(A3CConfig, "t_max", 5)
    entropy_beta: float = _entropy_beta()
    value_loss_coef: float = with_default(A3CConfig, "value_loss_coef", 0.5)
    lstm_cells: int = with_default(A3CConfig, "lstm_cells", 0)
    obs_norm: bool = with_default(A3CConfig, "obs_norm", False)
    optimizer_eps: float = with_default(Config, "optimizer_eps", 1e-5)
    max_grad_norm: float = with_default(Config, "max_grad_norm", 0.5)
    device: str = option("auto", "Where the network runs: 'auto' (CUDA when torch sees a GPU, "
                         "else CPU), 'cpu', 'cuda' or 'cuda:N'.",
                         Check(lambda v: isinstance(v, str), "a device name"))

    def _check(self):
        super()._check()
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

    epsilon_anneal_steps: int = option(1_000_000, "Steps over which epsilon falls linearly from 1 "
                                       "to the worker's final value.", integer(1))
    final_epsilons: tuple = option((0.1, 0.01, 0.5), "The final epsilons a worker draws its own "
                                   "from.", PROBABILITIES)
    final_epsilon_probs: tuple = option((0.4, 0.3, 0.3), "The probability of drawing each final "
                                        "epsilon.", PROBABILITIES)
    target_update_interval: int = option(10_000, "I_target: theta^- <- theta every this many "
                                         "global steps.", integer(1))

    def _check(self):
        super()._check()
        name = type(self).__name__
        if abs(sum(self.final_epsilon_probs) - 1.0) > 1e-6:
            _fail(name, "final_epsilon_probs", self.final_epsilon_probs, "probabilities summing to 1")
        if len(self.final_epsilon_probs) != len(self.final_epsilons):
            _fail(name, "final_epsilon_probs", self.final_epsilon_probs,
                  f"one probability per final epsilon ({len(self.final_epsilons)} of them)")


@dataclass(frozen=True)
class OneStepQConfig(QConfig):
    """Asynchronous one-step Q-learning (Algorithm S1)."""

    async_update_interval: int = option(5, "I_AsyncUpdate: steps of accumulated gradients per "
                                        "update.", integer(1))


@dataclass(frozen=True)
class OneStepSarsaConfig(OneStepQConfig):
    """Asynchronous one-step Sarsa (Algorithm S1 with the on-policy target)."""


@dataclass(frozen=True)
class NStepQConfig(QConfig):
    """Asynchronous n-step Q-learning (Algorithm S2)."""

    t_max: int = with_default(A3CConfig, "t_max", 5)


__all__ = ["A2CConfig", "ACERConfig", "AsyncConfig", "A3CConfig", "Check", "Config",
           "NStepQConfig", "OneStepQConfig", "OneStepSarsaConfig", "QConfig", "option",
           "with_default"]
