"""A saved run resumes where it stopped: global step, learning-rate schedule, optimizer
statistics and history continue rather than start over; from the API and from the CLI."""
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.algos import ALGORITHMS

from helpers import ROOT, children_of, faulty_worker, subprocess_env


@pytest.fixture
def lr_log(monkeypatch, tmp_path):
    """Workers record (global step, learning rate) of every update into lr.<rank> files."""
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("ASYNCRL_FAULT_ALGO", "a3c")
    monkeypatch.setenv("ASYNCRL_FAULT_DIR", str(markers))
    monkeypatch.setenv("ASYNCRL_FAULT", "none:none")
    real = ALGORITHMS["a3c"]
    monkeypatch.setitem(ALGORITHMS, "a3c", types.SimpleNamespace(
        Config=real.Config, build_shared=real.build_shared, make_network=real.make_network, worker=faulty_worker))

    def read():
        rows = [tuple(map(float, line.split())) for f in markers.glob("lr.*")
                for line in f.read_text().splitlines()]
        for f in markers.glob("lr.*"):
            f.unlink()
        return np.array(sorted(rows))
    return read


def test_resume_continues_step_schedule_statistics_and_history(tmp_path, lr_log):
    out = tmp_path / "run"
    first = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=6000, seed=1, lr=1e-3,
                      progress=False, out=out)
    first_lrs = lr_log()
    saved = lab.load(out)
    resumed = lab.train(resume=out, total_steps=12_000, progress=False)
    resumed_lrs = lr_log()
    assert children_of() == []
    # the global step continues from the saved one
    assert resumed.global_step >= 12_000 and resumed_lrs[:, 0].min() >= saved.global_step
    # the learning rate continues its linear decay over the new total, lr * (1 - T / 12,000),
    # at the T the worker saw when it computed it (at or before the T logged at the update)
    t_of_lr = 12_000 * (1 - resumed_lrs[:, 1] / 1e-3)
    assert np.all(t_of_lr >= saved.global_step - 1e-6)
    assert np.all(t_of_lr <= resumed_lrs[:, 0] + 1e-6)
    assert resumed_lrs[:, 1].max() < first_lrs[:, 1].max()
    # the optimizer statistics were loaded, not restarted: the update count goes on
    updates_first = int(saved.optimizer_state["steps"].item())
    assert int(resumed.optimizer_state["steps"].item()) == updates_first + len(resumed_lrs)
    # the history continues: the first run's episodes, then new ones later in steps and time
    n = len(first.history)
    np.testing.assert_array_equal(resumed.history.episode_return[:n], first.history.episode_return)
    assert len(resumed.history) > n
    assert resumed.history.global_step[n:].min() >= saved.global_step
    assert resumed.history.wall_time[n:].min() >= saved.wall_time
    assert resumed.wall_time > saved.wall_time
    # and the resumed run was saved over the old one
    assert lab.load(out).global_step == resumed.global_step


def test_a_value_method_resumes_with_its_settings_and_history(tmp_path):
    out = tmp_path / "q"
    first = lab.train("n_step_q", env="CartPole-v1", workers=2, total_steps=4000, seed=3,
                      final_epsilons=(0.2,), final_epsilon_probs=(1.0,), target_update_interval=500,
                      progress=False, out=out)
    resumed = lab.train(resume=out, total_steps=8000, progress=False)
    assert resumed.algo == "n_step_q" and resumed.config == first.config.__class__(
        **{**first.config.to_dict(), "total_steps": 8000})
    assert resumed.global_step >= 8000 and len(resumed.history) > len(first.history)
    assert resumed.history.global_step[len(first.history):].min() >= first.global_step
    assert int(resumed.optimizer_state["steps"].item()) > int(first.optimizer_state["steps"].item())
    assert children_of() == []


def test_resume_from_the_command_line(tmp_path):
    out = tmp_path / "run"
    env = subprocess_env()
    subprocess.run([sys.executable, "-m", "asyncrl_lab", "train", "a3c", "--env", "CartPole-v1",
                    "--workers", "2", "--steps", "4000", "--out", str(out), "--checkpoint-every",
                    "1000", "--no-progress"], env=env, cwd=ROOT, check=True, timeout=120,
                   capture_output=True)
    before = lab.load(out)
    proc = subprocess.run([sys.executable, "-m", "asyncrl_lab", "train", "--resume", str(out),
                           "--steps", "8000", "--no-progress"], env=env, cwd=ROOT, timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    after = lab.load(out)
    assert after.global_step >= 8000 and len(after.history) > len(before.history)
    assert after.config.total_steps == 8000 and after.config.lr == before.config.lr
    for k, v in before.model.state_dict().items():
        assert not torch.equal(after.model.state_dict()[k], v)  # it trained on


def test_periodic_checkpoints_are_written_during_training(tmp_path, monkeypatch):
    saved_at = []
    original = lab.Run.save

    def record(run, path):
        saved_at.append((run.status, run.global_step))
        return original(run, path)

    monkeypatch.setattr(lab.Run, "save", record)
    lab.train("a3c", env="CartPole-v1", workers=2, total_steps=20_000, progress=False,
              out=tmp_path / "run", checkpoint_every=5000)
    periodic = [step for status, step in saved_at if status == "running"]
    assert [step // 5000 for step in periodic][:3] == [1, 2, 3]  # once per 5,000 steps crossed
    assert saved_at[-1][0] == "finished"
