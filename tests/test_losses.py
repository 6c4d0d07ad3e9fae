"""The shared actor-critic loss against a hand computation."""
import math

import pytest
import torch

from asyncrl_lab.losses import actor_critic_loss


def test_actor_critic_loss_matches_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]], requires_grad=True)  # pi = (.25,.75), (.5,.5)
    values = torch.tensor([1.0, 2.0], requires_grad=True)
    actions = torch.tensor([1, 0])
    returns = torch.tensor([3.0, 1.0])
    loss = actor_critic_loss(logits, values, actions, returns, entropy_beta=0.1, value_loss_coef=0.5)
    adv = [2.0, -1.0]
    policy = -(math.log(0.75) * adv[0] + math.log(0.5) * adv[1])
    value = 0.5 * (adv[0] ** 2 + adv[1] ** 2)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) + math.log(2.0)
    assert loss.item() == pytest.approx(policy + 0.5 * value - 0.1 * entropy, rel=1e-6)


def test_policy_gradient_does_not_flow_into_the_value_through_the_advantage():
    logits = torch.zeros(1, 2, requires_grad=True)
    values = torch.tensor([0.5], requires_grad=True)
    loss = actor_critic_loss(logits, values, torch.tensor([0]), torch.tensor([1.5]),
                             entropy_beta=0.0, value_loss_coef=1.0)
    loss.backward()
    # d/dV of 0.5*(R - V)^2 only: -(R - V) = -1.0; the policy term treats the advantage as constant
    assert values.grad.item() == pytest.approx(-1.0)

