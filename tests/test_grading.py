"""The exercises' checks (asyncrl_lab.book.checks) and the grader for a class (asyncrl_lab.book.grading).

The checks are tested on the package's own functions (they pass), on wrong versions of them
(each fails with a message naming the input, what was expected and what came back) and on
stubs. The grader is tested on notebooks written here: a good one, the untouched stubs, and
ones that raise, loop forever, exhaust memory, kill their kernel, start processes or delete a
file of the project; each is reported and contained, and no process is left behind.
"""
import csv
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import torch
import psutil
import pytest
import torch.nn.functional as F
from nbformat.v4 import new_code_cell, new_notebook, new_output

import helpers
from asyncrl_lab.__main__ import main
from asyncrl_lab.book.analysis import autocorrelation
from asyncrl_lab.book.checks import (CHECK_MIME, CHECKS, CheckFailed, check_actor_critic_loss,
                                check_autocorrelation, check_batched_returns, check_iqm,
                                check_learns, check_lstm_unroll,
                                check_n_step_returns, check_q_learning_target,
                                check_merge_moments, check_retrace_targets, check_rmsprop_step,
                                check_sarsa_target)
from asyncrl_lab.book.grading import SUBMISSION, grade, grade_notebook, read_results
from asyncrl_lab.history import History
from asyncrl_lab.losses import actor_critic_loss
from asyncrl_lab.returns import (batched_n_step_returns, n_step_returns, q_learning_target,
                                 retrace_targets, sarsa_target)

from helpers import children_of


def failure(check, fn) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        check(fn)
    return info.value


# --- the checks ----------------------------------------------------------------------------------

def rmsprop_from_the_equation(theta, grad, square_avg, lr, omega, zeta):
    """The parallel chapter's equation, in numpy: independent of the check's use of
    SharedRMSprop, so that passing tests the check's reference too."""
    square_avg = omega * np.asarray(square_avg) + (1 - omega) * np.asarray(grad) ** 2
    return np.asarray(theta) - lr * np.asarray(grad) / (np.sqrt(square_avg) + zeta), square_avg


def lstm_step_by_step(model, obs, state, resets):
    """The recurrent pass written as the exercise asks, one step and one env at a time."""
    h, c = state
    logits, values = [], []
    for t in range(len(obs)):
        keep = (~resets[t]).float()[:, None]
        h, c = model.lstm(model.trunk(obs[t]), (h * keep, c * keep))
        logits.append(model.policy(h))
        values.append(model.value(h)[:, 0])
    return torch.stack(logits), torch.stack(values), (h, c)


def iqm_by_sorting(scores):
    """The middle half of the sorted scores, a quarter of the count (rounded down) cut at each
    end, as scipy's trim_mean does."""
    x = np.sort(scores)
    cut = len(x) // 4
    return x[cut:len(x) - cut].mean()


def moments_from_sums(count_a, mean_a, var_a, count_b, mean_b, var_b):
    """The merged moments from the samples' sums of x and of x^2, not Chan's formula: passing
    tests the check's reference too."""
    count = count_a + count_b
    total = count_a * mean_a + count_b * mean_b
    squares = count_a * (var_a + mean_a ** 2) + count_b * (var_b + mean_b ** 2)
    return count, total / count, squares / count - (total / count) ** 2


RIGHT = {check_merge_moments: moments_from_sums, check_iqm: iqm_by_sorting, check_lstm_unroll: lstm_step_by_step, check_n_step_returns: n_step_returns, check_actor_critic_loss: actor_critic_loss,
         check_autocorrelation: autocorrelation, check_rmsprop_step: rmsprop_from_the_equation,
         check_q_learning_target: q_learning_target, check_sarsa_target: sarsa_target,
         check_batched_returns: batched_n_step_returns, check_retrace_targets: retrace_targets}


def test_checks_pass_with_the_packages_functions(capsys):
    for check, fn in RIGHT.items():
        assert check(fn).status == "pass"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(RIGHT) and all(line.startswith("✓ ") for line in lines)


def test_the_merge_check_names_a_merge_that_forgets_the_means_distance():
    def pooled(count_a, mean_a, var_a, count_b, mean_b, var_b):
        count = count_a + count_b
        return (count, (count_a * mean_a + count_b * mean_b) / count,
                (count_a * var_a + count_b * var_b) / count)

    assert "var: expected [1.0]" in str(failure(check_merge_moments, pooled))


def test_every_check_is_listed_with_its_chapter_and_cases():
    assert {c.function for c in CHECKS.values()} == set(RIGHT) | {check_learns}
    for name, entry in CHECKS.items():
        assert entry.function.__name__ == f"check_{name}" and entry.cases >= 1
        assert (Path(helpers.ROOT) / "book" / f"{entry.chapter}.md").exists()


def off_by_one_discount(rewards, bootstrap, gamma):
    returns, R = [], bootstrap
    for r in reversed(rewards):
        R = gamma * (r + R)  # discounts the step's own reward too
        returns.append(R)
    return returns[::-1]


def test_n_step_returns_off_by_one_discount_names_input_expected_got():
    err = failure(check_n_step_returns, off_by_one_discount)
    assert err.status == "fail" and err.check == "n_step_returns"
    message = str(err)
    assert "n_step_returns(rewards=[1.0], bootstrap=2.0, gamma=0.9)" in message
    assert "expected [2.8]" in message and "got      [2.7]" in message


def test_n_step_returns_wrong_shape_and_type():
    assert "expected shape (1,), got shape (0,)" in str(
        failure(check_n_step_returns, lambda rewards, bootstrap, gamma: rewards[1:]))
    assert "returned str" in str(failure(check_n_step_returns, lambda *args: "returns"))


def test_n_step_returns_must_start_from_the_bootstrap():
    def no_bootstrap(rewards, bootstrap, gamma):
        return n_step_returns(rewards, 0.0, gamma)
    message = str(failure(check_n_step_returns, no_bootstrap))
    assert "bootstrap=2.0" in message and "a single step" in message


def signed_wrong(logits, values, actions, returns, entropy_beta, value_loss_coef):
    """The policy term's sign flipped: gradient descent would make bad actions likelier."""
    return actor_critic_loss(logits, values, actions, returns, entropy_beta, value_loss_coef) \
        + 2 * (F.log_softmax(logits, -1).gather(-1, actions[:, None])[:, 0]
               * (returns - values).detach()).sum()


def advantage_not_detached(logits, values, actions, returns, entropy_beta, value_loss_coef):
    log_probs = F.log_softmax(logits, -1)
    advantages = returns - values
    return (-(log_probs.gather(-1, actions[:, None])[:, 0] * advantages).sum()
            + value_loss_coef * 0.5 * advantages.pow(2).sum()
            + entropy_beta * (log_probs.exp() * log_probs).sum())


def test_actor_critic_loss_sign_error_names_input_expected_got():
    err = failure(check_actor_critic_loss, signed_wrong)
    message = str(err)
    assert err.status == "fail"
    assert message.startswith("actor_critic_loss(logits=[[") and "entropy_beta=0.01" in message
    assert "\n  loss: expected " in message and "\n        got      " in message


def test_actor_critic_loss_advantage_held_constant_through_autograd():
    """Same loss value, different gradient: only autograd tells them apart."""
    message = str(failure(check_actor_critic_loss, advantage_not_detached))
    assert "d loss / d values: expected" in message and "advantages.detach()" in message
    assert "loss: expected" not in message


def test_actor_critic_loss_must_stay_a_differentiable_scalar():
    assert "expected a scalar torch.Tensor" in str(
        failure(check_actor_critic_loss, lambda *args: actor_critic_loss(*args).item()))
    assert "autograd cannot differentiate" in str(
        failure(check_actor_critic_loss, lambda *args: actor_critic_loss(*args).detach()))
    assert "shape (1,)" in str(
        failure(check_actor_critic_loss, lambda *args: actor_critic_loss(*args).reshape(1)))


def test_sarsa_and_q_learning_targets_tell_the_next_action_apart():
    message = str(failure(check_sarsa_target, q_learning_target))
    assert "next_q_values=[2.0, 6.0, 4.0], next_action=2" in message
    assert "y: expected 3.0" in message and "got      4.0" in message
    assert "exploratory" in str(failure(check_q_learning_target, sarsa_target))


def test_autocorrelation_centred_per_actor_fails_on_the_case_that_shows_it():
    def per_actor(streams, max_lag):
        x = np.asarray(streams, dtype=float)
        x = x - x.mean(axis=1, keepdims=True)
        return autocorrelation(x, max_lag)
    message = str(failure(check_autocorrelation, per_actor))
    assert "two actors whose means differ" in message and "kappa: expected" in message
    assert "first difference at index (1, 0)" in message


def test_rmsprop_step_dividing_by_the_old_statistics_fails():
    def old_statistics(theta, grad, square_avg, lr, omega, zeta):
        theta, grad, square_avg = map(np.asarray, (theta, grad, square_avg))
        return (theta - lr * grad / (np.sqrt(square_avg) + zeta),
                omega * square_avg + (1 - omega) * grad ** 2)
    message = str(failure(check_rmsprop_step, old_statistics))
    assert message.startswith("rmsprop_step(theta=[1.0], grad=[0.5], square_avg=[0.0], lr=0.1")
    assert "theta: expected [0.6667]" in message and "got      [0.5]" in message
    assert "expected a tuple of 2: (theta, square_avg)" in str(
        failure(check_rmsprop_step, lambda theta, *args: theta))


def test_lstm_unroll_that_never_resets_fails_on_the_episode_that_begins_mid_rollout():
    message = str(failure(check_lstm_unroll, lambda model, obs, state, resets: lstm_step_by_step(
        model, obs, state, torch.zeros_like(resets))))
    assert "[hidden case: an episode begins mid-rollout in one env]" in message
    assert "logits: expected" in message and "first difference at index (2, 0, 0)" in message
    assert "expected (logits, values, (h, c))" in str(
        failure(check_lstm_unroll, lambda model, obs, state, resets: (obs, obs)))


def test_batched_returns_must_restart_where_an_episode_ends():
    def never_restarts(rewards, dones, end_values, last_values, gamma):
        return batched_n_step_returns(rewards, False, 0.0, last_values, gamma)

    def restart_from_zero(rewards, dones, end_values, last_values, gamma):
        return batched_n_step_returns(rewards, dones, 0.0, last_values, gamma)
    assert "terminates mid-rollout" in str(failure(check_batched_returns, never_restarts))
    assert "truncated mid-rollout" in str(failure(check_batched_returns, restart_from_zero))


def test_retrace_without_truncation_fails():
    def untruncated(rewards, q_taken, values, truncated_rhos, bootstrap, gamma):
        return retrace_targets(rewards, q_taken, values, np.ones(len(rewards)), bootstrap, gamma)
    message = str(failure(check_retrace_targets, untruncated))
    assert "truncated_rhos=[1.0, 0.5]" in message and "targets: expected" in message


def test_an_iqm_that_interpolates_the_quartiles_or_keeps_every_run_fails():
    def interpolated(scores):  # numpy's quartiles interpolate: not a mean of whole runs
        lo, hi = np.percentile(scores, [25, 75])
        return np.clip(scores, lo, hi).mean()
    assert "5 runs: a quarter of 5" in str(failure(check_iqm, interpolated))
    assert "iqm: expected 5.5" in str(failure(check_iqm, np.mean))


def test_a_check_changes_nothing_it_was_given_to_the_next_case():
    def changes_its_input(rewards, bootstrap, gamma):
        result = n_step_returns(rewards, bootstrap, gamma)
        rewards.clear()
        return result
    assert check_n_step_returns(changes_its_input).status == "pass"
    assert check_n_step_returns(n_step_returns).status == "pass"  # the hidden cases are intact


def stub(*args, **kwargs):
    raise NotImplementedError("your code here")


@pytest.mark.parametrize("check", [entry.function for entry in CHECKS.values()],
                         ids=list(CHECKS))
def test_stubs_never_pass(check):
    err = failure(check, stub)
    assert err.status == "error"
    assert "raised NotImplementedError: your code here" in str(err)
    assert "replace `raise NotImplementedError` with your code" in str(err)
    assert failure(check, lambda *args, **kwargs: None).status == "fail"
    assert failure(check, None).status == "error"


def fake_run(returns):
    """What check_learns reads of a Run: its history of episodes."""
    return SimpleNamespace(history=History([(0, 100 * i, 0.1 * i, r, int(r))
                                            for i, r in enumerate(returns)]))


def test_learning_check_reads_the_runs_history():
    calls = []

    def train(env, seed, total_steps):
        calls.append((env, seed, total_steps))
        return fake_run([20.0] * 150)
    message = str(failure(check_learns, train))
    assert calls == [("CartPole-v1", 0, 100_000)]
    assert "expected at least 200, got 20.0" in message
    assert "played 50 episodes" in str(failure(check_learns, lambda **kw: fake_run([500.0] * 50)))
    assert "expected the Run" in str(failure(check_learns, lambda **kw: [500.0] * 200))
    assert check_learns(lambda **kw: fake_run([500.0] * 120)).status == "pass"


# --- reading an executed notebook (no kernel) ----------------------------------------------------

def test_results_are_read_from_the_check_records():
    def record(check, status, message):
        return new_output("display_data", data={CHECK_MIME: {"check": check, "status": status,
                                                             "message": message},
                                                "text/plain": "..."})
    nb = new_notebook(cells=[
        new_code_cell("check_n_step_returns(f)", outputs=[record("n_step_returns", "pass", "ok")]),
        new_code_cell("check_actor_critic_loss(g)", outputs=[
            record("actor_critic_loss", "fail", "loss: expected 1, got 2"),
            new_output("error", ename="CheckFailed", evalue="loss", traceback=[])]),
        new_code_cell("x = 1 / 0", outputs=[
            new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                       traceback=[])]),
        new_code_cell("check_learns(train)"),
    ])
    rows, raised = read_results(nb, memory_mb=1024)
    assert [(r.check, r.status) for r in rows] == [
        ("n_step_returns", "pass"), ("actor_critic_loss", "fail"), ("learns", "error")]
    assert "never ran" in rows[2].message
    assert [(r.check, r.status) for r in raised] == [(SUBMISSION, "error")]
    assert "cell 3 ('x = 1 / 0') raised ZeroDivisionError" in raised[0].message


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "no such submission" in capsys.readouterr().err
    for bad in ("0", "-3", "soon"):
        with pytest.raises(SystemExit) as info:
            main(["grade", str(tmp_path), "--timeout", bad])
        assert info.value.code == 2
        assert "--timeout" in capsys.readouterr().err
    text = tmp_path / "essay.ipynb"
    text.write_text("not JSON at all")
    graded = grade_notebook(text)
    assert graded.rows[0].status == "error" and "not a notebook" in graded.rows[0].message


# --- the grader: real kernels --------------------------------------------------------------------

IMPORTS = ("import asyncrl_lab as lab\n"
           "from asyncrl_lab.book.checks import check_n_step_returns, check_actor_critic_loss, "
           "check_learns")
GOOD = [IMPORTS,
        "from asyncrl_lab.returns import n_step_returns\ncheck_n_step_returns(n_step_returns)",
        "from asyncrl_lab.losses import actor_critic_loss\n"
        "check_actor_critic_loss(actor_critic_loss)",
        "def train(env, seed, total_steps):\n"
        "    return lab.train('a3c', env=env, seed=seed, total_steps=total_steps, workers=2, "
        "progress=False)\n"
        "check_learns(train)"]
STUBS = [IMPORTS,
         "def n_step_returns(rewards, bootstrap, gamma):\n    raise NotImplementedError\n"
         "check_n_step_returns(n_step_returns)",
         "def actor_critic_loss(logits, values, actions, returns, entropy_beta, "
         "value_loss_coef):\n    raise NotImplementedError\n"
         "check_actor_critic_loss(actor_critic_loss)",
         "def train(env, seed, total_steps):\n    pass  # your code here\ncheck_learns(train)"]
# starts a child and a process in a session of its own, then raises; a later cell still runs
RAISES = [IMPORTS,
          "import subprocess\nsubprocess.Popen(['sleep', '3141'])\n"
          "subprocess.Popen(['sleep', '3142'], start_new_session=True)",
          "raise ValueError('a bug of the student')",
          "from asyncrl_lab.returns import n_step_returns\ncheck_n_step_returns(n_step_returns)"]
LOOPS = ["while True:\n    pass", "from asyncrl_lab.book.checks import check_n_step_returns\n"
                                   "check_n_step_returns(print)"]
HOGS = ["blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))"]
DIES = ["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"]


def notebook(path: Path, cells) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), path)
    return path


def left_behind(since: float) -> list:
    """Processes a submission started that are still alive: the graders' children, and anything
    running as `nobody` or the test's sleeps, started since `since`."""
    found = children_of()
    for proc in psutil.process_iter(["cmdline", "username", "create_time", "status"]):
        info = proc.info
        cmdline = info["cmdline"] or []
        if info["create_time"] >= since - 1 and info["status"] != psutil.STATUS_ZOMBIE and (
                info["username"] == "nobody" or cmdline in (["sleep", "3141"], ["sleep", "3142"])):
            found.append(proc)
    return found


@pytest.mark.slow
def test_grader_on_a_class(tmp_path):
    since = time.time()
    paths = [notebook(tmp_path / f"{name}.ipynb", cells)
             for name, cells in [("raises", RAISES), ("stubs", STUBS), ("good", GOOD)]]
    raises, stubs, good = grade(paths, timeout=120, memory_mb=4096)
    assert good.passed, good.rows
    assert [r.check for r in good.rows] == ["n_step_returns", "actor_critic_loss", "learns"]

    assert [(r.check, r.status) for r in stubs.rows] == [
        ("n_step_returns", "error"), ("actor_critic_loss", "error"), ("learns", "fail")]
    assert all("raised NotImplementedError" in r.message for r in stubs.rows[:2])
    assert "returned NoneType None; expected the Run" in stubs.rows[2].message

    assert [(r.check, r.status) for r in raises.rows] == [
        ("n_step_returns", "pass"), (SUBMISSION, "error")]
    assert "raised ValueError: a bug of the student" in raises.rows[1].message
    assert left_behind(since) == []


@pytest.mark.slow
def test_grader_contains_loops_memory_hogs_and_dying_kernels(tmp_path, capsys):
    since = time.time()
    paths = [notebook(tmp_path / f"{name}.ipynb", cells)
             for name, cells in [("loops", LOOPS), ("hogs", HOGS), ("dies", DIES)]]
    sheet = tmp_path / "grades.csv"
    start = time.monotonic()
    status = main(["grade", *map(str, paths), "--timeout", "8", "--memory", "1024",
                   "--csv", str(sheet)])
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    assert status == 1
    assert elapsed < 3 * 8 + 20, f"grading took {elapsed:.0f} s"
    rows = {}
    for row in csv.DictReader(sheet.open()):
        rows.setdefault((Path(row["submission"]).stem, row["check"]), []).append(row)
    assert [r["status"] for r in rows["loops", "n_step_returns"]] == ["error"]  # never reached
    loops, hogs, dies = (" | ".join(r["message"] for r in rows[name, SUBMISSION])
                         for name in ("loops", "hogs", "dies"))
    assert "timed out: stopped after 8 s, during cell 1 ('while True:')" in loops
    assert "raised MemoryError (the memory limit is 1024 MB)" in hogs or "the kernel" in hogs
    assert "the kernel was killed by SIGKILL during cell 1" in dies
    assert "timed out" in out and "0 of 3 submissions passed" in out
    assert left_behind(since) == []


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the project is read-only to a submission only "
                                              "when grading as root (it runs as nobody)")
def test_a_submission_cannot_touch_the_project(tmp_path):
    build = Path(helpers.ROOT) / "_build"
    build.mkdir(exist_ok=True)
    project = Path(tempfile.mkdtemp(dir=build, prefix="grading-sentinel-"))
    try:
        project.chmod(0o755)  # as the project's own folders: readable by all, written by root
        sentinel = project / "sentinel.txt"
        sentinel.write_text("keep me")
        submission = notebook(tmp_path / "deletes.ipynb", [
            f"import os\nos.remove({str(sentinel)!r})",
            f"open({str(project / 'planted.txt')!r}, 'w').write('x')",
            "open('notes.txt', 'w').write('its own folder is writable')\n"
            "from asyncrl_lab.book.checks import check_n_step_returns\n"
            "from asyncrl_lab.returns import n_step_returns\n"
            "check_n_step_returns(n_step_returns)"])
        graded, = grade([submission], timeout=60)
        assert sentinel.read_text() == "keep me"
        assert not (project / "planted.txt").exists()
        assert [(r.check, r.status) for r in graded.rows] == [
            ("n_step_returns", "pass"), (SUBMISSION, "error"), (SUBMISSION, "error")]
        assert all("PermissionError" in r.message for r in graded.rows[1:])
    finally:
        shutil.rmtree(project)
