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

import sys
from dataclasses import dataclass

import numpy as np
import torch

from .history import History
from .losses import actor_critic_loss
from .returns import bootstrap_value, n_step_returns

CHECK_MIME = "application/vnd.asyncrl-check+json"
STATUSES = ("pass", "fail", "error")


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
    return text if a.size <= 12 else f"{text} ({'x'.join(map(str, a.shape))} values)"


def _compare(call: str, what: str, expected: np.ndarray, got: np.ndarray, hint: str = ""):
    """Raise "fail" naming the first element where `got` differs from `expected`."""
    if got.shape != expected.shape:
        raise CheckFailed(f"{call}\n  {what}: expected shape {expected.shape}, got shape "
                          f"{got.shape}\n  expected {_fmt(expected)}\n  got      {_fmt(got)}")
    close = np.isclose(got, expected, rtol=1e-4, atol=1e-5)
    if close.all():
        return
    message = (f"{call}\n  {what}: expected {_fmt(expected)}\n  {' ' * (len(what) + 2)}"
               f"got      {_fmt(got)}")
    if got.ndim:
        i = np.unravel_index(np.flatnonzero(~close)[0], got.shape)
        message += (f"\n  first difference at index {i[0] if len(i) == 1 else i}: expected "
                    f"{float(expected[i]):.6g}, got {float(got[i]):.6g}")
    raise CheckFailed(message + hint)


# --- n-step returns ------------------------------------------------------------------------------

_RNG = np.random.default_rng(21)
# (what it covers, rewards, terminated, V(s_{t+k}), gamma); the bootstrap the student's function
# gets is bootstrap_value(terminated, V(s_{t+k})): 0 after a terminal state
_N_STEP_CASES = [
    ("a single step", [1.0], False, 2.0, 0.9),
    ("a terminal state: the bootstrap is 0", [1.0, 0.0, 2.0], True, 5.0, 0.9),
    ("gamma = 1: undiscounted sums", [1.0, -1.0, 0.5, 2.0], False, 3.0, 1.0),
    ("cut mid-episode: bootstrap from V(s_{t+k})", [0.0, 0.0, 1.0, 0.0, 0.0], False, -1.5, 0.99),
    ("negative rewards, small gamma", [-2.0, 0.5, -1.0, 3.0, 0.0, -0.5], False, 4.0, 0.5),
    ("a long rollout (200 steps)", _RNG.normal(size=200).round(2).tolist(), False, 10.0, 0.99),
    ("a long rollout ending in a terminal state (500 steps)",
     _RNG.normal(size=500).round(2).tolist(), True, 7.0, 0.95),
]


def check_n_step_returns(fn) -> CheckResult:
    """Check `fn(rewards, bootstrap, gamma) -> returns` (a list of k rewards, the bootstrap value
    R_k, the discount) against `asyncrl_lab.returns.n_step_returns` on hidden rollouts."""
    def run():
        _require_function(fn, "n_step_returns")
        for what, rewards, terminated, last_value, gamma in _N_STEP_CASES:
            bootstrap = bootstrap_value(terminated, last_value)
            expected = n_step_returns(rewards, bootstrap, gamma)
            call = (f"n_step_returns(rewards={_fmt(rewards)}, bootstrap={bootstrap!r}, "
                    f"gamma={gamma!r})   [hidden case: {what}]")
            got = _call(fn, call, list(rewards), bootstrap, gamma)
            if got is None:
                raise CheckFailed(f"{call}\n  returned None; expected the {len(rewards)} "
                                  f"returns {_fmt(expected)} (did you forget `return`?)")
            try:
                got = np.asarray(got, dtype=np.float64)
            except (TypeError, ValueError, RuntimeError):
                raise CheckFailed(f"{call}\n  returned {type(got).__name__} {got!r:.80}, not a "
                                  f"sequence of numbers; expected {_fmt(expected)}") from None
            _compare(call, "returns", expected, got)
        return (f"{len(_N_STEP_CASES)} hidden cases agree with "
                "asyncrl_lab.returns.n_step_returns")
    return _checked("n_step_returns", run)


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


CHECKS = {"n_step_returns": check_n_step_returns, "actor_critic_loss": check_actor_critic_loss,
          "learns": check_learns}
