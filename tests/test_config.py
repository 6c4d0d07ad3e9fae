"""Bad input gets a ValueError naming the problem, before any process starts."""
import pytest

import asyncrl_lab as lab
import asyncrl_lab.training as training
from asyncrl_lab.__main__ import build_parser
from asyncrl_lab.algos import ALGORITHMS, config_for
from asyncrl_lab.config import A2CConfig, A3CConfig
from asyncrl_lab.parallel import Outcome
from asyncrl_lab.presets import PRESETS, preset_settings

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


@pytest.fixture
def configs_of_runs(monkeypatch):
    """The config of each run `train` would start, with no process started."""
    started = []

    def record(worker, config, shared, **kwargs):
        started.append(config)
        return Outcome(status="finished")
    monkeypatch.setattr(training, "run_workers", record)
    return started


def test_train_starts_from_the_tuned_preset_and_options_override_it(configs_of_runs):
    tuned = preset_settings("a3c", "CartPole-v1")
    assert tuned, "A3C has a CartPole preset"
    lab.train("a3c", env="CartPole-v1", workers=1, progress=False)
    lab.train("a3c", env="CartPole-v1", workers=1, progress=False, lr=1e-4)
    lab.train("a3c", env="CartPole-v1", workers=1, progress=False, preset="paper")
    default, overridden, paper = configs_of_runs
    assert {k: getattr(default, k) for k in tuned} == tuned
    assert overridden.lr == 1e-4 and overridden.t_max == tuned["t_max"]
    assert paper == A3CConfig(env="CartPole-v1", workers=1)


def test_an_env_without_a_preset_starts_from_the_papers_values(configs_of_runs):
    assert preset_settings("a3c", "Acrobot-v1") == {}
    lab.train("a3c", env="Acrobot-v1", workers=1, progress=False)
    assert configs_of_runs == [A3CConfig(env="Acrobot-v1", workers=1)]


def test_an_unknown_preset_is_refused():
    with pytest.raises(ValueError, match=r"preset='best': must be one of \('tuned', 'paper'\)"):
        lab.train("a3c", preset="best", progress=False)


def test_every_preset_is_a_valid_config_with_a_source():
    for (algo, env), preset in PRESETS.items():
        config_for(algo)(env=env, **preset.settings)
        assert preset.source


def test_every_field_says_what_it_means():
    for module in ALGORITHMS.values():
        for field in module.Config.describe():
            assert field["doc"].endswith(".") and len(field["doc"].split()) >= 4, field


def test_a_subclass_default_keeps_the_fields_meaning_and_check():
    assert A2CConfig.__dataclass_fields__["max_grad_norm"].default == 0.5
    assert (A2CConfig.__dataclass_fields__["max_grad_norm"].metadata
            == A3CConfig.__dataclass_fields__["max_grad_norm"].metadata)
    with pytest.raises(ValueError, match=r"A2CConfig.max_grad_norm=0 .* positive"):
        A2CConfig(max_grad_norm=0)


def test_every_cli_option_has_a_sentence_of_help():
    parser = build_parser()
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    algos = next(a for a in train._actions if a.dest == "algo").choices
    assert set(algos) == set(ALGORITHMS)
    for name, sub in algos.items():
        for action in sub._actions:
            if action.dest != "help":
                words = (action.help or "").split("(default")[0].split()
                assert len(words) >= 3, f"{name} {action.option_strings}: {action.help!r}"
    text = algos["a3c"].format_help()
    assert "Steps of a rollout before each update" in text and "(default: 5)" in text
    assert "CartPole-v1: t_max=" in text  # the tuned preset is named where the defaults differ
