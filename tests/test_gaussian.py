"""The math of continuous actions (asyncrl_lab.gaussian) against torch.distributions, closed
forms and brute force."""
import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from asyncrl_lab import gaussian
from asyncrl_lab.losses import trust_region_projection


def diagonal(mean, std):
    return Independent(Normal(mean, std), 1)


def test_log_prob_and_entropy_are_those_of_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g, dtype=torch.float64)
    std = torch.rand(5, 3, generator=g, dtype=torch.float64) + 0.1
    action = torch.randn(5, 3, generator=g, dtype=torch.float64) * 2
    torch.testing.assert_close(gaussian.log_prob(mean, std, action),
                               diagonal(mean, std).log_prob(action))
    torch.testing.assert_close(gaussian.entropy(std), diagonal(mean, std).entropy())
    # by hand, one dimension: N(0, 1) at 0 has density 1/sqrt(2 pi)
    assert gaussian.log_prob(torch.zeros(1), torch.ones(1), torch.zeros(1)).item() == \
        pytest.approx(-0.5 * math.log(2 * math.pi))


def test_kl_and_its_gradient():
    g = torch.Generator().manual_seed(1)
    mean_a, mean = (torch.randn(4, 2, generator=g, dtype=torch.float64) for _ in range(2))
    std_a, std = (torch.rand(4, 2, generator=g, dtype=torch.float64) + 0.2 for _ in range(2))
    torch.testing.assert_close(gaussian.kl(mean_a, std_a, mean, std),
                               kl_divergence(diagonal(mean_a, std_a), diagonal(mean, std)))
    assert torch.all(gaussian.kl(mean, std, mean, std).abs() < 1e-12)
    mean.requires_grad_(True)
    std.requires_grad_(True)
    gaussian.kl(mean_a, std_a, mean, std).sum().backward()
    k_mean, k_std = gaussian.kl_gradient(mean_a, std_a, mean.detach(), std.detach())
    torch.testing.assert_close(k_mean, mean.grad)
    torch.testing.assert_close(k_std, std.grad)


def test_the_stochastic_dueling_estimate():
    # by hand: V = 1, A(x, a) = 3, A at the samples 1, 2, 3
    q = gaussian.stochastic_dueling_q(torch.tensor(1.0), torch.tensor(3.0),
                                      torch.tensor([1.0, 2.0, 3.0]))
    assert q.item() == 2.0
    # in expectation over a ~ f and the u_i ~ f, Q~ averages to V, whatever A is
    g = torch.Generator().manual_seed(2)
    draws, n = 200_000, 5
    actions = 0.5 + 1.5 * torch.randn(draws, generator=g, dtype=torch.float64)
    samples = 0.5 + 1.5 * torch.randn(draws, n, generator=g, dtype=torch.float64)

    def advantage(a):
        return a ** 2 - 3 * a

    q = gaussian.stochastic_dueling_q(torch.tensor(7.0, dtype=torch.float64),
                                      advantage(actions), advantage(samples))
    assert q.mean().item() == pytest.approx(7.0, abs=0.05)


def test_the_dth_root_keeps_the_trace_on_one_dimensions_scale():
    """rho over d dimensions is the product of d per-dimension ratios: min(1, rho) shrinks as d
    grows, min(1, rho^(1/d)) does not. Policy N(0, 1), behaviour N(0.5, 1) in every dimension."""
    g = torch.Generator().manual_seed(3)
    assert gaussian.truncated_trace(torch.tensor(0.25), 2).item() == 0.5
    assert gaussian.truncated_trace(torch.tensor(4.0), 2).item() == 1.0
    traces = {}
    for d in (1, 20):
        actions = 0.5 + torch.randn(100_000, d, generator=g, dtype=torch.float64)  # from mu
        zeros, ones = torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)
        rho = torch.exp(gaussian.log_prob(zeros, ones, actions)
                        - gaussian.log_prob(zeros + 0.5, ones, actions))
        traces[d] = (rho.clamp(max=1).mean().item(), gaussian.truncated_trace(rho, d).mean().item())
    assert traces[20][0] < 0.5 * traces[1][0]  # the plain truncation cuts the trace more with d
    assert traces[20][1] >= traces[1][1]  # the d-th root does not
    with pytest.raises(ValueError, match="action_dim"):
        gaussian.truncated_trace(torch.tensor(1.0), 0)


@pytest.mark.parametrize("c", [0.5, 10.0])
def test_the_policy_gradient_is_unbiased_for_the_on_policy_one(c):
    """E over a ~ mu and a' ~ f of the objective's gradient equals grad E_f[Q(a)] when Q_opc is the
    true Q: min(c, rho) / rho + [1 - c / rho]_+ = 1. f = N(m, s), mu = N(0.5, 1.2),
    Q(a) = -(a - 1)^2, so E_f[Q] = -((m - 1)^2 + s^2) and its gradient is (-2(m - 1), -2s)."""
    g = torch.Generator().manual_seed(4)
    m = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    draws = 400_000
    taken = 0.5 + 1.2 * torch.randn(draws, 1, generator=g, dtype=torch.float64)
    fresh = m.detach() + s.detach() * torch.randn(draws, 1, generator=g, dtype=torch.float64)
    behaviour_m, behaviour_s = torch.tensor([0.5], dtype=torch.float64), \
        torch.tensor([1.2], dtype=torch.float64)

    def q(a):
        return -((a - 1.0) ** 2).sum(-1)

    value = -((m.detach() - 1) ** 2 + s.detach() ** 2).sum()
    log_f_taken, log_f_fresh = gaussian.log_prob(m, s, taken), gaussian.log_prob(m, s, fresh)
    rho_taken = torch.exp(log_f_taken - gaussian.log_prob(behaviour_m, behaviour_s, taken))
    rho_fresh = torch.exp(log_f_fresh - gaussian.log_prob(behaviour_m, behaviour_s, fresh))
    objective = gaussian.policy_objective(log_f_taken, log_f_fresh, rho_taken, rho_fresh,
                                          q(taken), q(fresh), value.expand(draws), c)
    objective.mean().backward()
    assert m.grad.item() == pytest.approx(-2 * (0.2 - 1), abs=0.03)
    assert s.grad.item() == pytest.approx(-2 * 0.8, abs=0.03)


def test_the_trust_region_step_on_gaussian_statistics_is_the_closest_allowed():
    """With phi = (mu, sigma) and k from kl_gradient, the projection is the point nearest g among
    those with k . z <= delta (brute force over random allowed points)."""
    g = torch.Generator().manual_seed(5)
    mean_a, mean = torch.tensor([0.0, 0.5]), torch.tensor([0.3, 0.1])
    std_a, std = torch.tensor([1.0, 0.7]), torch.tensor([0.8, 0.9])
    k = torch.cat(gaussian.kl_gradient(mean_a, std_a, mean, std)).unsqueeze(0)
    grad = 3 * k + torch.tensor([[0.2, -0.1, 0.4, 0.3]])  # a step that leaves the trust region
    delta = 0.5
    z = trust_region_projection(grad, k, delta)
    assert (k * z).sum().item() == pytest.approx(delta, abs=1e-5)
    candidates = z + 2 * torch.randn(100_000, 4, generator=g)
    allowed = candidates[(candidates * k).sum(-1) <= delta]
    assert ((allowed - grad) ** 2).sum(-1).min() >= ((z - grad) ** 2).sum() - 1e-6
