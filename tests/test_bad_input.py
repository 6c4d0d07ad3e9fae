"""Bad input, across the API and the command line: each gets one clear error naming the problem,
before any worker process starts, and never a traceback from inside torch or multiprocessing."""
import contextlib
import io
import re
import shutil

import pytest

import asyncrl_lab as lab
import asyncrl_lab.training as training_module
from asyncrl_lab.__main__ import main


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "run"
    lab.train("a3c", env="CartPole-v1", workers=1, total_steps=1000, progress=False, out=path)
    return path


@pytest.fixture
def no_process_may_start(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a worker process was started for bad input")
    monkeypatch.setattr(training_module, "run_workers", refuse)


def corrupt(saved_run, tmp_path, how):
    copy = tmp_path / "copy"
    shutil.copytree(saved_run, copy)
    ckpt = copy / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if how == "truncate" else b"\x00garbage" * 100)
    return copy


CARTPOLE = dict(algo="a3c", env="CartPole-v1")

API_CASES = [
    # (id, train() arguments or a callable, expected exception, message pattern)
    ("unknown algorithm", dict(algo="a4c"), ValueError, r"unknown algorithm 'a4c'; available"),
    ("no algorithm", dict(), ValueError, r"name the algorithm to train"),
    ("unknown env id", dict(algo="a3c", env="CartPol-v1"), ValueError,
     r"unknown environment id 'CartPol-v1'; did you mean 'CartPole-v1'"),
    ("continuous actions", dict(algo="a3c", env="Pendulum-v1"), ValueError,
     r"need a discrete action space"),
    ("zero workers", {**CARTPOLE, "workers": 0}, ValueError, r"workers=0 .* integer >= 1"),
    ("negative workers", {**CARTPOLE, "workers": -2}, ValueError, r"workers=-2"),
    ("fractional workers", {**CARTPOLE, "workers": 2.5}, ValueError, r"workers=2.5"),
    ("zero steps", {**CARTPOLE, "total_steps": 0}, ValueError, r"total_steps=0"),
    ("negative steps", {**CARTPOLE, "total_steps": -100}, ValueError, r"total_steps=-100"),
    ("zero t_max", {**CARTPOLE, "t_max": 0}, ValueError, r"t_max=0 .* integer >= 1"),
    ("zero learning rate", {**CARTPOLE, "lr": 0.0}, ValueError, r"lr=0.0 .* positive"),
    ("negative learning rate", {**CARTPOLE, "lr": -1e-3}, ValueError, r"lr=-0.001"),
    ("NaN learning rate", {**CARTPOLE, "lr": float("nan")}, ValueError, r"lr=nan"),
    ("gamma zero", {**CARTPOLE, "gamma": 0.0}, ValueError, r"gamma=0.0 .* in \(0, 1\]"),
    ("gamma above one", {**CARTPOLE, "gamma": 1.5}, ValueError, r"gamma=1.5 .* in \(0, 1\]"),
    ("negative entropy weight", {**CARTPOLE, "entropy_beta": -0.1}, ValueError, r"entropy_beta"),
    ("negative seed", {**CARTPOLE, "seed": -1}, ValueError, r"seed=-1"),
    ("unknown option", {**CARTPOLE, "lr_rate": 1e-3}, ValueError,
     r"unknown A3CConfig option\(s\) \['lr_rate'\]"),
    ("unknown optimizer", {**CARTPOLE, "optimizer": "sgd"}, ValueError, r"optimizer='sgd'"),
    ("empty network", {**CARTPOLE, "hidden_sizes": ()}, ValueError, r"hidden_sizes=\(\)"),
    ("unknown backend", {**CARTPOLE, "backend": "mpi"}, ValueError,
     r"backend='mpi' .* one of \('processes', 'ray'\)"),
    ("a Ray address without Ray", {**CARTPOLE, "ray_address": "10.0.0.1:6379"}, ValueError,
     r"ray_address='10.0.0.1:6379' needs backend='ray'"),
    ("a Ray address without a port", {**CARTPOLE, "backend": "ray", "ray_address": "head"},
     ValueError, r"ray_address='head' .* 'HOST:PORT'"),
    ("progress not a flag", {**CARTPOLE, "progress": "yes"}, ValueError, r"progress must be"),
    ("checkpoint_every zero", {**CARTPOLE, "checkpoint_every": 0, "out": "OUT"}, ValueError,
     r"checkpoint_every must be an integer >= 1"),
    ("stop_at_return not a number", {**CARTPOLE, "stop_at_return": "high"}, ValueError,
     r"stop_at_return must be a finite number, not 'high'"),
    ("stop_at_return NaN", {**CARTPOLE, "stop_at_return": float("nan")}, ValueError,
     r"stop_at_return must be a finite number, not nan"),
    ("checkpoint_every without out", {**CARTPOLE, "checkpoint_every": 100}, ValueError,
     r"checkpoint_every needs a directory"),
    ("out under a file", {**CARTPOLE, "out": "FILE/run"}, ValueError,
     r"cannot save the run in .*: Not a directory"),
    ("value method: final epsilon above one",
     dict(algo="one_step_q", final_epsilons=(0.1, 1.5), final_epsilon_probs=(0.5, 0.5)),
     ValueError, r"OneStepQConfig.final_epsilons=\(0.1, 1.5\) .* numbers in \[0, 1\]"),
    ("value method: epsilon probabilities not summing to one",
     dict(algo="n_step_q", final_epsilon_probs=(0.4, 0.3, 0.2)), ValueError,
     r"final_epsilon_probs=\(0.4, 0.3, 0.2\) .* summing to 1"),
    ("value method: one probability per epsilon",
     dict(algo="one_step_sarsa", preset="paper", final_epsilon_probs=(0.5, 0.5)), ValueError,
     r"one probability per final epsilon \(3 of them\)"),
    ("value method: zero target interval", dict(algo="n_step_q", target_update_interval=0),
     ValueError, r"target_update_interval=0 .* integer >= 1"),
    ("value method: zero I_AsyncUpdate", dict(algo="one_step_q", async_update_interval=0),
     ValueError, r"async_update_interval=0 .* integer >= 1"),
    ("value method: A3C's option", dict(algo="one_step_q", entropy_beta=0.01), ValueError,
     r"unknown OneStepQConfig option\(s\) \['entropy_beta'\]"),
    ("negative LSTM cells", {**CARTPOLE, "lstm_cells": -1}, ValueError,
     r"A3CConfig.lstm_cells=-1 .* integer >= 0"),
    ("LSTM cells not an integer", dict(algo="a2c", lstm_cells=12.5), ValueError,
     r"A2CConfig.lstm_cells=12.5 .* integer >= 0"),
    ("value method: an LSTM", dict(algo="n_step_q", lstm_cells=128), ValueError,
     r"unknown NStepQConfig option\(s\) \['lstm_cells'\]"),
    ("A2C: zero envs", dict(algo="a2c", n_envs=0), ValueError, r"A2CConfig.n_envs=0 .* >= 1"),
    ("A2C: workers", dict(algo="a2c", workers=2), ValueError, r"a2c is synchronous.*n_envs"),
    ("A2C: unknown device", dict(algo="a2c", device="tpu"), ValueError,
     r"A2CConfig.device='tpu' .*'auto', 'cpu', 'cuda'"),
    ("ACER: replay start beyond the memory", dict(algo="acer", replay_capacity=100, replay_start=1000),
     ValueError, r"ACERConfig.replay_start=1000 .* from 0 to replay_capacity \(100\)"),
    ("ACER: average decay of one", dict(algo="acer", average_decay=1.0), ValueError,
     r"ACERConfig.average_decay=1.0 .* in \[0, 1\)"),
    ("ACER: negative replay ratio", dict(algo="acer", replay_ratio=-1.0), ValueError,
     r"ACERConfig.replay_ratio=-1.0 .* >= 0"),
    ("ACER: zero truncation", dict(algo="acer", truncation_c=0), ValueError,
     r"ACERConfig.truncation_c=0 .* positive"),
    ("ACER: trust region not a flag", dict(algo="acer", trust_region="no"), ValueError,
     r"ACERConfig.trust_region='no' .* True or False"),
    ("unknown preset", {**CARTPOLE, "preset": "fast"}, ValueError,
     r"preset='fast': must be one of \('tuned', 'paper'\)"),
    ("resume a missing run", dict(resume="MISSING"), FileNotFoundError, r"no asyncrl_lab run at"),
    ("resume as another algorithm", dict(algo="acer", resume="SAVED"), ValueError,
     r"cannot resume a 'a3c' run as 'acer'"),
    ("resume to fewer steps", dict(resume="SAVED", total_steps=500), ValueError,
     r"already at global step 1,0\d\d; pass total_steps greater"),
    ("resume with other settings", dict(resume="SAVED", total_steps=5000, lr=0.5), ValueError,
     r"only total_steps, workers, backend and ray_address \(A2C: n_envs\) may change, "
     r"not \['lr'\]"),
    ("resume a truncated checkpoint", dict(resume="TRUNCATED"), ValueError,
     r"not a readable asyncrl_lab checkpoint"),
    ("resume a corrupted checkpoint", dict(resume="CORRUPTED"), ValueError,
     r"not a readable asyncrl_lab checkpoint"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(case, saved_run, tmp_path, no_process_may_start):
    _, kwargs, error, pattern = case
    (tmp_path / "FILE").write_text("not a directory")
    places = {"SAVED": saved_run, "MISSING": tmp_path / "missing", "OUT": tmp_path / "out",
              "FILE/run": tmp_path / "FILE" / "run",
              "TRUNCATED": lambda: corrupt(saved_run, tmp_path, "truncate"),
              "CORRUPTED": lambda: corrupt(saved_run, tmp_path, "garbage")}
    for key in ("resume", "out"):
        if kwargs.get(key) in places:
            place = places[kwargs[key]]
            kwargs = {**kwargs, key: place() if callable(place) else place}
    kwargs = {"progress": False, **kwargs}
    with pytest.raises(error, match=pattern):
        lab.train(**kwargs)


def test_evaluate_bad_episodes(saved_run):
    with pytest.raises(ValueError, match=r"episodes=0: must be an integer >= 1"):
        lab.load(saved_run).evaluate(episodes=0)


CLI_CASES = [
    # (arguments, exit code, pattern in stderr)
    (["train", "a3c", "--env", "Nope-v0", "--out", "OUT"], 1, r"error: unknown environment id"),
    (["train", "a3c", "--workers", "0", "--out", "OUT"], 1, r"error: A3CConfig.workers=0"),
    (["train", "a3c", "--steps", "-5", "--out", "OUT"], 1, r"error: A3CConfig.total_steps=-5"),
    (["train", "a3c", "--lr", "0", "--out", "OUT"], 1, r"error: A3CConfig.lr=0.0"),
    (["train", "a3c", "--gamma", "2", "--out", "OUT"], 1, r"error: A3CConfig.gamma=2.0"),
    (["train", "a3c", "--env", "Pendulum-v1", "--out", "OUT"], 1, r"discrete action space"),
    (["train", "a3c", "--workers", "two", "--out", "OUT"], 2, r"invalid int value: 'two'"),
    (["train", "a4c", "--out", "OUT"], 2, r"invalid choice: 'a4c'"),
    (["train", "a3c", "--preset", "fast", "--out", "OUT"], 2, r"--preset: invalid choice: 'fast'"),
    (["train", "a3c"], 2, r"the following arguments are required: --out"),
    (["train"], 1, r"error: name the algorithm to train \(one_step_q, one_step_sarsa, n_step_q, "
                   r"a3c, a2c, acer\) or pass --resume"),
    (["train", "n_step_q", "--final-epsilons", "0.1", "x", "--out", "OUT"], 2,
     r"invalid float value: 'x'"),
    (["train", "one_step_q", "--final-epsilon-probs", "1", "1", "1", "--out", "OUT"], 1,
     r"error: OneStepQConfig.final_epsilon_probs=\(1.0, 1.0, 1.0\) .* summing to 1"),
    (["train", "--resume", "MISSING"], 1, r"error: no asyncrl_lab run at"),
    (["train", "--resume", "SAVED", "--steps", "10"], 1, r"error: the run to resume is already"),
    (["evaluate", "MISSING"], 1, r"error: no asyncrl_lab run at"),
    (["evaluate", "CORRUPTED"], 1, r"error: .* not a readable asyncrl_lab checkpoint"),
    (["train", "a3c", "--out", "FILE/run"], 1, r"error: cannot save the run in"),
    (["train", "a2c", "--n-envs", "0", "--out", "OUT"], 1, r"error: A2CConfig.n_envs=0"),
    (["train", "a2c", "--device", "gpu0", "--out", "OUT"], 1, r"error: A2CConfig.device='gpu0'"),
    (["train", "acer", "--replay-ratio", "-1", "--out", "OUT"], 1,
     r"error: ACERConfig.replay_ratio=-1.0"),
    (["train", "acer", "--trust-region", "maybe", "--out", "OUT"], 2, r"--trust-region"),
]


@pytest.mark.parametrize("argv, code, pattern", CLI_CASES,
                         ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_bad_input(argv, code, pattern, saved_run, tmp_path, no_process_may_start):
    (tmp_path / "FILE").write_text("not a directory")
    places = {"SAVED": str(saved_run), "MISSING": str(tmp_path / "missing"),
              "OUT": str(tmp_path / "out"), "FILE/run": str(tmp_path / "FILE" / "run"),
              "CORRUPTED": str(corrupt(saved_run, tmp_path, "garbage"))}
    argv = [places.get(a, a) for a in argv]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            result = main(argv)
        except SystemExit as exit_:  # argparse's own errors
            result = exit_.code
    assert result == code
    assert "Traceback" not in stderr.getvalue()
    assert re.search(pattern, stderr.getvalue()), stderr.getvalue()
