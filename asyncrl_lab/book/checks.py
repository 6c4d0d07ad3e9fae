"""Automatic checks for the book's coding exercises (the classroom edition).

Each check calls the student's function on hidden cases and compares what comes back with the
package's own tested function, the reference answer. On the first disagreement it raises
`CheckFailed`, whose message names the case's input, what was expected and what came back (or
the exception the student's code raised); when every case agrees it prints one line and returns
a `CheckResult`.

    status "pass"   every hidden case agrees with the reference
           "fail"   a case came back wrong: a wrong value, shape or type, or None
           "error"  the student's code raised (a stub's NotImplementedError included)

In a Jupyter kernel the line is a display output that also carries the MIME type `CHECK_MIME`,
{"check": name, "status": ..., "message": ...}: `python -m asyncrl_lab grade` reads a
submission's results from its executed notebook through it.
"""
from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..history import History
from ..losses import actor_critic_loss
from ..nets import Moments, RecurrentActorCritic, merge_moments
from ..optim import SharedRMSprop
from ..returns import (batched_n_step_returns, bootstrap_value, n_step_returns,
                       q_learning_target, retrace_targets, sarsa_target)
from .analysis import autocorrelation

CHECK_MIME = "application/vnd.asyncrl-check+json"
STATUSES = ("pass", "fail", "error")
RTOL, ATOL = 1e-4, 1e-5  # how close a returned value must be to the reference's


class CheckFailed(AssertionError):
    """A check's verdict against the student's function: `status` is "fail" or "error", `check`
    the check's name, and the message says what is wrong."""

    def __init__(self, message: str, status: str = "fail", check: str = ""):
        super().__init__(message)
        self.status, self.check = status, check


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str
    message: str


def _emit(check: str, status: str, message: str):
    """The check's one line; in a kernel, a display output that also holds the grader's record."""
    line = (f"✓ {check}: {message}" if status == "pass"
            else f"✗ {check}: {status} (the error below says what is wrong)")
    ipython = sys.modules.get("IPython")  # never imported here: loaded only if we run inside it
    shell = ipython.get_ipython() if ipython is not None else None
    if getattr(shell, "kernel", None) is None:
        print(line)
        return
    from IPython.display import display

    display({CHECK_MIME: {"check": check, "status": status, "message": message},
             "text/plain": line}, raw=True)


def _checked(check: str, run) -> CheckResult:
    """Run a check's cases (`run()` returns the success summary) and report the verdict."""
    try:
        summary = run()
    except CheckFailed as failed:
        failed.check = check
        _emit(check, failed.status, str(failed))
        raise
    _emit(check, "pass", summary)
    return CheckResult(check, "pass", summary)


def _require_function(fn, check: str):
    if not callable(fn):
        raise CheckFailed(f"check_{check} takes your function itself, e.g. check_{check}(my_fn); "
                          f"got {type(fn).__name__} {fn!r:.80}", status="error")


def _call(fn, call: str, *args, **kwargs):
    """The student's function on one case; its exception becomes the check's "error" verdict."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # anything the student's code raises is the verdict, not a crash
        hint = (" (the exercise's stub: replace `raise NotImplementedError` with your code)"
                if isinstance(err, NotImplementedError) else "")
        error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise CheckFailed(f"{call}\n  raised {error}{hint}", status="error") from err


def _fmt(a) -> str:
    a = np.asarray(a)
    text = np.array2string(a, separator=", ", threshold=12, edgeitems=3, max_line_width=100,
                           formatter={"float_kind": lambda x: repr(round(float(x), 4))})
    text = " ".join(text.split())  # one line: the rows of a matrix side by side
    return text if a.size <= 12 else f"{text} ({'x'.join(map(str, a.shape))} values)"


def _compare(call: str, what: str, expected: np.ndarray, got: np.ndarray, hint: str = ""):
    """Raise "fail" naming the first element where `got` differs from `expected`."""
    if got.shape != expected.shape:
        raise CheckFailed(f"{call}\n  {what}: expected shape {expected.shape}, got shape "
                          f"{got.shape}\n  expected {_fmt(expected)}\n  got      {_fmt(got)}")
    close = np.isclose(got, expected, rtol=RTOL, atol=ATOL)
    if close.all():
        return
    message = (f"{call}\n  {what}: expected {_fmt(expected)}\n  {' ' * (len(what) + 2)}"
               f"got      {_fmt(got)}")
    if got.ndim:
        i = tuple(int(j) for j in np.unravel_index(np.flatnonzero(~close)[0], got.shape))
        message += (f"\n  first difference at index {i[0] if len(i) == 1 else i}: expected "
                    f"{float(expected[i]):.6g}, got {float(got[i]):.6g}")
    raise CheckFailed(message + hint)


# --- functions of arrays: the checks of the value computations --------------------------------

def _as_numbers(call: str, name: str, got, expected: np.ndarray) -> np.ndarray:
    if got is None:
        raise CheckFailed(f"{call}\n  returned None for {name}; expected {_fmt(expected)} (did "
                          "you forget `return`?)")
    try:
        return np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor that needs .detach()
        raise CheckFailed(f"{call}\n  returned {type(got).__name__} {got!r:.80} for {name}, not "
                          f"numbers; expected {_fmt(expected)}") from None


def _agrees(check: str, fn, reference, reference_name: str, cases, outputs=("returns",)) -> str:
    """Compare `fn` with `reference` on each case (what it covers, its arguments by name): `fn`
    gets copies of the arguments in order, so that changing them in place changes nothing, and
    returns what `reference` returns (a tuple when there are several `outputs`)."""
    _require_function(fn, check)
    for what, args in cases:
        expected = reference(**copy.deepcopy(args))
        expected = [np.asarray(e, dtype=np.float64)
                    for e in (expected if len(outputs) > 1 else (expected,))]
        call = (f"{check}({', '.join(f'{name}={_fmt(value)}' for name, value in args.items())})"
                f"   [hidden case: {what}]")
        got = _call(fn, call, *copy.deepcopy(list(args.values())))
        if len(outputs) > 1:
            if not isinstance(got, (tuple, list)) or len(got) != len(outputs):
                raise CheckFailed(f"{call}\n  returned {type(got).__name__} {got!r:.80}; "
                                  f"expected a tuple of {len(outputs)}: ({', '.join(outputs)})")
        else:
            got = (got,)
        for name, e, g in zip(outputs, expected, got):
            _compare(call, name, e, _as_numbers(call, name, g, e))
    return f"{len(cases)} hidden cases agree with {reference_name}"


def _values_check(name: str, reference, cases, doc: str, outputs=("returns",),
                  reference_name: str = ""):
    """`check_<name>(fn)`: `fn` against `reference` on `cases` (see `_agrees`); the reference is
    named in the verdict by its module and name unless `reference_name` says otherwise."""
    reference_name = reference_name or f"{reference.__module__}.{reference.__name__}"

    def check(fn) -> CheckResult:
        return _checked(name, lambda: _agrees(name, fn, reference, reference_name, cases,
                                              outputs))
    check.__name__ = check.__qualname__ = f"check_{name}"
    check.__doc__, check.cases = doc, len(cases)
    return check


_RNG = np.random.default_rng(21)


def _ar1(n_actors: int, steps: int, features: int, kappa: float, offsets=0.0) -> np.ndarray:
    """Streams x_t = kappa x_{t-1} + noise, one per actor, shifted by `offsets` per actor."""
    x = np.zeros((n_actors, steps, features))
    x[:, 0] = _RNG.normal(size=(n_actors, features))
    for t in range(1, steps):
        x[:, t] = kappa * x[:, t - 1] + _RNG.normal(size=(n_actors, features))
    return (x + np.reshape(offsets, (-1, 1, 1))).round(3)


_AUTOCORRELATION_CASES = [
    ("one actor, one feature, six steps", dict(streams=[[[1.0], [2.0], [3.0], [2.0], [1.0],
                                                         [0.0]]], max_lag=2)),
    ("max_lag 0: lag 0 is 1", dict(streams=_ar1(2, 10, 2, 0.5), max_lag=0)),
    ("two actors whose means differ: centre on the mean over all actors",
     dict(streams=_ar1(2, 50, 1, 0.3, offsets=[3.0, -3.0]), max_lag=4)),
    ("4 actors, 200 steps, 3 features of an AR(1) process",
     dict(streams=_ar1(4, 200, 3, 0.9), max_lag=10)),
    ("lags as long as half the stream", dict(streams=_ar1(3, 12, 2, -0.5), max_lag=6)),
]


check_autocorrelation = _values_check(
    "autocorrelation", autocorrelation, _AUTOCORRELATION_CASES,
    """Check `fn(streams, max_lag) -> kappa` (streams of shape (actors, steps, features); kappa of
    shape (max_lag + 1, features)) against `asyncrl_lab.book.analysis.autocorrelation`.""",
    outputs=("kappa",))


def _rmsprop_step(theta, grad, square_avg, lr, omega, zeta):
    """One step of the package's SharedRMSprop on a single parameter tensor."""
    param = torch.tensor(theta, dtype=torch.float64)
    optimizer = SharedRMSprop([param], lr=lr, alpha=omega, eps=zeta)
    optimizer.state["square_avg"][0].copy_(torch.tensor(square_avg, dtype=torch.float64))
    optimizer.step([torch.tensor(grad, dtype=torch.float64)])
    return param.numpy(), optimizer.state["square_avg"][0].numpy()


_RMSPROP_CASES = [
    ("one parameter, fresh statistics", dict(theta=[1.0], grad=[0.5], square_avg=[0.0], lr=0.1,
                                             omega=0.99, zeta=0.1)),
    ("omega = 0: the statistics are the last squared gradient",
     dict(theta=[0.5, -0.5], grad=[2.0, -1.0], square_avg=[1.0, 4.0], lr=0.01, omega=0.0,
          zeta=0.01)),
    ("a zero gradient: theta stays, the statistics decay",
     dict(theta=[1.0, 2.0, 3.0], grad=[0.0, 0.0, 0.0], square_avg=[0.5, 1.0, 2.0], lr=0.1,
          omega=0.9, zeta=0.1)),
    ("tiny gradients: zeta keeps the step small",
     dict(theta=[0.0, 0.0], grad=[1e-4, -1e-3], square_avg=[0.0, 0.0], lr=7e-4, omega=0.99,
          zeta=0.1)),
    ("a 3x4 weight matrix with accumulated statistics",
     dict(theta=_RNG.normal(size=(3, 4)).round(3), grad=_RNG.normal(size=(3, 4)).round(3),
          square_avg=_RNG.uniform(0, 2, size=(3, 4)).round(3), lr=7e-4, omega=0.99, zeta=0.1)),
]


check_rmsprop_step = _values_check(
    "rmsprop_step", _rmsprop_step, _RMSPROP_CASES,
    """Check `fn(theta, grad, square_avg, lr, omega, zeta) -> (theta, square_avg)`, one step of
    shared RMSProp, against `asyncrl_lab.optim.SharedRMSprop`.""",
    outputs=("theta", "square_avg"), reference_name="asyncrl_lab.optim.SharedRMSprop")


_ONE_STEP_CASES = [
    ("the greedy action taken next", dict(reward=1.0, terminated=False,
                                          next_q_values=[2.0, 6.0, 4.0], next_action=1,
                                          gamma=0.5)),
    ("an exploratory action taken next", dict(reward=1.0, terminated=False,
                                              next_q_values=[2.0, 6.0, 4.0], next_action=2,
                                              gamma=0.5)),
    ("a terminal state: no bootstrap", dict(reward=-1.0, terminated=True,
                                            next_q_values=[3.0, 5.0], next_action=0, gamma=0.99)),
    ("negative action values", dict(reward=0.5, terminated=False,
                                    next_q_values=[-3.0, -1.5, -2.0, -7.0], next_action=3,
                                    gamma=0.99)),
    ("gamma = 1, six actions, the largest last",
     dict(reward=2.0, terminated=False, next_q_values=[0.1, 0.2, 0.3, 0.4, 0.5, 0.9],
          next_action=0, gamma=1.0)),
]


check_q_learning_target = _values_check(
    "q_learning_target", q_learning_target, _ONE_STEP_CASES,
    """Check `fn(reward, terminated, next_q_values, next_action, gamma) -> y`, one-step
    Q-learning's target, against `asyncrl_lab.returns.q_learning_target`.""", outputs=("y",))


check_sarsa_target = _values_check(
    "sarsa_target", sarsa_target, _ONE_STEP_CASES,
    """Check `fn(reward, terminated, next_q_values, next_action, gamma) -> y`, one-step Sarsa's
    target, against `asyncrl_lab.returns.sarsa_target`.""", outputs=("y",))


def _n_step_case(what, rewards, terminated, last_value, gamma):
    # the bootstrap the student's function gets: 0 after a terminal state, else V(s_{t+k})
    return what, dict(rewards=list(rewards), bootstrap=bootstrap_value(terminated, last_value),
                      gamma=gamma)


_N_STEP_CASES = [
    _n_step_case("a single step", [1.0], False, 2.0, 0.9),
    _n_step_case("a terminal state: the bootstrap is 0", [1.0, 0.0, 2.0], True, 5.0, 0.9),
    _n_step_case("gamma = 1: undiscounted sums", [1.0, -1.0, 0.5, 2.0], False, 3.0, 1.0),
    _n_step_case("cut mid-episode: bootstrap from V(s_{t+k})", [0.0, 0.0, 1.0, 0.0, 0.0], False,
                 -1.5, 0.99),
    _n_step_case("negative rewards, small gamma", [-2.0, 0.5, -1.0, 3.0, 0.0, -0.5], False, 4.0,
                 0.5),
    _n_step_case("a long rollout (200 steps)", _RNG.normal(size=200).round(2), False, 10.0, 0.99),
    _n_step_case("a long rollout ending in a terminal state (500 steps)",
                 _RNG.normal(size=500).round(2), True, 7.0, 0.95),
]


check_n_step_returns = _values_check(
    "n_step_returns", n_step_returns, _N_STEP_CASES,
    """Check `fn(rewards, bootstrap, gamma) -> returns` (a list of k rewards, the bootstrap value
    R_k, the discount) against `asyncrl_lab.returns.n_step_returns` on hidden rollouts.""")


def _batch_case(what, t_max, n_envs, ends, gamma):
    """A batch of rollouts; `ends` maps (t, env) to the value the chain restarts from there."""
    dones, end_values = np.zeros((t_max, n_envs), dtype=bool), np.zeros((t_max, n_envs))
    for (t, env), value in ends.items():
        dones[t, env], end_values[t, env] = True, value
    return what, dict(rewards=_RNG.normal(size=(t_max, n_envs)).round(2), dones=dones,
                      end_values=end_values, last_values=_RNG.normal(size=n_envs).round(2) * 5,
                      gamma=gamma)


_BATCHED_CASES = [
    _batch_case("one env, no episode ends", 4, 1, {}, 0.9),
    _batch_case("an episode terminates mid-rollout: the chain restarts from 0", 5, 1,
                {(2, 0): 0.0}, 0.9),
    _batch_case("an episode truncated mid-rollout: restart from V of its last state", 5, 1,
                {(1, 0): 3.5}, 0.99),
    _batch_case("an episode ends at the last step: last_values do not enter", 3, 2,
                {(2, 1): 0.0}, 0.9),
    _batch_case("8 envs, episodes ending at different steps", 5, 8,
                {(0, 1): 0.0, (3, 1): 2.0, (1, 4): 0.0, (4, 6): -1.0, (2, 7): 0.0}, 0.99),
    _batch_case("two episode ends in one env", 6, 2, {(1, 0): 0.0, (4, 0): 0.0}, 0.5),
]


check_batched_returns = _values_check(
    "batched_returns", batched_n_step_returns, _BATCHED_CASES,
    """Check `fn(rewards, dones, end_values, last_values, gamma) -> returns` (arrays of shape
    (t_max, n_envs), last_values of shape (n_envs,)) against
    `asyncrl_lab.returns.batched_n_step_returns`.""")


def _segment_case(what, k, gamma, bootstrap, rhos=None, q_equals_v=False):
    q_taken = _RNG.normal(size=k).round(2) * 3
    values = q_taken.copy() if q_equals_v else _RNG.normal(size=k).round(2) * 3
    rhos = np.minimum(1.0, _RNG.uniform(0.0, 2.0, size=k)).round(3) if rhos is None else rhos
    return what, dict(rewards=_RNG.normal(size=k).round(2), q_taken=q_taken, values=values,
                      truncated_rhos=np.broadcast_to(rhos, (k,)).astype(float),
                      bootstrap=bootstrap, gamma=gamma)


_RETRACE_CASES = [
    ("two steps", dict(rewards=[1.0, 1.0], q_taken=[2.0, 3.0], values=[2.5, 4.0],
                       truncated_rhos=[1.0, 0.5], bootstrap=5.0, gamma=0.9)),
    _segment_case("rho_bar = 0: one-step targets r_i + gamma V(x_{i+1})", 5, 0.99, 2.0, rhos=0.0),
    _segment_case("rho_bar = 1 and Q = V: the n-step returns", 5, 0.9, -1.0, rhos=1.0,
                  q_equals_v=True),
    _segment_case("a segment ending in a terminal state: the bootstrap is 0", 6, 0.99, 0.0),
    _segment_case("a 20-step segment, importance weights in [0, 1]", 20, 0.99, 4.0),
]


check_retrace_targets = _values_check(
    "retrace_targets", retrace_targets, _RETRACE_CASES,
    """Check `fn(rewards, q_taken, values, truncated_rhos, bootstrap, gamma) -> targets` (one
    replayed segment) against `asyncrl_lab.returns.retrace_targets`.""", outputs=("targets",))


# --- the claims' aggregate ---------------------------------------------------------------------

def _rliable_iqm(scores):
    from rliable import metrics

    return metrics.aggregate_iqm(np.asarray(scores, dtype=np.float64))


_IQM_CASES = [
    ("8 runs: the mean of the middle 4", dict(scores=np.array([9.0, 1.0, 4.0, 7.0, 3.0, 8.0, 30.0,
                                                               2.0]))),
    ("5 runs: a quarter of 5 is cut down to 1 run at each end", dict(scores=np.array(
        [500.0, 20.0, 480.0, 475.0, 9.0]))),
    ("12 runs with ties and one wild run", dict(scores=np.array(
        [0.5, 0.5, 0.5, 0.9, 0.1, 0.5, 1.0, 0.0, 0.7, 0.5, 0.3, 80.0]))),
    ("3 runs: none is cut", dict(scores=np.array([0.2, 0.9, 0.4]))),
    ("20 runs, unsorted", dict(scores=_RNG.uniform(0, 500, size=20).round(1))),
]


check_iqm = _values_check(
    "iqm", _rliable_iqm, _IQM_CASES,
    """Check `fn(scores) -> iqm` (one score per run) against rliable's
    `metrics.aggregate_iqm`.""", outputs=("iqm",), reference_name="rliable.metrics.aggregate_iqm")


# --- scaling out: the parameter server's merge of observation statistics ------------------------

def _merged(count_a, mean_a, var_a, count_b, mean_b, var_b):
    merged = merge_moments(Moments(count_a, mean_a, var_a), Moments(count_b, mean_b, var_b))
    return merged.count, merged.mean, merged.var


def _moments_case(what: str, a, b) -> tuple:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (what, dict(count_a=float(len(a)), mean_a=a.mean(0) if len(a) else np.zeros(a.shape[1:]),
                       var_a=a.var(0) if len(a) else np.ones(a.shape[1:]),
                       count_b=float(len(b)), mean_b=b.mean(0), var_b=b.var(0)))


_MOMENTS_CASES = [
    _moments_case("one number each: 1 and 3", [[1.0]], [[3.0]]),
    _moments_case("two samples of 4 numbers, unequal sizes", _RNG.normal(2, 1, (30, 4)).round(3),
                  _RNG.normal(-1, 3, (5, 4)).round(3)),
    _moments_case("a new normalizer (count 0, variance 1) meets its first batch",
                  np.zeros((0, 3)), _RNG.normal(0, 2, (8, 3)).round(3)),
    _moments_case("equal means: the variances average, weighted by count",
                  [[1.0, 2.0], [3.0, 2.0]], [[0.0, 2.0], [4.0, 2.0], [2.0, 2.0], [2.0, 2.0]]),
]


check_merge_moments = _values_check(
    "merge_moments", _merged, _MOMENTS_CASES,
    """Check `fn(count_a, mean_a, var_a, count_b, mean_b, var_b) -> (count, mean, var)` (the
    moments of two samples together) against `asyncrl_lab.nets.merge_moments`.""",
    outputs=("count", "mean", "var"), reference_name="asyncrl_lab.nets.merge_moments")


# --- the actor-critic loss -----------------------------------------------------------------------

# (what it covers, steps k, actions, entropy_beta, value_loss_coef)
_LOSS_CASES = [
    ("a single step", 1, 2, 0.01, 0.5),
    ("no entropy bonus, value coefficient 1", 5, 3, 0.0, 1.0),
    ("a large entropy bonus", 5, 4, 0.5, 0.25),
    ("no value loss: the values get no gradient at all", 4, 2, 0.01, 0.0),
    ("a long rollout (20 steps, 6 actions)", 20, 6, 0.01, 0.5),
]


def _loss_inputs(k: int, n_actions: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(k, n_actions, generator=g), torch.randn(k, generator=g),
            torch.randint(n_actions, (k,), generator=g), 2 * torch.randn(k, generator=g))


def _leaves(logits, values):
    return logits.clone().requires_grad_(), values.clone().requires_grad_()


def _value_and_grads(loss, logits, values):
    """The loss's value and its gradients with respect to the logits and the values (zeros for
    one the loss does not depend on)."""
    grads = torch.autograd.grad(loss, (logits, values), allow_unused=True)
    return loss.detach().numpy(), [np.zeros(tuple(x.shape)) if g is None else g.numpy()
                                   for g, x in zip(grads, (logits, values))]


def _student_loss(fn, call, logits, values, actions, returns, beta, coef):
    logits, values = _leaves(logits, values)
    loss = _call(fn, call, logits, values, actions.clone(), returns.clone(), beta, coef)
    if not isinstance(loss, torch.Tensor):
        raise CheckFailed(f"{call}\n  returned {type(loss).__name__} {loss!r:.80}; expected a "
                          "scalar torch.Tensor (a tensor, so that autograd can differentiate it)")
    if loss.dim() != 0:
        raise CheckFailed(f"{call}\n  returned a tensor of shape {tuple(loss.shape)}; expected a "
                          "scalar (shape ()): the loss sums over the rollout's steps")
    if not loss.requires_grad:
        raise CheckFailed(f"{call}\n  returned a loss that autograd cannot differentiate with "
                          "respect to logits and values (was it computed with .item(), "
                          ".detach() or numpy?)")
    return _call(_value_and_grads, f"{call}\n  then differentiating the loss", loss, logits,
                 values)


def check_actor_critic_loss(fn) -> CheckResult:
    """Check `fn(logits, values, actions, returns, entropy_beta, value_loss_coef) -> loss` against
    `asyncrl_lab.losses.actor_critic_loss` on hidden rollouts: the loss's value, and through
    autograd its gradients, so that the advantage must be held constant in the policy term (the
    values' gradient comes from the value loss alone)."""
    def run():
        _require_function(fn, "actor_critic_loss")
        for seed, (what, k, n_actions, beta, coef) in enumerate(_LOSS_CASES):
            logits, values, actions, returns = _loss_inputs(k, n_actions, seed)
            call = (f"actor_critic_loss(logits={_fmt(logits)}, values={_fmt(values)}, "
                    f"actions={_fmt(actions)}, returns={_fmt(returns)}, entropy_beta={beta}, "
                    f"value_loss_coef={coef})   [hidden case: {what}]")
            ref_logits, ref_values = _leaves(logits, values)
            expected, (d_logits, d_values) = _value_and_grads(actor_critic_loss(
                ref_logits, ref_values, actions, returns, beta, coef), ref_logits, ref_values)
            got, (g_logits, g_values) = _student_loss(fn, call, logits, values, actions, returns,
                                                      beta, coef)
            _compare(call, "loss", expected, got)
            _compare(call, "d loss / d values", d_values, g_values,
                     "\n  the loss is right but the values' gradient is not: it must come from "
                     "the value loss alone, so hold the advantage constant in the policy term "
                     "(use advantages.detach() there)")
            _compare(call, "d loss / d logits", d_logits, g_logits)
        return (f"{len(_LOSS_CASES)} hidden cases agree with asyncrl_lab.losses.actor_critic_loss"
                " (the loss and its gradients)")
    return _checked("actor_critic_loss", run)


check_actor_critic_loss.cases = len(_LOSS_CASES)


# --- the recurrent pass ----------------------------------------------------------------------

# (what it covers, steps T, envs B, the (step, env) pairs where a new episode begins)
_UNROLL_CASES = [
    ("one env, one step", 1, 1, ()),
    ("no episode ends: the state carried through every step", 5, 2, ()),
    ("an episode begins mid-rollout in one env", 6, 3, ((2, 0),)),
    ("episodes begin at the first step and twice in one env", 5, 2, ((0, 1), (1, 0), (4, 0))),
]


def _unroll_inputs(steps: int, envs: int, starts, seed: int):
    torch.manual_seed(seed)
    model = RecurrentActorCritic((3,), 2, (8,), lstm_cells=6)
    g = torch.Generator().manual_seed(seed)
    state = (torch.randn(envs, 6, generator=g), torch.randn(envs, 6, generator=g))
    resets = torch.zeros(steps, envs, dtype=torch.bool)
    for t, e in starts:
        resets[t, e] = True
    return model, torch.randn(steps, envs, 3, generator=g), state, resets


def _outputs(call: str, got) -> list:
    if (not isinstance(got, (tuple, list)) or len(got) != 3
            or not isinstance(got[2], (tuple, list)) or len(got[2]) != 2):
        raise CheckFailed(f"{call}\n  returned {type(got).__name__} {got!r:.80}; expected "
                          "(logits, values, (h, c))")
    return [got[0], got[1], *got[2]]


def check_lstm_unroll(fn) -> CheckResult:
    """Check `fn(model, obs, state, resets) -> (logits, values, (h, c))` against
    `RecurrentActorCritic.unroll` on hidden rollouts of a small network: its outputs at every
    step and the state after the last, where episodes begin mid-rollout too."""
    def run():
        _require_function(fn, "lstm_unroll")
        for seed, (what, steps, envs, starts) in enumerate(_UNROLL_CASES):
            model, obs, state, resets = _unroll_inputs(steps, envs, starts, seed)
            call = (f"lstm_unroll(model=RecurrentActorCritic((3,), 2, (8,), lstm_cells=6), "
                    f"obs={_fmt(obs)}, state=(h {_fmt(state[0])}, c {_fmt(state[1])}), "
                    f"resets={_fmt(resets)})   [hidden case: {what}]")
            with torch.no_grad():  # values only: the outputs convert to numbers as they are
                logits, values, (h, c) = model.unroll(obs, state, resets)
                got = _outputs(call, _call(fn, call, copy.deepcopy(model), obs.clone(),
                                           tuple(x.clone() for x in state), resets.clone()))
            for name, expected, g in zip(("logits", "values", "h after the last step",
                                          "c after the last step"), (logits, values, h, c), got):
                expected = expected.numpy().astype(np.float64)
                _compare(call, name, expected, _as_numbers(call, name, g, expected))
        return (f"{len(_UNROLL_CASES)} hidden cases agree with "
                "asyncrl_lab.nets.RecurrentActorCritic.unroll")
    return _checked("lstm_unroll", run)


check_lstm_unroll.cases = len(_UNROLL_CASES)


# --- learning ------------------------------------------------------------------------------------

# The package's A3C (2 workers, the tuned CartPole preset, its learning rate annealed over this
# budget) reached a best rolling-100 mean of 490-500 within LEARN_STEPS in seeds 0-4, in about
# 5 s on 2 cores (and 244-318 within half the budget): the threshold leaves a wide margin for
# the nondeterminism of asynchronous updates and for a student's slower code.
# tests/test_learning.py asks 400 of a 250k-step budget.
LEARN_ENV, LEARN_SEED, LEARN_STEPS, LEARN_THRESHOLD = "CartPole-v1", 0, 100_000, 200.0
LEARN_SEEN = "490-500"
LEARN_WINDOW = 100


def check_learns(train_fn) -> CheckResult:
    """Check that `train_fn(env, seed, total_steps)`, returning the Run that `asyncrl_lab.train`
    returns, learns CartPole-v1: within LEARN_STEPS global steps (seed LEARN_SEED) the mean return
    of some LEARN_WINDOW consecutive training episodes reaches LEARN_THRESHOLD."""
    def run():
        _require_function(train_fn, "learns")
        call = f"train_fn(env={LEARN_ENV!r}, seed={LEARN_SEED}, total_steps={LEARN_STEPS})"
        result = _call(train_fn, call, env=LEARN_ENV, seed=LEARN_SEED, total_steps=LEARN_STEPS)
        history = getattr(result, "history", None)
        if not isinstance(history, History):
            raise CheckFailed(f"{call}\n  returned {type(result).__name__} {result!r:.80}; "
                              "expected the Run that asyncrl_lab.train returns")
        if len(history) < LEARN_WINDOW:
            raise CheckFailed(f"{call}\n  played {len(history)} episodes; expected at least "
                              f"{LEARN_WINDOW} to measure a mean return over {LEARN_WINDOW}")
        best = float(history.rolling_mean(LEARN_WINDOW)[LEARN_WINDOW - 1:].max())
        if not best >= LEARN_THRESHOLD:
            raise CheckFailed(f"{call}\n  best mean return over {LEARN_WINDOW} consecutive "
                              f"episodes: expected at least {LEARN_THRESHOLD:g}, got {best:.1f} "
                              f"(the package's A3C reaches {LEARN_SEEN} with this budget)")
        return (f"best mean return over {LEARN_WINDOW} episodes {best:.1f} >= "
                f"{LEARN_THRESHOLD:g} within {LEARN_STEPS:,} steps")
    return _checked("learns", run)


check_learns.cases = 1  # one training run


@dataclass(frozen=True)
class Check:
    """A check as the instructor's page lists it."""

    function: Callable
    chapter: str  # the page (under book/) whose autograded exercise calls it
    verifies: str

    @property
    def name(self) -> str:
        return self.function.__name__.removeprefix("check_")

    @property
    def cases(self) -> int:
        """Hidden cases, or training runs for a learning check."""
        return self.function.cases


CHECKS = {check.name: check for check in [
    Check(check_learns, "preface",
          f"trains the student's function on {LEARN_ENV} (seed {LEARN_SEED}, {LEARN_STEPS:,} "
          f"steps): some {LEARN_WINDOW} consecutive episodes reach a mean return of "
          f"{LEARN_THRESHOLD:g}"),
    Check(check_autocorrelation, "dqn_to_parallel",
          "the lag-0 to max_lag autocorrelation of each feature, pooled over actors"),
    Check(check_rmsprop_step, "parallel_pytorch",
          "one step of shared RMSProp: the parameters and the statistics"),
    Check(check_q_learning_target, "one_step_q",
          "one-step Q-learning's target, terminal states included"),
    Check(check_sarsa_target, "one_step_q", "one-step Sarsa's target, from the action taken next"),
    Check(check_n_step_returns, "n_step_q",
          "the n-step returns of a rollout from its bootstrap value"),
    Check(check_actor_critic_loss, "a3c",
          "A3C's loss and its gradients with respect to the logits and the values"),
    Check(check_lstm_unroll, "a3c_lstm",
          "the LSTM's pass over a rollout from a stored state, zeroed where episodes begin"),
    Check(check_batched_returns, "a2c",
          "the returns of a batch of rollouts with episode ends inside"),
    Check(check_retrace_targets, "acer", "the Retrace targets of a replayed segment"),
    Check(check_iqm, "claims", "the interquartile mean of runs' scores, as rliable computes it"),
    Check(check_merge_moments, "scaling_out",
          "the parameter server's merge of two samples' means and variances"),
]}
"""Every check by name, in the book's order; the grader finds a notebook's calls through it."""

CHECK_CALL = re.compile(r"\bcheck_(" + "|".join(CHECKS) + r")\s*\(")
"""A call of one of the checks in a cell's code; group 1 is the check's name."""
