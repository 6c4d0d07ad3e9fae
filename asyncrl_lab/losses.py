"""The losses: A3C's actor-critic loss (Algorithm S3), shared by every on-policy actor-critic method;
the squared TD error of the value-based methods (Algorithms S1 and S2); ACER's off-policy policy
objective and its trust-region projection (Algorithm 2 of Wang et al. 2017).

For a rollout with n-step returns R_i and advantages A_i = R_i - V(s_i; theta_v):

    policy loss   -sum_i log pi(a_i|s_i; theta) * A_i          (A_i held constant)
    value loss     sum_i (R_i - V(s_i; theta_v))^2 / 2
    entropy bonus  sum_i H(pi(.|s_i; theta))

    loss = policy loss + value_loss_coef * value loss - entropy_beta * entropy bonus

Sums, not means: Algorithm S3 accumulates one gradient term per step of the rollout.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class ActorCriticTerms(NamedTuple):
    """The three sums of A3C's loss over a rollout."""

    policy_loss: torch.Tensor  # -sum_i log pi(a_i|s_i; theta) * A_i, A_i held constant
    value_loss: torch.Tensor  # sum_i (R_i - V(s_i; theta_v))^2 / 2
    entropy: torch.Tensor  # sum_i H(pi(.|s_i; theta))

    def loss(self, entropy_beta: float, value_loss_coef: float) -> torch.Tensor:
        return self.policy_loss + value_loss_coef * self.value_loss - entropy_beta * self.entropy

    def means(self, steps: int) -> dict:
        """Each term per step, for the run's diagnostics."""
        return {name: term.detach() / steps for name, term in self._asdict().items()}


def actor_critic_terms(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                       returns: torch.Tensor) -> ActorCriticTerms:
    log_probs = F.log_softmax(logits, dim=-1)
    log_pi_a = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    advantages = returns - values
    return ActorCriticTerms(policy_loss=-(log_pi_a * advantages.detach()).sum(),
                            value_loss=0.5 * advantages.pow(2).sum(),
                            entropy=-(log_probs.exp() * log_probs).sum())


def actor_critic_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                      returns: torch.Tensor, entropy_beta: float,
                      value_loss_coef: float) -> torch.Tensor:
    return actor_critic_terms(logits, values, actions, returns).loss(entropy_beta, value_loss_coef)


def q_value_loss(q_values: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """sum_i (y_i - Q(s_i, a_i; theta))^2 / 2 over the transitions since the last update.

    A sum, not a mean: Algorithms S1 and S2 accumulate one gradient per step (d theta <- d theta +
    d(y - Q)^2 / d theta), and a batched sum at fixed theta is that accumulated gradient.
    """
    chosen = q_values.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return 0.5 * (targets - chosen).pow(2).sum()


# Probabilities are floored by this much inside ACER's logarithms and ratios (as in OpenAI
# Baselines), so that an action whose probability underflows to 0 gives no infinities.
PROB_EPS = 1e-8


def acer_policy_objective(probs: torch.Tensor, q_values: torch.Tensor, actions: torch.Tensor,
                          q_ret: torch.Tensor, behaviour_probs: torch.Tensor, truncation_c: float,
                          bias_correction: bool = True, entropy_beta: float = 0.0) -> torch.Tensor:
    """ACER's policy objective at each step i of a segment, shape (k,). Its gradient with respect
    to `probs` (the policy statistics phi(x_i) = f(.|x_i), shape (k, n_actions)) is Algorithm 2's g,
    plus the entropy bonus's gradient:

        min(c, rho_i(a_i)) * log f(a_i|x_i) * (Q_ret_i - V_i)                 truncated IS
      + sum_a [1 - c / rho_i(a)]_+ f(a|x_i) log f(a|x_i) (Q(x_i, a) - V_i)      bias correction
      + entropy_beta * H(f(.|x_i))

    with rho_i(a) = f(a|x_i) / mu(a|x_i) and V_i = sum_a f(a|x_i) Q(x_i, a). Only the logarithms
    and the entropy are differentiated: the weights, Q, V and Q_ret are constants. The correction
    term's expectation under the current policy restores what truncating at c removed, so the sum
    is an unbiased estimate of the on-policy gradient (tests/test_acer.py checks this by
    enumerating every action).
    """
    f = probs.detach()
    q_values, q_ret = q_values.detach(), q_ret.detach()
    values = (f * q_values).sum(-1)
    rho = (f + PROB_EPS) / (behaviour_probs + PROB_EPS)
    log_f = torch.log(probs + PROB_EPS)
    taken = actions.unsqueeze(-1)
    rho_taken = rho.gather(-1, taken).squeeze(-1)
    log_f_taken = log_f.gather(-1, taken).squeeze(-1)
    objective = rho_taken.clamp(max=truncation_c) * log_f_taken * (q_ret - values)
    if bias_correction:
        weights = torch.relu(1.0 - truncation_c / rho) * f
        objective = objective + (weights * log_f * (q_values - values.unsqueeze(-1))).sum(-1)
    if entropy_beta:
        objective = objective - entropy_beta * (probs * log_f).sum(-1)
    return objective


def average_kl_gradient(average_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """k = d KL[f_avg || f] / d f = -f_avg / f: the gradient, with respect to the current policy's
    statistics, of its divergence from the average policy network's."""
    return -average_probs / (probs + PROB_EPS)


def trust_region_projection(g: torch.Tensor, k: torch.Tensor, delta: float) -> torch.Tensor:
    """The closed-form solution of ACER's trust-region problem, row by row:

        z* = argmin_z 1/2 ||g - z||^2  subject to  k . z <= delta
           = g - max(0, (k . g - delta) / ||k||^2) * k

    The step z* stays as close to the policy gradient g as it can while the linearized KL to
    the average policy, k . z, is at most delta; when g already satisfies it, z* = g.
    """
    excess = ((k * g).sum(-1) - delta).clamp(min=0.0)
    return g - (excess / (k * k).sum(-1)).unsqueeze(-1) * k
