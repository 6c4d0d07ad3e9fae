"""Checkpoints round-trip; the CLI trains, saves and evaluates; bad checkpoints get clear errors."""
import datetime
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.nets import QNetwork
from asyncrl_lab.provenance import describe, describe_run

from helpers import ROOT, children_of, subprocess_env



@pytest.fixture(scope="module")
def short_run():
    return lab.train("a3c", env="CartPole-v1", workers=2, total_steps=5000, seed=3, progress=False)


def test_checkpoint_round_trip(short_run, tmp_path):
    short_run.save(tmp_path / "run")
    loaded = lab.load(tmp_path / "run")
    assert loaded.algo == "a3c" and loaded.config == short_run.config
    assert loaded.global_step == short_run.global_step and loaded.status == "finished"
    for k, v in short_run.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    np.testing.assert_array_equal(loaded.history.episode_return, short_run.history.episode_return)
    np.testing.assert_array_equal(loaded.history.global_step, short_run.history.global_step)
    np.testing.assert_array_equal(loaded.history.staleness, short_run.history.staleness)
    for name, tensors in short_run.optimizer_state.items():
        for a, b in zip(loaded.optimizer_state[name], tensors):
            assert torch.equal(a, b)
    assert loaded.evaluate(3, seed=7) == short_run.evaluate(3, seed=7)
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint.pt", "config.json", "diagnostics.csv",
                                                    "history.csv"]


def test_loading_bad_paths_and_files_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no asyncrl_lab run"):
        lab.load(tmp_path / "missing")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable asyncrl_lab checkpoint"):
        lab.load(tmp_path / "garbage.pt")


def test_a_malicious_checkpoint_does_not_execute(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": 1, "model": Exploit()}, f, protocol=2)
    with pytest.raises(ValueError):
        lab.load(tmp_path / "evil.pt")
    assert not marker.exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "asyncrl_lab", *args], capture_output=True,
                          text=True, env=subprocess_env(), cwd=ROOT, timeout=120)


def test_cli_trains_saves_and_evaluates(tmp_path):
    out = tmp_path / "x"
    result = _cli("train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "4000",
                  "--t-max", "10", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "a3c" and config["config"]["t_max"] == 10
    assert config["global_step"] >= 4000
    assert (out / "history.csv").read_text().startswith("worker,global_step,wall_time")
    result = _cli("evaluate", str(out), "--episodes", "2", "--seed", "5", "--json",
                  str(tmp_path / "eval.json"))
    assert result.returncode == 0, result.stderr
    assert "mean return over 2 episodes" in result.stdout
    record = json.loads((tmp_path / "eval.json").read_text())
    assert record["returns"] == lab.load(out).evaluate(2, seed=5)["returns"]  # the same play
    assert record["protocol"]["episodes"] == 2 and record["protocol"]["policy"] == "sampled"
    assert record["global_step"] == config["global_step"]
    assert record["provenance"]["command"].endswith(f"--json {tmp_path / 'eval.json'}")


def test_cli_records_the_provenance_of_each_segment_of_a_resumed_run(tmp_path):
    out = tmp_path / "x"
    first = _cli("train", "a3c", "--env", "CartPole-v1", "--workers", "2", "--steps", "3000",
                 "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr
    second = _cli("train", "--resume", str(out), "--steps", "6000", "--no-progress")
    assert second.returncode == 0, second.stderr
    segments = json.loads((out / "provenance.json").read_text())["segments"]
    run = lab.load(out)
    assert [s["from_step"] for s in segments] == [0, segments[0]["to_step"]]
    assert segments[0]["to_step"] >= 3000 and segments[1]["to_step"] == run.global_step
    assert all(s["status"] == "finished" for s in segments)
    assert sum(s["wall_time"] for s in segments) == pytest.approx(run.wall_time)
    assert segments[1]["command"] == f"python -m asyncrl_lab train --resume {out} --steps 6000 " \
                                     "--no-progress"
    for segment in segments:
        assert {"commit", "dirty", "versions", "cpu", "cores", "date"} <= set(segment)
        assert segment["versions"]["torch"] == torch.__version__
    # taken as training started (the commit and tree it started from), not when it ended
    started = datetime.datetime.fromisoformat(segments[1]["date"]).timestamp()
    assert started <= (out / "checkpoint.pt").stat().st_mtime - segments[1]["wall_time"] + 1
    # the line under a figure: every segment, plain text (a glued value shows markup as it is)
    line = describe_run(out)
    assert line.count("; ") == 1 and "`" not in line
    assert line.endswith(f"train --resume {out} --steps 6000 --no-progress")


def test_a_records_note_is_said_after_its_command():
    record = {"commit": "0123456789abcdef", "dirty": False, "date": "2026-12-07T15:49:20+00:00",
              "cores": 2, "cpu": "AMD EPYC", "wall_time": 90.0, "command": "python -m x"}
    assert describe(record) == ("commit 0123456789, 2026-12-07, 2 cores (AMD EPYC), 1.5 min: "
                                "python -m x")
    assert describe({**record, "note": "shared with tests"}).endswith("python -m x (shared with tests)")


def test_cli_trains_a_value_method_and_stops_at_a_return(tmp_path):
    out = tmp_path / "q"
    result = _cli("train", "n_step_q", "--steps", "1000000", "--t-max", "20", "--lr", "0.003",
                  "--epsilon-anneal-steps", "5000", "--final-epsilons", "0.1", "0.01",
                  "--final-epsilon-probs", "0.5", "0.5", "--target-update-interval", "1000",
                  "--stop-at-return", "60", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    saved = lab.load(out)
    assert saved.algo == "n_step_q" and saved.config.final_epsilons == (0.1, 0.01)
    assert isinstance(saved.model, QNetwork)
    assert saved.status == "finished" and saved.global_step < 1_000_000
    assert "stopped early" in saved.message and saved.history.first_reaching(60) is not None
    result = _cli("evaluate", str(out), "--episodes", "3")
    assert result.returncode == 0 and "mean return over 3 episodes" in result.stdout


def test_cli_bad_input_is_one_clear_line_not_a_traceback(tmp_path):
    result = _cli("train", "a3c", "--env", "CartPol-v1", "--out", str(tmp_path / "y"))
    assert result.returncode == 1
    assert "unknown environment id 'CartPol-v1'" in result.stderr and "Traceback" not in result.stderr
    result = _cli("evaluate", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "no asyncrl_lab run" in result.stderr
    result = _cli("train", "a3c", "--workers", "0", "--out", str(tmp_path / "z"))
    assert result.returncode == 1 and "workers" in result.stderr
    assert children_of() == []


def test_a_progress_callable_sees_the_run_advance():
    seen = []
    run = lab.train("a3c", env="CartPole-v1", workers=1, total_steps=4000, seed=0,
                    progress=lambda outcome: seen.append((outcome.global_step,
                                                          len(outcome.episodes))))
    steps = [s for s, _ in seen]
    assert steps == sorted(steps) and steps[-1] <= run.global_step
    assert seen[-1][1] > 0  # episodes arrive while the run is going
    with pytest.raises(ValueError, match="progress must be True, False or a callable"):
        lab.train("a3c", env="CartPole-v1", total_steps=10, progress="yes")


def test_training_writes_nothing_outside_the_run_directory(tmp_path):
    """The CLI run leaves its five files in --out and nothing in the working directory, the
    home directory or the temporary directory."""
    dirs = {name: tmp_path / name for name in ("cwd", "home", "tmp")}
    for d in dirs.values():
        d.mkdir()
    env = {**subprocess_env(), "HOME": str(dirs["home"]), "TMPDIR": str(dirs["tmp"])}
    out = tmp_path / "runs" / "x"
    subprocess.run([sys.executable, "-m", "asyncrl_lab", "train", "a3c", "--env", "CartPole-v1",
                    "--steps", "3000", "--out", str(out), "--checkpoint-every", "1000",
                    "--no-progress"], cwd=dirs["cwd"], env=env, check=True, timeout=120,
                   capture_output=True)
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "config.json", "diagnostics.csv",
                                       "history.csv", "provenance.json"]
    for name, d in dirs.items():
        assert list(d.rglob("*")) == [], f"something was written into {name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "home", "runs", "tmp"]
