"""The math of policies over continuous actions: a diagonal Gaussian f(.|x) = N(mu(x), sigma(x)^2)
per action dimension, and what ACER adds for it (Wang et al. 2017, Section 5 and Algorithm 3).

Pure functions of tensors, each tested against torch.distributions, a closed form or brute force
(tests/test_gaussian.py). The policy's statistics phi(x) are (mu, sigma): the Gaussian A3C of Mnih
et al. (2016, Section 5.2) outputs mu from a linear layer and sigma^2 from a softplus one, and the
trust region of continuous ACER acts on these statistics as the discrete one acts on the
probabilities.
"""
from __future__ import annotations

import math

import torch

_LOG_2PI = math.log(2 * math.pi)


def log_prob(mean: torch.Tensor, std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log f(a|x) of a diagonal Gaussian, summed over the action's d dimensions (last axis):

        -1/2 sum_j [((a_j - mu_j) / sigma_j)^2 + 2 log sigma_j + log 2 pi]
    """
    z = (action - mean) / std
    return -0.5 * (z * z + 2 * torch.log(std) + _LOG_2PI).sum(-1)


def entropy(std: torch.Tensor) -> torch.Tensor:
    """H(f(.|x)) = sum_j [log sigma_j + 1/2 (1 + log 2 pi)]: it grows with the spread only, which
    the entropy bonus keeps from collapsing early."""
    return (torch.log(std) + 0.5 * (1.0 + _LOG_2PI)).sum(-1)


def kl(mean_p, std_p, mean_q, std_q) -> torch.Tensor:
    """KL[p || q] between diagonal Gaussians, summed over dimensions:

        sum_j [log(sigma_q / sigma_p) + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2]
    """
    return (torch.log(std_q / std_p)
            + (std_p ** 2 + (mean_p - mean_q) ** 2) / (2 * std_q ** 2) - 0.5).sum(-1)


def kl_gradient(average_mean, average_std, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """k = d KL[f_avg || f] / d phi at phi = (mu, sigma), the current policy's statistics: the
    direction the trust region keeps the step from going too far along (ACER, Algorithm 3).

        dKL/dmu    = (mu - mu_avg) / sigma^2
        dKL/dsigma = 1 / sigma - (sigma_avg^2 + (mu_avg - mu)^2) / sigma^3
    """
    return ((mean - average_mean) / std ** 2,
            1 / std - (average_std ** 2 + (average_mean - mean) ** 2) / std ** 3)


def stochastic_dueling_q(value: torch.Tensor, advantage: torch.Tensor,
                         sampled_advantages: torch.Tensor) -> torch.Tensor:
    """The stochastic dueling network's estimate of Q (ACER, Section 5, eq. 13):

        Q~(x, a) = V(x) + A(x, a) - 1/n sum_i A(x, u_i),   u_i ~ f(.|x)

    `sampled_advantages` holds A(x, u_i) for the n samples on its last axis. The sample mean
    estimates E_{u ~ f}[A(x, u)], so in expectation over the u_i, E_a[Q~(x, a)] = V(x): V and
    Q~ stay consistent without integrating A over the action space.
    """
    return value + advantage - sampled_advantages.mean(-1)


def truncated_trace(rho: torch.Tensor, action_dim: int) -> torch.Tensor:
    """c = min(1, rho^(1/d)), the trace coefficient of continuous ACER's Retrace target.

    The importance weight rho = f(a|x) / mu(a|x) over d dimensions is a product of d per-dimension
    ratios, so its variance grows exponentially with d, and a trace min(1, rho) is cut almost at
    once. The d-th root is the geometric mean of the per-dimension ratios: on the scale of one
    dimension's, whatever d."""
    if action_dim < 1:
        raise ValueError(f"action_dim must be >= 1, got {action_dim}")
    return torch.clamp(rho ** (1.0 / action_dim), max=1.0)


def policy_objective(log_f_taken: torch.Tensor, log_f_sampled: torch.Tensor,
                     rho_taken: torch.Tensor, rho_sampled: torch.Tensor, q_opc: torch.Tensor,
                     q_sampled: torch.Tensor, value: torch.Tensor,
                     truncation_c: float) -> torch.Tensor:
    """Continuous ACER's policy objective at each step of a segment (Algorithm 3): its gradient with
    respect to phi, through the log-probabilities, is the algorithm's g,

        min(c, rho_i) log f(a_i|x_i) (Q_opc_i - V_i)
      + [1 - c / rho'_i]_+ log f(a'_i|x_i) (Q~(x_i, a'_i) - V_i),   a'_i ~ f(.|x_i)

    with rho_i = f(a_i|x_i) / mu(a_i|x_i) for the replayed action and rho'_i the same ratio for a
    fresh sample a'_i: the bias correction of the discrete case, its sum over actions estimated
    by one sample. Only the log-probabilities are differentiated.
    """
    rho_taken, rho_sampled = rho_taken.detach(), rho_sampled.detach()
    value, q_opc, q_sampled = value.detach(), q_opc.detach(), q_sampled.detach()
    truncated = rho_taken.clamp(max=truncation_c) * log_f_taken * (q_opc - value)
    correction = torch.relu(1.0 - truncation_c / rho_sampled) * log_f_sampled * (q_sampled - value)
    return truncated + correction
