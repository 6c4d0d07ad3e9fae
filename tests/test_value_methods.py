"""The machinery of the value-based methods: the paper's epsilon draw, the epsilon schedule, the
target network's update every I_target global steps, the squared TD loss, and the gradient each
update applies, accumulated over I_AsyncUpdate steps (S1) or a t_max rollout (S2), checked
against a step-by-step brute-force computation."""
import types

import gymnasium as gym
import numpy as np
import pytest
import torch

from asyncrl_lab.algos import n_step_q, one_step_q, one_step_sarsa
from asyncrl_lab.config import NStepQConfig, OneStepQConfig
from asyncrl_lab.losses import q_value_loss
from asyncrl_lab.returns import bootstrap_value, n_step_returns, q_learning_target, sarsa_target
from asyncrl_lab.parallel import worker_seeds
from asyncrl_lab.value_methods import (EpsilonGreedy, TargetNetwork, build_shared,
                                       draw_final_epsilon, epsilon_at, worker_final_epsilons)


def test_each_worker_draws_its_final_epsilon_with_the_papers_probabilities():
    # Workers get seeds as the runtime makes them; each draws once from its own generator.
    config = OneStepQConfig()
    n = 20_000
    seeds = np.random.SeedSequence(7).generate_state(n).tolist()
    draws = np.array([draw_final_epsilon(config, np.random.default_rng(s)) for s in seeds])
    counts = np.array([(draws == e).sum() for e in (0.1, 0.01, 0.5)])
    assert counts.sum() == n  # nothing else is ever drawn
    expected = n * np.array([0.4, 0.3, 0.3])
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 13.82, (counts, chi2)  # the chi-square test with 2 dof at p = 0.001


def test_each_workers_policy_uses_the_epsilon_the_run_reports_for_it():
    config = OneStepQConfig(workers=8, seed=3, hidden_sizes=(8,))
    net = one_step_q.make_network(config, (4,), 2)
    policies = [EpsilonGreedy.for_worker(types.SimpleNamespace(seed=seed, config=config), net)
                for seed in worker_seeds(config)]
    assert [p.final_epsilon for p in policies] == worker_final_epsilons(config)
    assert len(set(worker_final_epsilons(config))) > 1  # the workers explore differently


def test_epsilon_anneals_linearly_from_one_to_the_final_value():
    assert epsilon_at(0, 0.1, 1000) == 1.0
    assert epsilon_at(500, 0.1, 1000) == pytest.approx(0.55)
    assert epsilon_at(1000, 0.1, 1000) == pytest.approx(0.1)
    assert epsilon_at(50_000, 0.1, 1000) == pytest.approx(0.1)


def test_epsilon_greedy_explores_with_probability_epsilon():
    policy = EpsilonGreedy(lambda obs: np.array([0.0, 1.0, 0.0]), 3, final_epsilon=0.5,
                           anneal_steps=10, rng=np.random.default_rng(0))
    actions = np.array([policy.act(None, global_step=100) for _ in range(30_000)])
    # greedy (action 1) with probability 1 - 0.5 + 0.5 / 3; the others 0.5 / 3 each
    np.testing.assert_allclose(np.bincount(actions, minlength=3) / len(actions),
                               [1 / 6, 2 / 3, 1 / 6], atol=0.01)
    assert policy.act(None, global_step=0) in (0, 1, 2)


def test_q_value_loss_is_half_the_summed_squared_td_error():
    q_values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    # (3 - Q(s0, 1))^2 / 2 + (1 - Q(s1, 0))^2 / 2 = 0.5 + 2
    assert float(q_value_loss(q_values, torch.tensor([1, 0]), torch.tensor([3.0, 1.0]))) == 2.5


def small_shared(**options):
    config = OneStepQConfig(hidden_sizes=(8,), **options)
    return config, build_shared(config, (4,), 2)


def test_the_target_network_starts_as_a_copy_and_moves_exactly_every_i_target_steps():
    config, shared = small_shared(target_update_interval=1000)
    for mine, theirs in zip(shared["target"].parameters(), shared["model"].parameters()):
        assert torch.equal(mine, theirs)
    target = TargetNetwork(shared, config.target_update_interval)
    source = list(shared["model"].parameters())
    copies = []
    for step in range(1, 3501):
        with torch.no_grad():
            for p in source:
                p.fill_(step)  # theta changes at every step
        if target.maybe_sync(step):
            copies.append(step)
        held = {float(p.detach().flatten()[0]) for p in shared["target"].parameters()}
        assert held == {float(copies[-1])} if copies else held != {float(step)}
    assert copies == [1000, 2000, 3000]
    assert int(shared["target_version"]) == 3


def test_with_t_max_steps_at_a_time_the_target_moves_once_per_multiple_passed():
    config, shared = small_shared(target_update_interval=100)
    target = TargetNetwork(shared, config.target_update_interval)
    copies = [T for T in range(0, 1000, 7) if target.maybe_sync(T)]
    assert copies == [105, 203, 301, 406, 504, 602, 700, 805, 903]


def test_two_workers_crossing_the_same_multiple_copy_once():
    config, shared = small_shared(target_update_interval=100)
    first, second = (TargetNetwork(shared, 100) for _ in range(2))
    assert first.maybe_sync(101) and not second.maybe_sync(102)
    assert second.maybe_sync(200) and not first.maybe_sync(203)


class RecordingContext:
    """Runs a real worker in this process, alone, and records every update it applies: the
    parameters it synchronized before the update and the gradient it sends."""

    def __init__(self, config, shared, steps):
        self.config, self.shared, self.model = config, shared, shared["model"]
        self.optimizer = shared["optimizer"]
        self.rank, self.seed, self.steps, self.limit = 0, 1234, 0, steps
        self.synced, self.updates = None, []

    @property
    def global_step(self):
        return self.steps

    def running(self):
        return self.steps < self.limit

    def add_steps(self, n):
        self.steps += n
        return self.steps

    @torch.no_grad()
    def sync(self, local):
        for mine, theirs in zip(local.parameters(), self.model.parameters()):
            mine.copy_(theirs)
        self.synced = [p.clone() for p in local.parameters()]

    def apply_gradients(self, local, lr):
        grads = [p.grad.clone() for p in local.parameters()]
        self.updates.append((self.steps, self.synced, grads))
        self.optimizer.step(grads, lr)

    def episode(self, episode_return, length):
        pass

    def diagnose(self, global_step, lr, grad_norm, terms):
        pass


class Transitions(gym.Wrapper):
    """Logs (s, a, r, s', terminated, truncated) for every step."""

    log = []

    def reset(self, **kwargs):
        self.obs, info = self.env.reset(**kwargs)
        return self.obs, info

    def step(self, action):
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        Transitions.log.append((self.obs, action, reward, next_obs, terminated, truncated))
        self.obs = next_obs
        return next_obs, reward, terminated, truncated, info


def run_recorded(module, config, monkeypatch, steps):
    real_make_env = one_step_q.make_env
    Transitions.log = []
    for loop in (one_step_q, n_step_q):  # the modules whose loops make the envs
        monkeypatch.setattr(loop, "make_env", lambda *a, **k: Transitions(real_make_env(*a, **k)))
    torch.manual_seed(0)
    shared = build_shared(config, (4,), 2)
    target = [p.clone() for p in shared["target"].parameters()]  # I_target is never reached
    ctx = RecordingContext(config, shared, steps)
    module.worker(ctx)
    return ctx, list(Transitions.log), target


def brute_force_gradient(config, params, target_params, transitions_and_targets):
    """sum over the transitions of d(y - Q(s, a; theta'))^2 / 2 / d theta', one step at a time."""
    net = one_step_q.make_network(config, (4,), 2)
    total = [torch.zeros_like(p) for p in params]
    with torch.no_grad():
        for mine, value in zip(net.parameters(), params):
            mine.copy_(value)
    for (obs, action, *_), y in transitions_and_targets:
        net.zero_grad()
        q = net(torch.as_tensor(obs).unsqueeze(0))[0, action]
        (0.5 * (torch.tensor(float(y)) - q) ** 2).backward()
        for acc, p in zip(total, net.parameters()):
            acc += p.grad
    return total


def target_q(config, target_params, obs):
    net = one_step_q.make_network(config, (4,), 2)
    with torch.no_grad():
        for mine, value in zip(net.parameters(), target_params):
            mine.copy_(value)
        return net(torch.as_tensor(obs).unsqueeze(0))[0].numpy()


@pytest.mark.parametrize("module, one_step_target",
                         [(one_step_q, q_learning_target), (one_step_sarsa, sarsa_target)])
def test_one_step_updates_accumulate_i_async_update_steps_or_up_to_the_episode_end(
        module, one_step_target, monkeypatch):
    config = OneStepQConfig(hidden_sizes=(8,), async_update_interval=5, epsilon_anneal_steps=50,
                            target_update_interval=10**9, max_grad_norm=1e9, lr=1e-2)
    ctx, log, target = run_recorded(module, config, monkeypatch, steps=200)
    assert len(log) == 200 and not any(t[5] for t in log)  # no time-limit truncation here
    # Split the transitions as Algorithm S1 does: every 5 steps, or when s' is terminal.
    windows, current = [], []
    for i, transition in enumerate(log):
        # the action taken in s' (Sarsa's a'): the next transition's, unless s' is terminal
        next_action = log[i + 1][1] if i + 1 < len(log) and not transition[4] else 0
        current.append((transition, one_step_target(transition[2], transition[4],
                                                    target_q(config, target, transition[3]),
                                                    next_action, config.gamma)))
        if len(current) == 5 or transition[4]:
            windows.append(current)
            current = []
    assert len(ctx.updates) == len(windows) > 40
    assert any(len(w) < 5 for w in windows) and any(len(w) == 5 for w in windows)
    step = 0
    for (applied_at, synced, grads), window in zip(ctx.updates, windows):
        step += len(window)
        assert applied_at == step  # one update per window, right after its last step
        expected = brute_force_gradient(config, synced, target, window)
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_n_step_q_accumulates_over_each_t_max_rollout(monkeypatch):
    config = NStepQConfig(hidden_sizes=(8,), t_max=5, epsilon_anneal_steps=50,
                          target_update_interval=10**9, max_grad_norm=1e9, lr=1e-2)
    ctx, log, target = run_recorded(n_step_q, config, monkeypatch, steps=200)
    rollouts, current = [], []
    for transition in log:
        current.append(transition)
        if len(current) == 5 or transition[4] or transition[5]:
            rollouts.append(current)
            current = []
    assert len(ctx.updates) == len(rollouts) > 35
    for (applied_at, synced, grads), rollout in zip(ctx.updates, rollouts):
        terminated = rollout[-1][4]
        last = 0.0 if terminated else target_q(config, target, rollout[-1][3]).max()
        returns = n_step_returns([t[2] for t in rollout], bootstrap_value(terminated, last),
                                 config.gamma)
        expected = brute_force_gradient(config, synced, target, zip(rollout, returns))
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
