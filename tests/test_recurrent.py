"""The recurrent actor-critic (A3C LSTM, and A2C with an LSTM): the update's pass over a rollout
from its stored state against a step-by-step brute force, in values and gradients; states reset
at episode ends, mid-rollout too; no gradient reaching an earlier rollout; acting and the update
agreeing; CartPoleNoVel-v1; checkpoints, resume and evaluation with a recurrent policy."""
import warnings

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.algos.a2c import _rows, _zero_ended
from asyncrl_lab.envs import make_env
from asyncrl_lab.nets import ActorCritic, RecurrentActor, RecurrentActorCritic, make_actor

T, B, OBS, ACTIONS, CELLS = 6, 3, 4, 3, 8


def network(seed=0):
    torch.manual_seed(seed)
    return RecurrentActorCritic((OBS,), ACTIONS, (16,), CELLS)


def rollout(seed=1):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, B, OBS, generator=g)
    state = tuple(torch.randn(B, CELLS, generator=g) for _ in range(2))
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[2, 0] = resets[4, 2] = resets[5, 0] = True  # episodes that begin mid-rollout
    return obs, state, resets


def brute_force(model, obs, state, resets):
    """Each env on its own, one step at a time through the LSTM cell, its state zeroed by hand
    where a new episode begins: what acting computes, step by step."""
    logits, values = [[None] * B for _ in range(T)], [[None] * B for _ in range(T)]
    for b in range(B):
        h, c = state[0][b:b + 1], state[1][b:b + 1]
        for t in range(T):
            if resets[t, b]:
                h, c = torch.zeros_like(h), torch.zeros_like(c)
            h, c = model.lstm(model.trunk(obs[t, b:b + 1]), (h, c))
            logits[t][b], values[t][b] = model.policy(h)[0], model.value(h)[0, 0]
    return (torch.stack([torch.stack(row) for row in logits]),
            torch.stack([torch.stack(row) for row in values]))


def loss_of(logits, values):
    """Any scalar of both outputs: the gradients of it test the backward pass through time."""
    weights = torch.arange(logits.numel(), dtype=torch.float32).reshape(logits.shape).sin()
    return (logits * weights).sum() + (values ** 2).sum()


def test_the_pass_over_a_rollout_equals_the_step_by_step_brute_force():
    model = network()
    obs, state, resets = rollout()
    logits, values, _ = model.unroll(obs, state, resets)
    expected_logits, expected_values = brute_force(model, obs, state, resets)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values, expected_values, rtol=1e-5, atol=1e-6)

    grads = torch.autograd.grad(loss_of(logits, values), list(model.parameters()))
    expected = torch.autograd.grad(loss_of(expected_logits, expected_values),
                                   list(model.parameters()))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_a_reset_cuts_the_episode_off_from_what_came_before():
    model = network()
    obs, state, resets = rollout()
    logits, _, _ = model.unroll(obs, state, resets)
    other_start = tuple(s + 1.0 for s in state)
    changed_obs = obs.clone()
    changed_obs[:2, 0] += 3.0  # env 0 before its new episode begins at step 2
    again, _, _ = model.unroll(changed_obs, other_start, resets)
    torch.testing.assert_close(again[2:, 0], logits[2:, 0])  # from the reset on: the same
    assert not torch.allclose(again[:2, 0], logits[:2, 0])
    assert not torch.allclose(again[:, 1], logits[:, 1])  # env 1 never reset: its start counts


def test_gradients_flow_through_the_rollout_and_stop_at_its_start():
    model = network()
    obs, state, _ = rollout()
    obs.requires_grad_(True)
    start = tuple(s.clone().requires_grad_(True) for s in state)
    logits, values, _ = model.unroll(obs, start)
    d_obs, d_h = torch.autograd.grad(values[-1].sum(), (obs, start[0]))
    assert d_obs[0].abs().sum() > 0  # the last value depends on the rollout's first step
    assert d_h.abs().sum() > 0  # and on the state it started from ...
    # ... which the actor hands over as a constant: no gradient reaches an earlier rollout
    actor = RecurrentActor(model, seed=0)
    for t in range(T):
        actor.act(obs[t, 0].detach().numpy())
    assert all(not s.requires_grad and s.grad_fn is None for s in actor.state)


def test_acting_and_the_update_compute_the_same_outputs_from_the_same_state():
    model = network()
    obs, _, _ = rollout()
    actor = make_actor(model, seed=0)
    assert isinstance(actor, RecurrentActor)
    start = actor.state
    for t in range(T):
        actor.act(obs[t, 0].numpy())
    value = actor.value(obs[0, 0].numpy())  # reads, does not advance
    _, values, _ = model.unroll(torch.cat([obs[:, :1], obs[:1, :1]]), start)
    for got, want in zip(actor.state, model.unroll(obs[:, :1], start)[2]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert value == pytest.approx(float(values[-1, 0].detach()), rel=1e-5, abs=1e-6)
    actor.reset()
    assert all((s == 0).all() for s in actor.state)


def test_a2c_zeroes_exactly_the_states_of_the_envs_whose_episode_ended():
    h, c = torch.ones(4, CELLS), 2 * torch.ones(4, CELLS)
    ended = np.array([False, True, False, True])
    h2, c2 = _zero_ended((h, c), ended)
    assert h2[ended].abs().sum() == 0 and c2[ended].abs().sum() == 0
    assert (h2[~ended] == 1).all() and (c2[~ended] == 2).all()
    assert [tuple(m.shape) for m in _rows((h, c), ended)] == [(2, CELLS), (2, CELLS)]
    assert _zero_ended(None, ended) is None and _rows(None, ended) is None


def test_a_feed_forward_network_unrolls_as_its_forward_pass():
    torch.manual_seed(0)
    model = ActorCritic((OBS,), ACTIONS, (16,))
    obs = torch.randn(T, B, OBS)
    logits, values, state = model.unroll(obs, model.initial_state(B))
    expected_logits, expected_values = model(obs)
    assert state is None
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(values, expected_values)


def test_cartpole_without_velocities_passes_gymnasiums_checks():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the passive checker's warnings too (reset without seed=)
        check_env(gym.make("CartPoleNoVel-v1").unwrapped, skip_render_check=True)
        env = gym.make("CartPoleNoVel-v1")  # with gymnasium's passive checker, as workers make it
        env.reset(seed=0)
        env.step(0)


def test_cartpole_without_velocities_shows_position_and_angle_only():
    env, full = make_env("CartPoleNoVel-v1", seed=3), make_env("CartPole-v1", seed=3)
    obs, full_obs = env.reset(seed=3)[0], full.reset(seed=3)[0]
    assert env.observation_space.shape == (2,) and env.spec.max_episode_steps == 500
    np.testing.assert_array_equal(obs, full_obs[[0, 2]])
    for action in [0, 1, 1, 0, 1]:
        obs, full_obs = env.step(action)[0], full.step(action)[0]
        np.testing.assert_array_equal(obs, full_obs[[0, 2]])


@pytest.mark.parametrize("algo, options", [("a3c", dict(workers=2)), ("a2c", dict(n_envs=4))])
def test_a_recurrent_run_saves_resumes_and_evaluates(tmp_path, algo, options):
    run = lab.train(algo, env="CartPoleNoVel-v1", lstm_cells=16, total_steps=3_000,
                    progress=False, out=tmp_path / "run", seed=0, **options)
    assert isinstance(run.model, RecurrentActorCritic) and run.model.lstm_cells == 16
    saved = lab.load(tmp_path / "run")
    assert saved.config.lstm_cells == 16
    for a, b in zip(saved.model.state_dict().values(), run.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    resumed = lab.train(resume=tmp_path / "run", total_steps=6_000, progress=False)
    assert resumed.global_step >= 6_000 and isinstance(resumed.model, RecurrentActorCritic)
    result = resumed.evaluate(episodes=3, greedy=True)
    assert len(result["returns"]) == 3 and all(r >= 1 for r in result["returns"])


@pytest.mark.parametrize("truncated", [True, False])
def test_the_gradient_reaches_back_to_the_rollout_start_or_the_episode_start(truncated):
    from asyncrl_lab.book.memory import gradient_reach

    obs = torch.randn(23, OBS, generator=torch.Generator().manual_seed(3))
    reach = gradient_reach(network(), obs, t_max=5, at=17, truncated=truncated)
    first = 15 if truncated else 0  # the rollout holding step 17 starts at 15
    assert (reach[:first] == 0).all() and (reach[18:] == 0).all()
    assert (reach[first:18] > 0).all()
