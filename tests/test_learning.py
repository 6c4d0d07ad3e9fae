"""Every method learns CartPole-v1 through the public API (2 workers, fixed seed, stated
threshold), and trains the paper's network on Atari.

A3C: the benchmark (benchmarks/cartpole_time_to_solve.py) asks for a rolling mean of 475; this test
asks for 400 within the same 250k-step budget, a margin for the nondeterminism of asynchronous
updates (the seed fixes the initial network and the envs, not the order of the updates).

Value-based methods: a rolling mean of 200 *training* episodes (played with epsilon-greedy
exploration) within 200k steps, the run stopping there. benchmarks/value_methods_cartpole.py
measures, over five seeds with the package's CartPole settings, when each method gets there
(results/value_methods_cartpole.txt); the budget is about twice the slowest seed's steps.
"""
import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.nets import ActorCritic, QNetwork

from helpers import children_of

pytestmark = pytest.mark.slow  # make test-fast leaves it out

# No settings but the budget: `train` starts from the tuned CartPole preset (presets.py), the path
# a new user takes.
CARTPOLE = dict(env="CartPole-v1", workers=2, total_steps=250_000)


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


# CartPoleNoVel-v1 hides the velocities: in the study memory_cartpole (seeds 0-2, the preset's 1M
# steps) feed-forward A3C's best 100-episode mean was 47-48, and A3C with 128 LSTM cells reached
# 200 after 135k (seed 2), 180k and 506k steps, and 475 in every seed. Four times what a policy
# without memory reached, within the preset's budget, leaves a margin for the nondeterminism of
# asynchronous updates.
MEMORY_THRESHOLD = 200
# The policy the run stops with is the newest, not the average of the last 100 episodes: it can be
# weaker. Eight repeats of this test (seed 2, 2026-12-07) gave evaluation means over 100 episodes
# of 144 to 497, but over 10 episodes one CI run got 86.9. So 30 episodes, and a bar that a policy
# without memory does not reach: 1.5x its best mean.
MEMORYLESS_BEST = 48


def test_a3c_with_an_lstm_learns_cartpole_without_its_velocities():
    run = lab.train("a3c", env="CartPoleNoVel-v1", seed=2, progress=False,
                    stop_at_return=MEMORY_THRESHOLD)
    assert run.config.lstm_cells == 128 and run.config.obs_norm  # the preset's
    reached = run.history.first_reaching(MEMORY_THRESHOLD)
    assert reached is not None, (f"best rolling-100 mean "
                                 f"{run.history.rolling_mean(100)[99:].max():.1f}")
    # evaluation: each episode from a zero LSTM state, through the checkpointed normalizer
    assert run.evaluate(episodes=30)["mean"] >= 1.5 * MEMORYLESS_BEST
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


VALUE_THRESHOLD, VALUE_BUDGET = 200, 200_000


@pytest.mark.parametrize("algo", ["one_step_q", "one_step_sarsa", "n_step_q"])
def test_value_method_learns_cartpole(algo):
    run = lab.train(algo, env="CartPole-v1", seed=0, workers=2, total_steps=VALUE_BUDGET,
                    progress=False, stop_at_return=VALUE_THRESHOLD)
    reached = run.history.first_reaching(VALUE_THRESHOLD)
    assert reached is not None, (f"{algo}: best rolling-100 mean "
                                 f"{run.history.rolling_mean(100)[99:].max():.1f} < {VALUE_THRESHOLD}")
    assert run.status == "finished" and "stopped early" in run.message
    assert isinstance(run.model, QNetwork)
    assert set(np.unique(run.history.worker)) == {0, 1}
    assert children_of() == []


@pytest.mark.parametrize("algo", ["one_step_q", "n_step_q"])
def test_value_methods_train_the_papers_network_on_atari(algo):
    torch.manual_seed(0)
    initial = QNetwork((4, 84, 84), 6).state_dict()  # what build_shared makes for seed 0
    run = lab.train(algo, env="ALE/Pong-v5", workers=2, total_steps=600, seed=0, progress=False,
                    target_update_interval=200)
    assert run.status == "finished" and run.global_step >= 600
    moved = {k for k, v in run.model.state_dict().items() if not torch.equal(v, initial[k])}
    assert "trunk.net.0.weight" in moved and "q.weight" in moved
    assert children_of() == []
