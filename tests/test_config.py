"""Bad input gets a ValueError naming the problem, before any process starts."""
import pytest

import asyncrl_lab as lab
from asyncrl_lab.config import A3CConfig

from helpers import children_of

BAD = [
    ({"workers": 0}, "workers"),
    ({"workers": -2}, "workers"),
    ({"workers": 1.5}, "workers"),
    ({"workers": "2"}, "workers"),
    ({"total_steps": 0}, "total_steps"),
    ({"seed": -1}, "seed"),
    ({"t_max": 0}, "t_max"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -1e-3}, "lr"),
    ({"lr": float("nan")}, "lr"),
    ({"gamma": 0.0}, "gamma"),
    ({"gamma": 1.01}, "gamma"),
    ({"entropy_beta": -0.01}, "entropy_beta"),
    ({"max_grad_norm": 0}, "max_grad_norm"),
    ({"rmsprop_alpha": 1.0}, "rmsprop_alpha"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"start_method": "threads"}, "start_method"),
    ({"hidden_sizes": ()}, "hidden_sizes"),
    ({"hidden_sizes": (64, 0)}, "hidden_sizes"),
    ({"shared_optimizer_stats": "yes"}, "shared_optimizer_stats"),
    ({"env": "CartPol-v1"}, "CartPole-v1"),
    ({"env": ""}, "env"),
]


@pytest.mark.parametrize("options, named", BAD, ids=[str(o) for o, _ in BAD])
def test_bad_config_value_names_the_field(options, named):
    with pytest.raises(ValueError, match=named):
        A3CConfig(**options)


def test_train_rejects_bad_input_before_starting_processes():
    cases = [
        (dict(algo="a4c"), "unknown algorithm 'a4c'"),
        (dict(algo="a3c", env="Pendulum-v1"), "discrete"),
        (dict(algo="a3c", workers=0), "workers"),
        (dict(algo="a3c", tmax=5), "unknown A3CConfig option"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            lab.train(progress=False, **kwargs)
        assert children_of() == []


def test_config_round_trips_through_a_dict():
    config = A3CConfig(t_max=7, hidden_sizes=(32,))
    assert A3CConfig.from_dict(config.to_dict()) == config
