"""A2C: the vector envs, the batched returns, the update (checked against a brute-force gradient),
determinism, devices, the lifecycle of its single-process loop, and learning."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.algos import a2c
from asyncrl_lab.config import A2CConfig
from asyncrl_lab.envs import make_vector_env
from asyncrl_lab.nets import resolve_device
from asyncrl_lab.returns import batched_n_step_returns, n_step_returns

from helpers import InProcessContext, children_of, when


# --- the returns ---------------------------------------------------------------------------------

def test_batched_returns_by_hand_with_termination_and_truncation():
    gamma = 0.5
    rewards = [[1.0, 1.0, 1.0],
               [2.0, 2.0, 2.0],
               [4.0, 4.0, 4.0]]
    dones = [[False, True, False],   # env 1's episode terminates after step 0
             [False, False, True],   # env 2's is truncated after step 1, V(s_final) = 10
             [False, False, False]]
    end_values = [[0.0, 0.0, 0.0],
                  [0.0, 0.0, 10.0],
                  [0.0, 0.0, 0.0]]
    last_values = [8.0, 8.0, 8.0]
    R = batched_n_step_returns(rewards, dones, end_values, last_values, gamma)
    # env 0: 4 + .5*8 = 8; 2 + .5*8 = 6; 1 + .5*6 = 4
    # env 1: step 2: 8; step 1: 6; step 0 ends its episode: 1 + .5*0 = 1
    # env 2: step 2: 8; step 1 truncated: 2 + .5*10 = 7; step 0: 1 + .5*7 = 4.5
    np.testing.assert_allclose(R, [[4.0, 1.0, 4.5], [6.0, 6.0, 7.0], [8.0, 8.0, 8.0]])


def test_batched_returns_without_episode_ends_are_a3cs_returns():
    rng = np.random.default_rng(0)
    rewards, last = rng.normal(size=(7, 4)), rng.normal(size=4)
    R = batched_n_step_returns(rewards, np.zeros((7, 4), bool), 0.0, last, 0.9)
    for env in range(4):
        np.testing.assert_allclose(R[:, env], n_step_returns(rewards[:, env], last[env], 0.9))


def test_batched_returns_reject_bad_shapes_and_gamma():
    with pytest.raises(ValueError, match=r"shape \(t_max, n_envs\)"):
        batched_n_step_returns([1.0, 2.0], [False, False], 0.0, 0.0, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        batched_n_step_returns([[1.0]], [[False]], 0.0, [0.0], 1.5)


# --- the vector envs -----------------------------------------------------------------------------

def play(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    log = []
    for _ in range(steps):
        log.append(env.step(rng.integers(0, env.n_actions, env.n_envs)))
    return log


def test_cartpole_vector_env_shapes_resets_and_episode_records():
    env = make_vector_env("helpers:ShortCartPole-v0", 3, seed=0)
    obs = env.reset()
    assert obs.shape == (3, 4) and obs.dtype == np.float32 and np.abs(obs).max() <= 0.05
    lengths = np.zeros(3, int)
    terminations = truncations = 0
    for obs, rewards, terminated, truncated, final_obs, finished in play(env, 200):
        assert obs.shape == final_obs.shape == (3, 4) and rewards.shape == (3,)
        lengths += 1
        done = terminated | truncated
        assert sorted(i for i, _, _ in finished) == list(np.flatnonzero(done))
        for i, episode_return, length in finished:
            assert length == lengths[i] and episode_return == length  # CartPole pays 1 a step
            assert length == 12 if truncated[i] else length < 12
            # the next episode has begun in the same step; final_obs is where this one ended
            assert np.abs(obs[i]).max() <= 0.05 and not np.allclose(final_obs[i], obs[i])
            lengths[i] = 0
        np.testing.assert_array_equal(final_obs[~done], obs[~done])
        terminations, truncations = terminations + terminated.sum(), truncations + truncated.sum()
    assert terminations > 0 and truncations > 0
    env.close()


def test_atari_vector_env_preprocesses_and_clips_rewards_but_records_raw_returns():
    env = make_vector_env("ALE/Pong-v5", 2, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8 and env.n_actions == 6
    scored = False
    for obs, rewards, terminated, truncated, final_obs, finished in play(env, 300):
        assert obs.shape == (2, 4, 84, 84) and set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
        scored |= bool(np.any(rewards != 0))
    assert scored  # random play concedes points within 300 steps
    env.close()


def test_episodic_life_ends_training_episodes_on_a_lost_life_but_not_the_game():
    env = make_vector_env("ALE/Breakout-v5", 2, seed=0, episodic_life=True)
    env.reset()
    life_losses = 0
    for obs, rewards, terminated, truncated, final_obs, finished in play(env, 400):
        lost = terminated & ~np.isin(np.arange(2), [i for i, _, _ in finished])
        life_losses += lost.sum()
        for i, episode_return, length in finished:
            assert length > 100  # a whole game of 5 lives, not one life
    assert life_losses >= 4
    env.close()


def test_the_same_seed_gives_the_same_episodes_and_another_seed_does_not():
    def episodes(seed):
        env = make_vector_env("CartPole-v1", 4, seed=seed)
        first = env.reset()
        out = [first] + [step[0] for step in play(env, 50)]
        env.close()
        return np.stack(out)
    np.testing.assert_array_equal(episodes(3), episodes(3))
    assert not np.allclose(episodes(3)[0], episodes(4)[0])


# --- the update, against a brute-force gradient ---------------------------------------------------

class RecordingEnv:
    """A VectorEnv that logs every step it takes."""

    def __init__(self, env):
        self.env, self.log = env, []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self):
        self.obs = self.env.reset()
        return self.obs

    def step(self, actions):
        result = self.env.step(actions)
        self.log.append((self.obs.copy(), actions.copy(), *[np.copy(r) for r in result[1:5]]))
        self.obs = result[0]
        return result


class RecordingContext(InProcessContext):
    """Runs the real coordinator in this process for `updates` updates and records, at each update,
    the parameters the gradient was computed at and the (unclipped) gradient."""

    def apply_gradients(self, model, lr):
        params = [p.detach().clone() for p in model.parameters()]
        grads = [p.grad.clone() for p in model.parameters()]
        self.records.append((params, grads))
        self.optimizer.step(grads, lr)


def test_each_update_is_the_gradient_of_a3cs_loss_averaged_over_the_batch(monkeypatch):
    config = A2CConfig(env="helpers:ShortCartPole-v0", n_envs=3, t_max=5, entropy_beta=0.05,
                       value_loss_coef=0.5, gamma=0.9, lr=0.05, device="cpu")
    envs = []
    monkeypatch.setattr(a2c, "make_vector_env",
                        lambda *a, **k: envs.append(RecordingEnv(make_vector_env(*a, **k))) or envs[0])
    torch.manual_seed(0)
    shared = a2c.build_shared(config, (4,), 2)
    ctx = RecordingContext(config, shared, updates=6)
    a2c.coordinator(ctx)
    log = envs[0].log
    # the rollouts cover terminations, truncations, and an episode that ended both ways at once
    assert len(log) == 6 * 5 and any(step[3].any() for step in log)
    assert any((step[4] & ~step[3]).any() for step in log) and any((step[3] & step[4]).any() for step in log)
    net = a2c.make_network(config, (4,), 2)
    for k, (params, grads) in enumerate(ctx.records[:-1]):  # the last one's s_{t+t_max} is not logged
        rollout, next_obs = log[5 * k: 5 * (k + 1)], log[5 * (k + 1)][0]
        with torch.no_grad():
            for mine, value in zip(net.parameters(), params):
                mine.copy_(value)
        total = [torch.zeros_like(p) for p in params]
        for env in range(3):
            # walk back over this env's steps, one scalar at a time (Algorithm S3's loop)
            with torch.no_grad():
                R = float(net(torch.as_tensor(next_obs[env]))[1])
            for obs, actions, reward, terminated, truncated, final_obs in reversed(rollout):
                if terminated[env]:
                    R = 0.0
                elif truncated[env]:
                    with torch.no_grad():
                        R = float(net(torch.as_tensor(final_obs[env]))[1])
                R = reward[env] + config.gamma * R
                net.zero_grad()
                logits, value = net(torch.as_tensor(obs[env]))
                log_probs = torch.log_softmax(logits, -1)
                advantage = R - value
                loss = (-log_probs[actions[env]] * advantage.detach()
                        + config.value_loss_coef * 0.5 * advantage ** 2
                        + config.entropy_beta * (log_probs.exp() * log_probs).sum()) / 15
                loss.backward()
                for acc, p in zip(total, net.parameters()):
                    acc += p.grad
        for got, want in zip(grads, total):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


# --- runs: determinism, devices, lifecycle, learning ---------------------------------------------

def a2c_run(**options):
    settings = dict(env="CartPole-v1", n_envs=4, total_steps=20_000, seed=0, progress=False)
    return lab.train("a2c", **{**settings, **options})


def test_two_runs_with_the_same_seed_on_the_cpu_are_identical():
    first, second = a2c_run(device="cpu"), a2c_run(device="cpu")
    assert len(first.history) > 100
    for column in ("worker", "global_step", "episode_return", "episode_length"):
        np.testing.assert_array_equal(getattr(first.history, column), getattr(second.history, column))
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(p, q)
    other = a2c_run(device="cpu", seed=1)
    assert not np.array_equal(other.history.episode_return[:100], first.history.episode_return[:100])


def test_the_device_is_chosen_automatically_and_can_be_overridden():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"A2CConfig.device='cuda' .*sees no GPU"):
            A2CConfig(device="cuda")
    with pytest.raises(ValueError, match=r"A2CConfig.device='tpu0' .*not a torch device"):
        A2CConfig(device="tpu0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a2c_trains_on_the_gpu_and_returns_a_cpu_model(tmp_path):
    run = a2c_run(device="cuda", out=tmp_path / "run")
    assert next(run.model.parameters()).device.type == "cpu"
    assert lab.load(tmp_path / "run").global_step == run.global_step


def test_a2c_has_no_workers_and_says_so():
    with pytest.raises(ValueError, match="a2c is synchronous.*pass n_envs"):
        lab.train("a2c", env="CartPole-v1", workers=2)


def test_an_interrupt_returns_and_saves_the_partial_run(sigint_raises_keyboard_interrupt, tmp_path):
    seen = {"step": 0}
    when(lambda: seen["step"] > 200, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.warns(UserWarning, match="interrupted at global step"):
        run = lab.train("a2c", env="helpers:SlowCartPole-v0", n_envs=2, total_steps=1_000_000,
                        progress=lambda o: seen.update(step=o.global_step), out=tmp_path / "run")
    assert run.status == "interrupted" and 200 < run.global_step < 1_000_000
    assert lab.load(tmp_path / "run").status == "interrupted"
    assert children_of() == []


def test_an_exception_in_the_loop_is_raised_with_the_partial_run_saved(tmp_path):
    with pytest.raises(lab.WorkerError, match=r"the coordinator raised(.|\n)*injected fault") as err:
        lab.train("a2c", env="helpers:FaultyCartPole-v0", n_envs=2, total_steps=100_000,
                  progress=False, out=tmp_path / "run")
    assert err.value.run.status == "failed" and err.value.run.global_step > 0
    assert lab.load(tmp_path / "run").status == "failed"


def test_a_diverging_loss_stops_the_run_before_the_parameters_are_touched():
    with pytest.raises(lab.WorkerError, match=r"the coordinator: the loss is nan at global step"):
        lab.train("a2c", env="helpers:NaNCartPole-v0", n_envs=2, total_steps=100_000,
                  progress=False)


def test_a2c_resumes_where_it_stopped(tmp_path):
    first = a2c_run(total_steps=4_000, out=tmp_path / "run")
    resumed = lab.train(resume=tmp_path / "run", total_steps=8_000, n_envs=8, progress=False)
    assert resumed.config.n_envs == 8 and resumed.global_step >= 8_000
    assert len(resumed.history) > len(first.history)
    np.testing.assert_array_equal(resumed.history.episode_return[:len(first.history)],
                                  first.history.episode_return)


@pytest.mark.slow
def test_a2c_learns_cartpole():
    """Seed 0 reaches a rolling-100 mean of 475 within 400k steps (the benchmark's median is about
    200k steps); the run stops there."""
    run = lab.train("a2c", env="CartPole-v1", total_steps=400_000, seed=0,
                    progress=False, stop_at_return=475)
    assert run.history.first_reaching(475) is not None
    assert run.evaluate(5)["mean"] > 400


def test_a2c_trains_the_papers_network_on_atari():
    run = lab.train("a2c", env="ALE/Pong-v5", n_envs=4, total_steps=2_000, seed=0, progress=False)
    torch.manual_seed(0)  # as train() does before building the network
    before = a2c.make_network(run.config, (4, 84, 84), 6)
    assert run.global_step >= 2_000
    assert any(not torch.equal(p, q) for p, q in zip(run.model.parameters(), before.parameters()))


def openmp_spin_count(code: str, **env_changes) -> str:
    """GOMP_SPINCOUNT as torch's OpenMP (libgomp) settled it in a fresh process running `code`:
    how many rounds its idle threads spin before they sleep."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="verbose", **env_changes)
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stderr
    found = re.search(r"GOMP_SPINCOUNT = '(\d+)'", err)
    if found is None:
        pytest.skip("torch's OpenMP runtime is not libgomp")
    return found.group(1)


def test_importing_the_package_first_shortens_torchs_openmp_spinning():
    # spinning threads would take the cores from the emulator threads A2C steps after each forward
    default = openmp_spin_count("import torch")
    assert openmp_spin_count("import asyncrl_lab, torch; torch.ones(2) @ torch.ones(2)") == "30000"
    assert int(default) > 30000
    # torch imported first keeps libgomp's default; a wait policy the user chose is kept
    assert openmp_spin_count("import torch, asyncrl_lab") == default
    assert openmp_spin_count("import asyncrl_lab", OMP_WAIT_POLICY="PASSIVE") == "0"
