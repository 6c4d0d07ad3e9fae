"""Networks, the fast numpy actor, and the environments' preprocessing."""
import numpy as np
import pytest
import torch

from asyncrl_lab.envs import make_env
from asyncrl_lab.nets import (ActorCritic, GreedyQActor, NumpyMLPActor, NumpyQ, QNetwork, TorchActor,
                             TorchQ, make_actor, make_q_reader)


def test_atari_network_is_the_papers():
    net = ActorCritic((4, 84, 84), 6)
    convs = [m for m in net.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(16, (8, 8), (4, 4)),
                                                                          (32, (4, 4), (2, 2))]
    logits, value = net(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))
    assert logits.shape == (3, 6) and value.shape == (3,)
    assert isinstance(make_actor(net, 0), TorchActor)


def test_numpy_actor_computes_the_networks_value_and_policy():
    torch.manual_seed(0)
    net = ActorCritic((4,), 3, (16, 16))
    torch.nn.init.normal_(net.policy.weight)  # a policy far from uniform, to test sampling
    actor = make_actor(net, seed=1)
    assert isinstance(actor, NumpyMLPActor)
    obs = np.array([0.1, -0.2, 0.3, 0.05], dtype=np.float32)
    logits, value = net(torch.as_tensor(obs))
    assert actor.value(obs) == pytest.approx(value.item(), abs=1e-5)
    probs = torch.softmax(logits, -1).detach().numpy()
    n = 20000
    freq = np.bincount([actor.act(obs) for _ in range(n)], minlength=3) / n
    np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(0.25 / n))


def test_numpy_actor_sees_in_place_updates_of_the_network():
    net = ActorCritic((4,), 2, (8,))
    actor = make_actor(net, seed=0)
    obs = np.ones(4, dtype=np.float32)
    with torch.no_grad():
        net.value.bias.add_(5.0)  # what a worker's sync does: write the same tensors in place
    assert actor.value(obs) == pytest.approx(net(torch.as_tensor(obs))[1].item(), abs=1e-5)


def test_unknown_env_id_names_close_matches():
    with pytest.raises(ValueError, match="CartPole-v1"):
        make_env("CartPol-v1")


def test_continuous_action_env_is_rejected():
    with pytest.raises(ValueError, match="discrete"):
        make_env("Pendulum-v1")


def test_atari_preprocessing_matches_the_paper():
    env = make_env("ALE/Pong-v5", seed=0)
    obs, _ = env.reset()
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0  # no sticky actions
    rewards = []
    for _ in range(400):
        obs, r, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(r)
    assert set(rewards) <= {-1.0, 0.0, 1.0}
    env.close()
    sticky = make_env("ALE/Pong-v5", seed=0, sticky_actions=True)
    assert sticky.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    sticky.close()


def test_episodic_life_ends_the_episode_on_a_lost_life_without_resetting_the_game():
    env = make_env("ALE/Breakout-v5", seed=0, episodic_life=True)
    env.reset()
    ale = env.unwrapped.ale
    lives_before = ale.lives()
    for _ in range(5000):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert terminated and "episode" not in info  # a lost life, not a game over
    assert ale.lives() == lives_before - 1
    env.reset()
    assert ale.lives() == lives_before - 1  # the game went on
    env.close()


def test_evaluation_env_sees_raw_rewards():
    env = make_env("ALE/Pong-v5", seed=0, training=False)
    env.reset()
    total = 0.0
    while True:
        _, r, terminated, truncated, info = env.step(env.action_space.sample())
        total += r
        if terminated or truncated:
            break
    assert info["episode"]["r"] == total <= -15  # random play loses Pong by many points
    env.close()


def random_obs(obs_shape):
    """A CartPole-like float vector, or an Atari-like uint8 frame stack."""
    if len(obs_shape) == 3:
        return (torch.rand(obs_shape).numpy() * 255).astype(np.uint8)
    return torch.rand(obs_shape).numpy().astype(np.float32)


@pytest.mark.parametrize("obs_shape", [(4,), (4, 84, 84)])
def test_greedy_action_is_the_most_likely_one(obs_shape):
    torch.manual_seed(1)
    net = ActorCritic(obs_shape, 3)
    torch.nn.init.normal_(net.policy.weight)
    obs = random_obs(obs_shape)
    logits, _ = net(torch.as_tensor(obs).unsqueeze(0))
    assert make_actor(net, 0).act(obs, greedy=True) == int(logits.argmax())


@pytest.mark.parametrize("obs_shape", [(4,), (4, 84, 84)])
def test_q_network_readers_and_greedy_actor_agree_with_the_network(obs_shape):
    torch.manual_seed(2)
    net = QNetwork(obs_shape, 3)
    torch.nn.init.normal_(net.q.weight)
    obs = random_obs(obs_shape)
    q_values = net(torch.as_tensor(obs).unsqueeze(0))[0].detach().numpy()
    assert q_values.shape == (3,)
    reader = make_q_reader(net)
    assert isinstance(reader, NumpyQ if len(obs_shape) == 1 else TorchQ)
    np.testing.assert_allclose(reader(obs), q_values, rtol=1e-5, atol=1e-5)
    actor = make_actor(net, 0)
    assert isinstance(actor, GreedyQActor)
    assert actor.act(obs) == actor.act(obs, greedy=False) == int(q_values.argmax())
    with torch.no_grad():
        net.q.bias[0] += 1e3  # an in-place write (a sync, a target copy) is seen at once
    assert reader(obs).argmax() == 0
