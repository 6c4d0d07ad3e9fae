"""ACER: Retrace, the truncated importance sampling with bias correction, the trust-region
projection (each against a hand or brute-force computation), the worker's whole update against a
step-by-step brute force of Algorithm 2, the average policy network's soft update, the replay
memory, checkpoints and resume, and learning."""
import math
import types

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.algos import ALGORITHMS, acer
from asyncrl_lab.config import ACERConfig
from asyncrl_lab.losses import acer_policy_objective, average_kl_gradient, trust_region_projection
from asyncrl_lab.returns import n_step_returns, retrace_targets

from helpers import InProcessContext, children_of


# --- Retrace -------------------------------------------------------------------------------------

REWARDS, Q_TAKEN, VALUES, RHO_BAR = [1.0, 2.0, 3.0], [0.5, 1.0, 2.0], [1.0, 1.5, 2.5], [1.0, 0.5, 1.0]


def test_retrace_by_hand_when_the_segment_terminates():
    # Q_ret starts at 0 (x_3 terminal), gamma = 0.5:
    # i=2: Q_ret = 3 + .5*0 = 3;        carried: 1.0*(3 - 2) + 2.5 = 3.5
    # i=1: Q_ret = 2 + .5*3.5 = 3.75;   carried: 0.5*(3.75 - 1) + 1.5 = 2.875
    # i=0: Q_ret = 1 + .5*2.875 = 2.4375
    targets = retrace_targets(REWARDS, Q_TAKEN, VALUES, RHO_BAR, bootstrap=0.0, gamma=0.5)
    np.testing.assert_allclose(targets, [2.4375, 3.75, 3.0])


def test_retrace_by_hand_when_the_segment_is_truncated():
    # a time limit: Q_ret starts at V(x_3) = 4
    # i=2: Q_ret = 3 + .5*4 = 5;        carried: 1.0*(5 - 2) + 2.5 = 5.5
    # i=1: Q_ret = 2 + .5*5.5 = 4.75;   carried: 0.5*(4.75 - 1) + 1.5 = 3.375
    # i=0: Q_ret = 1 + .5*3.375 = 2.6875
    targets = retrace_targets(REWARDS, Q_TAKEN, VALUES, RHO_BAR, bootstrap=4.0, gamma=0.5)
    np.testing.assert_allclose(targets, [2.6875, 4.75, 5.0])


def test_retrace_limits_n_step_returns_and_one_step_targets():
    rng = np.random.default_rng(0)
    rewards, q_taken, values = rng.normal(size=(3, 6))
    # full traces and Q(x_i, a_i) = V(x_i): the n-step returns
    np.testing.assert_allclose(retrace_targets(rewards, values, values, np.ones(6), 2.0, 0.9),
                               n_step_returns(rewards, 2.0, 0.9))
    # cut traces: one-step targets r_i + gamma V(x_{i+1}), V(x_6) the bootstrap
    np.testing.assert_allclose(retrace_targets(rewards, q_taken, values, np.zeros(6), 2.0, 0.9),
                               rewards + 0.9 * np.append(values[1:], 2.0))


def test_retrace_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"q_taken must have the rewards' shape \(3,\)"):
        retrace_targets(REWARDS, [1.0], VALUES, RHO_BAR, 0.0, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        retrace_targets(REWARDS, Q_TAKEN, VALUES, RHO_BAR, 0.0, 0.0)


# --- truncated importance sampling with bias correction ------------------------------------------

def policy_gradient(f, q, action, q_ret, mu, c, bias_correction=True, entropy_beta=0.0):
    """g: the gradient of ACER's objective with respect to f, for one state."""
    phi = torch.tensor(f, dtype=torch.float64, requires_grad=True)
    objective = acer_policy_objective(phi[None], torch.tensor(q)[None], torch.tensor([action]),
                                      torch.tensor([q_ret]), torch.tensor(mu)[None], c,
                                      bias_correction, entropy_beta)
    (g,) = torch.autograd.grad(objective.sum(), phi)
    return g.numpy()


def test_the_policy_gradient_terms_equal_their_formulas_action_by_action():
    f, mu = np.array([0.5, 0.3, 0.15, 0.05]), np.array([0.1, 0.2, 0.3, 0.4])
    q, q_ret, c, beta = np.array([1.0, -2.0, 0.5, 3.0]), 1.7, 1.5, 0.1
    v = f @ q
    rho = f / mu  # 5, 1.5, 0.5, 0.125
    for action in range(4):
        want = np.zeros(4)
        want[action] += min(c, rho[action]) * (q_ret - v) / f[action]   # truncated IS
        for a in range(4):
            want[a] += max(0.0, 1 - c / rho[a]) * f[a] * (q[a] - v) / f[a]  # bias correction
            want[a] += -beta * (math.log(f[a]) + 1)                     # d H(f) / d f(a)
        got = policy_gradient(f, q, action, q_ret, mu, c, entropy_beta=beta)
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("c", [0.5, 1.0, 10.0])
def test_truncation_with_bias_correction_is_unbiased_and_truncation_alone_is_not(c):
    """E_{a ~ mu}[g(a)] with Q_ret = Q(x, a) equals the on-policy gradient
    E_{a ~ f}[grad log f(a) (Q(a) - V)] = Q - V, enumerating every action."""
    f, mu = np.array([0.6, 0.25, 0.1, 0.05]), np.array([0.05, 0.15, 0.3, 0.5])
    q = np.array([2.0, -1.0, 0.5, 4.0])
    on_policy = q - f @ q
    expectation = sum(mu[a] * policy_gradient(f, q, a, q[a], mu, c) for a in range(4))
    np.testing.assert_allclose(expectation, on_policy, rtol=1e-6)
    truncated_only = sum(mu[a] * policy_gradient(f, q, a, q[a], mu, c, bias_correction=False)
                         for a in range(4))
    truncated = (f / mu > c).any()  # with rho(0) = 12 every c here truncates
    assert truncated and not np.allclose(truncated_only, on_policy, rtol=1e-3)


# --- the trust region ----------------------------------------------------------------------------

def test_the_projection_is_the_closed_form_and_keeps_the_linearized_kl_within_delta():
    rng = np.random.default_rng(1)
    f = torch.softmax(torch.tensor(rng.normal(size=(200, 5))), -1)
    f_avg = torch.softmax(torch.tensor(rng.normal(size=(200, 5))), -1)
    g = torch.tensor(rng.normal(size=(200, 5))) * 3
    delta = 1.0
    k = average_kl_gradient(f_avg, f)
    torch.testing.assert_close(k, -f_avg / f, rtol=1e-5, atol=0)  # f floored by 1e-8
    z = trust_region_projection(g, k, delta)
    projected = 0
    for gi, ki, zi in zip(g.numpy(), k.numpy(), z.numpy()):
        scale = max(0.0, (ki @ gi - delta) / (ki @ ki))
        np.testing.assert_allclose(zi, gi - scale * ki, rtol=1e-9, atol=1e-12)
        assert ki @ zi <= delta + 1e-9
        if scale > 0:  # on the boundary, and no feasible point is nearer g
            projected += 1
            assert ki @ zi == pytest.approx(delta)
            for _ in range(20):
                other = zi + rng.normal(size=5)
                if ki @ other <= delta:
                    assert np.linalg.norm(gi - other) >= np.linalg.norm(gi - zi)
        else:
            np.testing.assert_array_equal(zi, gi)
    assert 0 < projected < 200


# --- the replay memory ---------------------------------------------------------------------------

def segment(length, start=0):
    states = np.arange(start, start + length + 1, dtype=np.float32)[:, None]
    return acer.Segment(states, np.zeros(length, np.int64), np.ones(length),
                        np.full((length, 2), 0.5, np.float32), False)


def test_the_memory_keeps_its_capacity_in_steps_and_drops_the_oldest():
    memory = acer.ReplayMemory(capacity=10)
    for start in range(0, 16, 4):
        memory.add(segment(4, start))
    assert memory.steps == 8 and [s.states[0, 0] for s in memory.segments] == [8, 12]
    rng = np.random.default_rng(0)
    assert {memory.sample(rng).states[0, 0] for _ in range(50)} == {8, 12}


class Recorder(InProcessContext):
    """Runs the real ACER worker in this process until it has made `updates` updates, recording
    at each: the parameters theta' the gradient was computed at, the average network's
    parameters at that time, the (unclipped) gradient, and the shared parameters after the step."""

    def apply_gradients(self, local, lr):
        clone = lambda params: [p.detach().clone() for p in params]  # noqa: E731
        record = {"params": clone(local.parameters()),
                  "grads": [p.grad.clone() for p in local.parameters()],
                  "average": clone(self.shared["average_model"].parameters())}
        self.optimizer.step(record["grads"], lr)
        record["after"] = clone(self.model.parameters())
        self.records.append(record)


def run_recorded(monkeypatch, updates, **options):
    config = ACERConfig(**{**dict(env="helpers:ShortCartPole-v0", t_max=5, replay_start=0,
                                  replay_ratio=2.0, lr=0.05, gamma=0.9, seed=0), **options})
    segments, real_update = [], acer.acer_update
    monkeypatch.setattr(acer, "acer_update", lambda ctx, local, average, seg, step: (
        segments.append(seg), real_update(ctx, local, average, seg, step)))
    torch.manual_seed(0)
    shared = acer.build_shared(config, (4,), 2)
    recorder = Recorder(config, shared, updates)
    acer.worker(recorder)
    return config, shared, recorder.records, segments


def brute_force_gradient(config, params, average, seg):
    """Algorithm 2's loop for one segment, one state and one action at a time, in float64."""
    net, avg = (acer.make_network(config, (4,), 2).double() for _ in range(2))
    with torch.no_grad():
        for module, values in ((net, params), (avg, average)):
            for p, v in zip(module.parameters(), values):
                p.copy_(v)
    states = torch.as_tensor(seg.states, dtype=torch.float64)
    with torch.no_grad():
        logits, Q = net(states)
        F, F_avg = torch.softmax(logits, -1).numpy(), torch.softmax(avg(states)[0], -1).numpy()
        Q = Q.numpy()
    V = (F * Q).sum(-1)
    c, delta, beta = config.truncation_c, config.trust_region_delta, config.entropy_beta
    q_ret = 0.0 if seg.terminated else V[-1]
    total = [torch.zeros_like(p) for p in net.parameters()]
    seen = {"truncated": 0, "corrected": 0, "projected": 0}
    for i in reversed(range(len(seg))):
        q_ret = seg.rewards[i] + config.gamma * q_ret
        f, q, mu, a_i = F[i], Q[i], seg.behaviour_probs[i].astype(np.float64), seg.actions[i]
        rho = f / mu
        g = np.zeros(2)
        g[a_i] += min(c, rho[a_i]) * (q_ret - V[i]) / f[a_i]
        for a in range(2):
            g[a] += max(0.0, 1 - c / rho[a]) * (q[a] - V[i]) - beta * (math.log(f[a]) + 1)
        k = -F_avg[i] / f
        scale = max(0.0, (k @ g - delta) / (k @ k)) if config.trust_region else 0.0
        z = g - scale * k
        seen["truncated"] += rho[a_i] > c
        seen["corrected"] += (rho > c).any()
        seen["projected"] += scale > 0
        net.zero_grad()
        logits, q_values = net(states[i])
        loss = -(torch.softmax(logits, -1) @ torch.as_tensor(z)) \
            + config.q_loss_coef * 0.5 * (q_ret - q_values[a_i]) ** 2
        loss.backward()
        for acc, p in zip(total, net.parameters()):
            acc += p.grad
        q_ret = min(1.0, rho[a_i]) * (q_ret - q[a_i]) + V[i]
    return total, seen


@pytest.mark.parametrize("trust_region", [True, False])
def test_every_update_is_algorithm_2_computed_step_by_step(monkeypatch, trust_region):
    # a small c and delta, so that truncation, its correction and the projection all happen
    config, shared, records, segments = run_recorded(
        monkeypatch, 60, truncation_c=1.2, trust_region_delta=0.05, trust_region=trust_region,
        entropy_beta=0.05)
    assert len(records) == len(segments) >= 60
    assert any(s.terminated for s in segments) and any(not s.terminated and len(s) < 5 for s in segments)
    seen = {"truncated": 0, "corrected": 0, "projected": 0}
    for record, seg in zip(records, segments):
        want, counts = brute_force_gradient(config, record["params"], record["average"], seg)
        for key in seen:
            seen[key] += counts[key]
        scale = max(float(w.abs().max()) for w in want)  # float32 against float64
        for got, expected in zip(record["grads"], want):
            torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5 * scale)
    assert seen["truncated"] and seen["corrected"]
    assert bool(seen["projected"]) == trust_region


def test_the_shared_average_network_moves_by_the_soft_update_rule(monkeypatch):
    config, shared, records, _ = run_recorded(monkeypatch, 8)
    alpha = config.average_decay
    averages = [r["average"] for r in records[1:]] + [list(shared["average_model"].parameters())]
    for record, after in zip(records, averages):
        for before, theta, moved in zip(record["average"], record["after"], after):
            torch.testing.assert_close(moved.detach(), alpha * before + (1 - alpha) * theta,
                                       rtol=0, atol=1e-7)
    first, last = records[0]["average"], averages[-1]
    assert all(not torch.equal(a, b) for a, b in zip(first, last))  # it moved
    model = list(shared["model"].parameters())
    assert any(not torch.allclose(a, m) for a, m in zip(last, model))  # and lags theta


def test_replayed_segments_follow_their_episodes(monkeypatch):
    """CountingEnv's observations are (episode, step, terminal): every segment, played or replayed,
    is consecutive steps of one episode; it is marked terminated exactly when its last state is
    terminal; a truncated one ends on the episode's last state, not on the next reset."""
    _, _, records, segments = run_recorded(monkeypatch, 120, env="helpers:CountingEnv-v0",
                                           replay_ratio=4.0)
    replayed = 0
    played = {}
    for seg in segments:
        episode, t, terminal = seg.states[:, 0], seg.states[:, 1], seg.states[:, 2]
        assert (episode == episode[0]).all()
        np.testing.assert_array_equal(np.diff(t), 1)
        assert not terminal[:-1].any() and seg.terminated == bool(terminal[-1])
        if not seg.terminated and len(seg) < 5:
            assert t[-1] == 12  # cut by the time limit, on the episode's own last state
        key = (episode[0], t[0])
        replayed += key in played
        if key in played:
            assert played[key] is seg  # a replayed segment is one that was played
        played[key] = seg
    assert replayed > 50


# --- runs: checkpoints, resume, learning ---------------------------------------------------------

def test_the_checkpoint_keeps_the_average_network_and_resume_restores_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run = lab.train("acer", env="CartPole-v1", workers=2, total_steps=3000, seed=0, progress=False,
                    out=out, replay_start=500)
    saved = lab.load(out)
    average = saved.shared_modules["average_model"]
    for name, value in run.shared_modules["average_model"].items():
        torch.testing.assert_close(average[name], value, rtol=0, atol=0)
    assert any(not torch.allclose(average[n], p) for n, p in saved.model.state_dict().items())
    # resume: the workers are handed the saved average network, not a copy of the model
    reports = tmp_path / "reports"
    reports.mkdir()
    monkeypatch.setenv("ASYNCRL_REPORT_DIR", str(reports))
    real = ALGORITHMS["acer"]
    monkeypatch.setitem(ALGORITHMS, "acer", types.SimpleNamespace(
        Config=real.Config, build_shared=real.build_shared, make_network=real.make_network,
        worker=__import__("helpers").average_reporting_worker))
    lab.train(resume=out, total_steps=4000, progress=False)
    for rank in range(2):
        handed = torch.load(reports / f"average.{rank}.pt")
        for name, value in average.items():
            torch.testing.assert_close(handed[name], value, rtol=0, atol=0)
    assert children_of() == []


@pytest.mark.slow
def test_acer_learns_cartpole():
    """The benchmark's target (benchmarks/cartpole_time_to_solve.py): a rolling-100 mean of 475
    within the preset's budget (seed 0 reached it after ~60k of 150k steps in every study run).
    Then 20 sampled episodes average 300 or more. Stopped at a mean of 400 instead, the policy
    was once caught in a dip (5 episodes averaged 232 in a fresh-clone run, where three runs
    here gave 500): a mean of 475 leaves no room for one."""
    run = lab.train("acer", env="CartPole-v1", seed=0, workers=2, progress=False,
                    stop_at_return=475)
    assert run.history.first_reaching(475) is not None, run.message
    assert run.evaluate(episodes=20)["mean"] >= 300
    assert children_of() == []


def test_acer_trains_the_papers_network_on_atari():
    """A short Pong run with replay: the conv net's weights and the average network both move."""
    torch.manual_seed(0)
    initial = acer.make_network(ACERConfig(env="PongNoFrameskip-v4"), (4, 84, 84), 6).state_dict()
    run = lab.train("acer", env="PongNoFrameskip-v4", workers=2, total_steps=400, t_max=20,
                    replay_start=100, seed=0, progress=False)
    assert run.global_step >= 400 and run.model.obs_shape == (4, 84, 84)
    conv = run.model.trunk.net[0].weight
    assert not torch.allclose(conv, initial["trunk.net.0.weight"])
    average = run.shared_modules["average_model"]["trunk.net.0.weight"]
    assert not torch.allclose(average, initial["trunk.net.0.weight"])
    assert not torch.allclose(average, conv)
    assert children_of() == []
