"""Returns and targets on hand-computed transitions: termination vs truncation vs a t_max cut."""
import numpy as np
import pytest

from asyncrl_lab.returns import bootstrap_value, n_step_returns, q_learning_target, sarsa_target


def test_terminated_rollout_bootstraps_from_zero():
    # rewards 1, 2, 3 then a terminal state; gamma 0.5:
    # R2 = 3, R1 = 2 + 0.5*3 = 3.5, R0 = 1 + 0.5*3.5 = 2.75
    R = n_step_returns([1, 2, 3], bootstrap_value(terminated=True, last_value=10.0), gamma=0.5)
    np.testing.assert_allclose(R, [2.75, 3.5, 3.0])


def test_truncated_rollout_bootstraps_from_value():
    # the same rewards cut by a time limit, V(s_3) = 10:
    # R2 = 3 + 0.5*10 = 8, R1 = 2 + 4 = 6, R0 = 1 + 3 = 4
    R = n_step_returns([1, 2, 3], bootstrap_value(terminated=False, last_value=10.0), gamma=0.5)
    np.testing.assert_allclose(R, [4.0, 6.0, 8.0])


def test_t_max_cut_equals_the_forward_view_sum():
    rng = np.random.default_rng(0)
    rewards, v, gamma = rng.normal(size=5), 2.5, 0.99
    R = n_step_returns(rewards, v, gamma)
    for i in range(5):
        expected = sum(gamma ** (j - i) * rewards[j] for j in range(i, 5)) + gamma ** (5 - i) * v
        assert R[i] == pytest.approx(expected)


def test_undiscounted_single_step():
    np.testing.assert_allclose(n_step_returns([1.0], 0.0, 1.0), [1.0])


@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5])
def test_bad_gamma_is_rejected(gamma):
    with pytest.raises(ValueError, match="gamma"):
        n_step_returns([1.0], 0.0, gamma)


# One-step targets of the value-based methods. Two transitions, gamma 0.9, with
# Q(s', .; theta^-) = [1, 5, 3]; the behaviour policy takes a' = 2 next.
NEXT_Q = [1.0, 5.0, 3.0]


def test_q_learning_target_bootstraps_from_the_max_unless_terminated():
    # not terminal: y = 2 + 0.9 * max(1, 5, 3) = 6.5; terminal: y = r = 2
    assert q_learning_target(2.0, False, NEXT_Q, 2, 0.9) == pytest.approx(6.5)
    assert q_learning_target(2.0, True, NEXT_Q, 2, 0.9) == pytest.approx(2.0)


def test_sarsa_target_bootstraps_from_the_action_taken_next():
    # y = 2 + 0.9 * Q(s', a' = 2) = 2 + 2.7 = 4.7; terminal: 2
    assert sarsa_target(2.0, False, NEXT_Q, 2, 0.9) == pytest.approx(4.7)
    assert sarsa_target(2.0, True, NEXT_Q, 2, 0.9) == pytest.approx(2.0)
    # with a' = the greedy action, Sarsa's target is Q-learning's
    assert sarsa_target(2.0, False, NEXT_Q, 1, 0.9) == pytest.approx(6.5)


def test_one_step_targets_bootstrap_after_truncation_and_work_on_batches():
    # a time-limit truncation is not terminal: the batch is (truncated, terminated, mid-episode)
    rewards, terminated = [1.0, 1.0, 0.0], [False, True, False]
    next_q = [[2.0, 4.0], [7.0, 9.0], [-1.0, -3.0]]
    next_actions = [0, 1, 1]
    np.testing.assert_allclose(q_learning_target(rewards, terminated, next_q, next_actions, 0.5),
                               [1 + 0.5 * 4, 1, 0.5 * -1])
    np.testing.assert_allclose(sarsa_target(rewards, terminated, next_q, next_actions, 0.5),
                               [1 + 0.5 * 2, 1, 0.5 * -3])


def test_n_step_q_return_bootstraps_from_the_target_max():
    # Algorithm S2 with rewards 1, 0, 2, gamma 0.5, max_a Q(s_3, a; theta^-) = max(4, 6) = 6:
    # R2 = 2 + 3 = 5, R1 = 0 + 2.5 = 2.5, R0 = 1 + 1.25 = 2.25; terminated: 2, 1, 1.5
    target_max = np.max([4.0, 6.0])
    np.testing.assert_allclose(n_step_returns([1, 0, 2], bootstrap_value(False, target_max), 0.5),
                               [2.25, 2.5, 5.0])
    np.testing.assert_allclose(n_step_returns([1, 0, 2], bootstrap_value(True, target_max), 0.5),
                               [1.5, 1.0, 2.0])


def test_one_step_targets_reject_bad_input():
    with pytest.raises(ValueError, match="one value per action"):
        q_learning_target(1.0, False, 3.0, 0, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        sarsa_target(1.0, False, NEXT_Q, 0, 1.5)
