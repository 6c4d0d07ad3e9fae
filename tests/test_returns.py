"""n-step returns on hand-computed rollouts: termination vs truncation vs a t_max cut."""
import numpy as np
import pytest

from asyncrl_lab.returns import bootstrap_value, n_step_returns


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
