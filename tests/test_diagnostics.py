"""Diagnostics of the updates (losses, entropy, gradient norm, learning rate, steps/s): sampled one
update in DIAGNOSE_EVERY, kept through save, load and resume, drawn by Run.plot, written to
TensorBoard and read back with TensorBoard's own reader."""
import math

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.history import DIAGNOSTIC_COLUMNS, Diagnostics
from asyncrl_lab.losses import actor_critic_loss, actor_critic_terms
from asyncrl_lab.optim import annealed_lr
from asyncrl_lab.parallel import DIAGNOSE_EVERY, _Sampler
from asyncrl_lab.tensorboard_log import EPISODE_TAGS, TAGS


@pytest.fixture(scope="module")
def a2c_run():
    return lab.train("a2c", env="CartPole-v1", total_steps=40 * (2 * DIAGNOSE_EVERY + 50), seed=0,
                     n_envs=8, t_max=5, progress=False)


def test_the_terms_are_the_loss_and_their_means_are_per_step():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])  # pi = (.25, .75), (.5, .5)
    values, actions, returns = torch.tensor([1.0, 2.0]), torch.tensor([1, 0]), torch.tensor([3.0, 1.0])
    terms = actor_critic_terms(logits, values, actions, returns)
    assert terms.policy_loss.item() == pytest.approx(-(math.log(0.75) * 2.0 + math.log(0.5) * -1.0))
    assert terms.value_loss.item() == pytest.approx(0.5 * (4.0 + 1.0))
    assert terms.entropy.item() == pytest.approx(
        -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) + math.log(2.0))
    assert terms.loss(0.1, 0.5).item() == pytest.approx(
        actor_critic_loss(logits, values, actions, returns, 0.1, 0.5).item())
    means = terms.means(2)
    assert set(means) == {"policy_loss", "value_loss", "entropy"}
    assert means["value_loss"].item() == pytest.approx(2.5 / 2)


def test_the_sampler_keeps_the_first_update_and_one_in_every_n():
    sampler = _Sampler(rank=1, t0=0.0)
    for update in range(2 * DIAGNOSE_EVERY + 1):
        sampler.offer(10 * update, 0.5, torch.tensor(float(update)),
                      {"value_loss": torch.tensor(float(update))})
    rows = sampler.take()
    assert [r.global_step for r in rows] == [0, 10 * DIAGNOSE_EVERY, 20 * DIAGNOSE_EVERY]
    assert [r.grad_norm for r in rows] == [0.0, DIAGNOSE_EVERY, 2 * DIAGNOSE_EVERY]
    assert all(r.worker == 1 and r.lr == 0.5 for r in rows)
    assert math.isnan(rows[0].steps_per_s) and rows[1].steps_per_s > 0
    assert math.isnan(rows[1].policy_loss) and math.isnan(rows[1].entropy)  # a Q method's row
    assert sampler.take() == []
    with pytest.raises(ValueError, match="unknown diagnostics"):
        _Sampler(0, 0.0).offer(0, 0.1, torch.tensor(1.0), {"q_loss": torch.tensor(1.0)})


def test_a2c_samples_one_update_in_n_with_its_learning_rate_and_sane_values(a2c_run):
    d = a2c_run.history.diagnostics
    updates = int(a2c_run.history.staleness.sum())
    assert updates == 2 * DIAGNOSE_EVERY + 50
    assert len(d) == 3  # updates 1, 1 + N, 1 + 2N
    batch = 8 * 5
    np.testing.assert_array_equal(d.global_step, [batch, batch * (DIAGNOSE_EVERY + 1),
                                                  batch * (2 * DIAGNOSE_EVERY + 1)])
    np.testing.assert_allclose(d.lr, [annealed_lr(a2c_run.config, s) for s in d.global_step])
    assert d.entropy[0] == pytest.approx(math.log(2), abs=0.02)  # a fresh policy is near uniform
    assert np.all((d.entropy > 0) & (d.entropy <= math.log(2) + 1e-6))
    assert np.all(d.value_loss >= 0) and np.all(np.isfinite(d.policy_loss))
    assert np.all(d.grad_norm > 0) and np.all(d.steps_per_s[1:] > 0)
    assert np.all(np.diff(d.wall_time) > 0)


def test_every_asynchronous_worker_reports_its_samples():
    run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=20_000, seed=1, t_max=5,
                    progress=False)
    d = run.history.diagnostics
    updates = int(run.history.staleness.sum())
    assert set(d.worker.tolist()) == {0, 1}
    # each worker keeps its first update and one in N after it
    assert math.ceil(updates / DIAGNOSE_EVERY) <= len(d) <= math.ceil(updates / DIAGNOSE_EVERY) + 1
    assert np.all(d.entropy <= math.log(2) + 1e-6) and np.all(d.value_loss >= 0)


@pytest.mark.parametrize("algo", ["acer", "one_step_q"])
def test_the_other_methods_report_what_they_have(algo):
    run = lab.train(algo, env="CartPole-v1", workers=2, total_steps=6_000, seed=0, progress=False)
    d = run.history.diagnostics
    assert len(d) >= 2 and np.all(np.isfinite(d.value_loss)) and np.all(d.grad_norm > 0)
    if algo == "acer":
        assert np.all((d.entropy > 0) & (d.entropy <= math.log(2) + 1e-6))
    else:  # a Q method has no policy
        assert np.all(np.isnan(d.policy_loss)) and np.all(np.isnan(d.entropy))


def test_diagnostics_survive_save_load_and_resume(a2c_run, tmp_path):
    a2c_run.save(tmp_path / "run")
    loaded = lab.load(tmp_path / "run")
    for name in DIAGNOSTIC_COLUMNS:  # wall times are written to 0.1 ms, the rest exactly
        np.testing.assert_allclose(getattr(loaded.history.diagnostics, name),
                                   getattr(a2c_run.history.diagnostics, name),
                                   rtol=0, atol=1e-4 if name == "wall_time" else 0)
    more = lab.train(resume=tmp_path / "run", total_steps=a2c_run.global_step + 40 * 150,
                     progress=False)
    d, before = more.history.diagnostics, len(a2c_run.history.diagnostics)
    assert len(d) == before + 2  # the resumed part's first update and its (N+1)-th
    assert np.all(d.global_step[before:] > a2c_run.global_step)
    assert np.all(d.wall_time[before:] > a2c_run.wall_time)
    assert lab.load(tmp_path / "run").history.diagnostics.global_step.tolist() == \
        d.global_step.tolist()


def test_a_run_saved_without_diagnostics_loads_with_none(a2c_run, tmp_path):
    a2c_run.save(tmp_path / "run")
    (tmp_path / "run" / "diagnostics.csv").unlink()
    loaded = lab.load(tmp_path / "run")
    assert len(loaded.history.diagnostics) == 0
    with pytest.raises(ValueError, match="no diagnostics"):
        loaded.plot("entropy")


def test_a_file_that_is_not_diagnostics_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a diagnostics file"):
        Diagnostics.from_csv(tmp_path / "d.csv")


def test_plot_draws_the_diagnostics_it_is_asked_for(a2c_run):
    import matplotlib.pyplot as plt

    fig = a2c_run.plot("entropy", "value_loss")
    axes = fig.axes
    assert len(axes) == 2
    np.testing.assert_array_equal(axes[0].lines[0].get_ydata(), a2c_run.history.diagnostics.entropy)
    np.testing.assert_array_equal(axes[1].lines[0].get_ydata(),
                                  a2c_run.history.diagnostics.value_loss)
    plt.close(fig)
    with pytest.raises(ValueError, match="unknown diagnostics \\['loss'\\]"):
        a2c_run.plot("loss")


def _scalars(logdir) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0})  # 0: keep every event
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("algo, options", [("a2c", {"n_envs": 8}), ("a3c", {"workers": 2})])
def test_tensorboard_holds_every_episode_and_every_sampled_update(algo, options, tmp_path):
    run = lab.train(algo, env="CartPole-v1", total_steps=30_000, seed=0, progress=False,
                    tensorboard=tmp_path / "tb", **options)
    scalars = _scalars(tmp_path / "tb")
    assert set(scalars) == set(TAGS.values()) | set(EPISODE_TAGS.values())
    returns = scalars["charts/episodic_return"]
    assert sorted(e.value for e in returns) == sorted(run.history.episode_return.tolist())
    assert sorted(e.step for e in returns) == sorted(run.history.global_step.tolist())
    d = run.history.diagnostics
    for column, tag in TAGS.items():
        written = sorted((e.step, e.value) for e in scalars[tag])
        kept = sorted((int(s), float(v)) for s, v in zip(d.global_step, getattr(d, column))
                      if math.isfinite(v))
        assert [s for s, _ in written] == [s for s, _ in kept]
        np.testing.assert_allclose([v for _, v in written], [v for _, v in kept], rtol=1e-6)


def test_a_q_method_writes_no_policy_terms_to_tensorboard(tmp_path):
    lab.train("one_step_q", env="CartPole-v1", workers=2, total_steps=5_000, seed=0,
              progress=False, tensorboard=tmp_path / "tb")
    scalars = _scalars(tmp_path / "tb")
    assert "losses/value_loss" in scalars and "losses/grad_norm" in scalars
    assert "losses/policy_loss" not in scalars and "losses/entropy" not in scalars


def test_a_bad_tensorboard_directory_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot write TensorBoard logs in .*file"):
        lab.train("a3c", env="CartPole-v1", total_steps=1000, tensorboard=tmp_path / "file",
                  progress=False)
    with pytest.raises(ValueError, match="give a directory's path"):
        lab.train("a3c", env="CartPole-v1", total_steps=1000, tensorboard=3, progress=False)
