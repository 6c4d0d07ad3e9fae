"""Observation normalization (obs_norm): the running statistics against numpy's mean and variance
of everything seen; the normalized input, clipped; the numpy actor against the network; a
worker's sync copying the statistics; every training observation reaching them, in A3C and A2C;
checkpoints and resume carrying them; bad input."""
import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.config import A3CConfig
from asyncrl_lab.nets import (ActorCritic, NumpyMLPActor, ObsNorm, RecurrentActorCritic,
                              TorchActor, observe)
from asyncrl_lab.optim import SharedRMSprop
from asyncrl_lab.parallel import WorkerContext


def batches(seed=0):
    """Observations on very different scales, in batches of uneven sizes (one of a single row)."""
    rng = np.random.default_rng(seed)
    scale = np.array([0.05, 1.0, 30.0])
    return [rng.normal(3.0, 1.0, size=(n, 3)) * scale for n in (7, 1, 20, 3, 50)]


def test_the_running_statistics_are_the_mean_and_variance_of_every_batch_seen():
    norm = ObsNorm((3,))
    for batch in batches():
        norm.update(torch.as_tensor(batch))
    seen = np.concatenate(batches())
    assert float(norm.count) == len(seen)
    np.testing.assert_allclose(norm.mean.numpy(), seen.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), seen.var(0), rtol=1e-10)


def test_the_input_is_standardized_and_clipped_to_ten():
    norm = ObsNorm((2,))
    norm.update(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))  # mean (1, 20), variance (1, 100)
    out = norm(torch.tensor([[3.0, 0.0], [1.0, 1e6]]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[2.0, -2.0], [0.0, ObsNorm.CLIP]]))


def test_the_numpy_actor_normalizes_as_the_network_does():
    model = ActorCritic((3,), 2, (16,), obs_norm=True)
    for batch in batches(1):
        observe(model, torch.as_tensor(batch))
    fast, torch_actor = NumpyMLPActor(model, 0), TorchActor(model, 0)
    for obs in batches(2)[4].astype(np.float32):
        np.testing.assert_allclose(fast.probs(obs), torch_actor.probs(obs), rtol=1e-5)
        assert fast.value(obs) == pytest.approx(torch_actor.value(obs), rel=1e-5, abs=1e-6)


def test_a_network_without_obs_norm_has_no_statistics_and_observe_leaves_it_alone():
    model = RecurrentActorCritic((3,), 2, (8,), 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    observe(model, torch.ones(5, 3))
    assert model.normalizer is None and list(model.buffers()) == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_worker_sync_copies_the_statistics_with_the_parameters():
    shared_model = ActorCritic((3,), 2, (8,), obs_norm=True).share_memory()
    observe(shared_model, torch.as_tensor(batches()[0]))
    shared = {"model": shared_model, "optimizer": SharedRMSprop(shared_model.parameters())}
    counters = (torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64),
                torch.zeros(1, dtype=torch.uint8))
    reader, writer = multiprocessing.Pipe(duplex=False)
    ctx = WorkerContext(0, 0, A3CConfig(obs_norm=True), shared, counters, writer, os.getppid(),
                        time.time())
    local = ActorCritic((3,), 2, (8,), obs_norm=True)
    actor = NumpyMLPActor(local, 0)  # reads views of local's buffers
    ctx.sync(local)
    for name, value in shared_model.state_dict().items():
        torch.testing.assert_close(local.state_dict()[name], value)
    obs = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(actor.probs(obs), TorchActor(shared_model, 0).probs(obs), rtol=1e-5)
    reader.close()
    writer.close()


def test_a2c_normalizes_with_every_observation_it_trained_on_and_resume_carries_them(tmp_path):
    run = lab.train("a2c", env="CartPole-v1", obs_norm=True, n_envs=4, total_steps=2_000,
                    progress=False, out=tmp_path / "run")
    norm = run.model.normalizer
    assert float(norm.count) == run.global_step  # each step's observation, once
    assert (norm.var > 0).all() and float(norm.var.max() / norm.var.min()) > 10  # unequal scales
    loaded = lab.load(tmp_path / "run")
    for name in ("count", "mean", "var"):
        assert torch.equal(getattr(loaded.model.normalizer, name), getattr(norm, name))
    resumed = lab.train(resume=tmp_path / "run", total_steps=4_000, progress=False)
    assert float(resumed.model.normalizer.count) == resumed.global_step


def test_a3c_workers_share_their_statistics_lock_free():
    run = lab.train("a3c", env="CartPoleNoVel-v1", obs_norm=True, lstm_cells=8, workers=2,
                    total_steps=3_000, progress=False)
    count = float(run.model.normalizer.count)
    # Both workers write the shared statistics without a lock, as they write the parameters; two
    # updates at the same instant can lose one of them, never add any.
    assert 0.9 * run.global_step <= count <= run.global_step
    assert run.model.normalizer.mean.shape == (2,)


def test_obs_norm_on_atari_frames_is_refused_naming_the_option():
    with pytest.raises(ValueError, match=r"obs_norm normalizes vector observations, not .*84"):
        ActorCritic((4, 84, 84), 6, obs_norm=True)
