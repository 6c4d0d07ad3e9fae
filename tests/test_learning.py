"""A3C learns CartPole-v1 through the public API (2 workers, fixed seed, stated threshold).

The benchmark (benchmarks/cartpole_time_to_solve.py) asks for a rolling mean of 475; this test
asks for 400 within the same 250k-step budget, a margin for the nondeterminism of asynchronous
updates (the seed fixes the initial network and the envs, not the order of the updates).
"""
import numpy as np
import torch

import asyncrl_lab as lab
from asyncrl_lab.experiments import A3C_CARTPOLE
from asyncrl_lab.nets import ActorCritic

from helpers import children_of

CARTPOLE = dict(A3C_CARTPOLE, workers=2, total_steps=250_000)


def test_a3c_learns_cartpole():
    run = lab.train("a3c", seed=0, progress=False, **CARTPOLE)
    assert run.status == "finished"
    best = run.history.rolling_mean(100)[99:].max()
    assert best >= 400, f"best rolling-100 mean {best:.1f} < 400"
    assert run.history.first_reaching(400) is not None
    assert run.evaluate(episodes=5)["mean"] >= 400
    assert set(np.unique(run.history.worker)) == {0, 1}  # both workers played
    assert run.history.staleness.sum() > 0
    assert children_of() == []


def test_a3c_trains_the_papers_network_on_atari():
    """A short Pong run: the shared conv net's weights move, and the T counter covers the budget."""
    torch.manual_seed(0)
    initial = ActorCritic((4, 84, 84), 6).state_dict()  # what build_shared makes for seed 0
    run = lab.train("a3c", env="ALE/Pong-v5", workers=2, total_steps=1_000, seed=0, progress=False)
    assert run.status == "finished" and run.global_step >= 1_000
    moved = {k for k, v in run.model.state_dict().items() if not torch.equal(v, initial[k])}
    assert "trunk.net.0.weight" in moved and "policy.weight" in moved
    assert run.history.staleness.sum() >= 1_000 // 5  # an update per rollout of at most t_max=5 steps
    assert children_of() == []
