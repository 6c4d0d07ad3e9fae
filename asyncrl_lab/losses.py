"""The losses: A3C's actor-critic loss (Algorithm S3), shared by every actor-critic method, and the
squared TD error of the value-based methods (Algorithms S1 and S2).

For a rollout with n-step returns R_i and advantages A_i = R_i - V(s_i; theta_v):

    policy loss   -sum_i log pi(a_i|s_i; theta) * A_i          (A_i held constant)
    value loss     sum_i (R_i - V(s_i; theta_v))^2 / 2
    entropy bonus  sum_i H(pi(.|s_i; theta))

    loss = policy loss + value_loss_coef * value loss - entropy_beta * entropy bonus

Sums, not means: Algorithm S3 accumulates one gradient term per step of the rollout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def actor_critic_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                      returns: torch.Tensor, entropy_beta: float,
                      value_loss_coef: float) -> torch.Tensor:
    log_probs = F.log_softmax(logits, dim=-1)
    log_pi_a = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    advantages = returns - values
    policy_loss = -(log_pi_a * advantages.detach()).sum()
    value_loss = 0.5 * advantages.pow(2).sum()
    entropy = -(log_probs.exp() * log_probs).sum()
    return policy_loss + value_loss_coef * value_loss - entropy_beta * entropy


def q_value_loss(q_values: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """sum_i (y_i - Q(s_i, a_i; theta))^2 / 2 over the transitions since the last update.

    A sum, not a mean: Algorithms S1 and S2 accumulate one gradient per step (d theta <- d theta +
    d(y - Q)^2 / d theta), and a batched sum at fixed theta is that accumulated gradient.
    """
    chosen = q_values.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return 0.5 * (targets - chosen).pow(2).sum()
