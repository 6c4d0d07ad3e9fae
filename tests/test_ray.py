"""The asynchronous methods on Ray (`ray_backend`): the parameter server's arithmetic, learning,
the lifecycle (Ctrl-C, SIGTERM, a worker's exception, a killed actor, a killed parent, nothing
left behind) and a two-node cluster on loopback."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import psutil
import pytest
import torch

from asyncrl_lab.algos import acer as ACER
from asyncrl_lab.config import A3CConfig
from asyncrl_lab.envs import env_spaces
from asyncrl_lab.optim import make_optimizer
from asyncrl_lab.parallel import WorkerDied, WorkerError
from asyncrl_lab.nets import Moments, merge_moments
from asyncrl_lab.ray_backend import SESSION_PREFIX, moments_since, run_workers_ray, session_root

import asyncrl_lab as lab

from helpers import announced_a3c_worker, ray_processes, staggered_updates, subprocess_env, when


def moments(x) -> Moments:
    return Moments(float(len(x)), x.mean(0), x.var(0))


def test_merged_moments_are_those_of_the_whole_sample():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(-1, 5, (7, 4))
    merged = merge_moments(moments(a), moments(b))
    whole = moments(np.concatenate([a, b]))
    assert merged.count == whole.count
    np.testing.assert_allclose(merged.mean, whole.mean)
    np.testing.assert_allclose(merged.var, whole.var)
    since = moments_since(moments(a), whole)  # the inverse: b's moments from a's and the whole's
    assert since.count == 7
    np.testing.assert_allclose(since.mean, b.mean(0))
    np.testing.assert_allclose(since.var, b.var(0))
    empty = moments_since(whole, whole)
    assert empty.count == 0
    unchanged = merge_moments(whole, empty)
    assert unchanged.count == whole.count
    np.testing.assert_allclose(unchanged.var, whole.var)
    first = merge_moments(Moments(0.0, np.zeros(4), np.ones(4)), moments(b))  # a new normalizer's
    np.testing.assert_allclose(first.var, b.var(0))


slow = pytest.mark.slow  # make test-fast leaves these out


@pytest.fixture(autouse=True)
def stepping_dir(tmp_path, monkeypatch):
    """Where the workers' envs report that they are stepping; the tests' modules (helpers) made
    importable by the Ray workers, which inherit this environment."""
    path = tmp_path / "stepping"
    path.mkdir()
    monkeypatch.setenv("ASYNCRL_STEPPING_DIR", str(path))
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    return path


def no_ray_left():
    _, alive = psutil.wait_procs(ray_processes(), timeout=15)
    assert alive == [], [" ".join(p.cmdline()[:3]) for p in alive]


@slow
def test_a3c_on_ray_learns_cartpole():
    before = set(glob.glob(os.path.join(session_root(), SESSION_PREFIX + "*")))
    run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=300_000, seed=0,
                    backend="ray", stop_at_return=475, progress=False)
    assert run.history.first_reaching(475) is not None, \
        f"best rolling-100 mean {run.history.rolling_mean(100)[99:].max():.1f}"
    assert set(np.unique(run.history.worker)) == {0, 1}
    assert 0 < run.history.staleness.sum() <= run.global_step  # one entry per update
    # the run's parameters are the server's: an untrained network balances ~20 steps
    assert run.evaluate(episodes=5)["mean"] >= 200
    no_ray_left()
    assert set(glob.glob(os.path.join(session_root(), SESSION_PREFIX + "*"))) == before
    assert not os.path.exists(os.path.expanduser("~/.ray/auth_token"))


@slow
def test_one_step_q_on_ray_learns_cartpole():
    """As test_learning's value-method test: a rolling mean of 200 within 200k steps."""
    run = lab.train("one_step_q", env="CartPole-v1", workers=2, total_steps=200_000, seed=0,
                    backend="ray", stop_at_return=200, progress=False)
    assert run.history.first_reaching(200) is not None, \
        f"best rolling-100 mean {run.history.rolling_mean(100)[99:].max():.1f}"
    no_ray_left()


@slow
def test_the_servers_observation_statistics_count_every_step_and_a_ray_run_resumes(tmp_path):
    """With obs_norm each worker sends the moments of its new observations; merged on the server
    they count each observation once, so the count is T, in the checkpoints written during the
    run (pulled from the server) as at its end. The run then resumes in shared memory."""
    seen = []

    def counts(outcome):
        saved = tmp_path / "run" / "checkpoint.pt"
        if saved.exists() and (not seen or saved.stat().st_mtime != seen[-1][0]):
            loaded = lab.load(tmp_path / "run")
            seen.append((saved.stat().st_mtime, int(loaded.model.normalizer.count),
                         loaded.global_step))

    run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=20_000, obs_norm=True,
                    seed=1, backend="ray", progress=counts, out=tmp_path / "run",
                    checkpoint_every=5_000)
    assert run.status == "finished"
    assert int(run.model.normalizer.count) == run.global_step
    assert 0.0 < float(run.model.normalizer.var.min())
    mid_run = [count for _, count, step in seen if step < 20_000]  # pulled from the server
    assert mid_run and mid_run[0] > 0 and mid_run == sorted(set(mid_run))
    resumed = lab.train(resume=tmp_path / "run", total_steps=30_000, backend="processes",
                        progress=False)
    assert resumed.status == "finished" and resumed.global_step >= 30_000
    assert len(resumed.history) > len(run.history)


@slow
@pytest.mark.parametrize("shared_stats", [True, False])
def test_the_server_applies_every_gradient_with_shared_or_per_worker_statistics(shared_stats):
    """test_lifecycle's staggered updates on Ray: two workers each apply 4 gradients of ones,
    far apart in time, to a Linear(2, 1) on the server; the result is exactly computable."""
    config = A3CConfig(workers=2, total_steps=8, lr=0.01, lr_anneal=False,
                       shared_optimizer_stats=shared_stats)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    start = model.weight.detach().clone()
    optimizer = make_optimizer(config, model.parameters())
    # the slots start once Ray has started (about 8 s here)
    shared = {"model": model, "optimizer": optimizer, "start_time": time.time() + 20.0}
    outcome = run_workers_ray(staggered_updates, config, shared)
    assert outcome.updates == 8 and outcome.global_step == 8

    def rmsprop_steps(n, lr=0.01, alpha=0.99, eps=0.1):
        sq, delta = 0.0, 0.0
        for _ in range(n):
            sq = alpha * sq + (1 - alpha)
            delta -= lr / (sq ** 0.5 + eps)
        return delta

    expected = rmsprop_steps(8) if shared_stats else 2 * rmsprop_steps(4)
    torch.testing.assert_close(model.weight, start + expected)
    # each worker read theta right after its own previous update: one update of the other's between
    assert outcome.staleness.tolist() == [1, 7]
    no_ray_left()


@slow
def test_a_workers_exception_on_ray_is_reraised_with_its_traceback():
    with pytest.raises(WorkerError) as caught:
        lab.train("a3c", env="helpers:FaultyCartPole-v0", workers=2, total_steps=50_000,
                  backend="ray", progress=False)
    assert "injected fault after 300 steps" in str(caught.value)
    assert caught.value.outcome.status == "failed"
    no_ray_left()


@slow
def test_a_killed_actor_is_reported_with_its_rank(stepping_dir):
    config = A3CConfig(env="helpers:SlowCartPole-v0", workers=2, total_steps=120_000)
    from asyncrl_lab.algos import a3c

    shared = a3c.build_shared(config, *env_spaces(config.env))
    rank1 = stepping_dir / "rank1"
    when(rank1.exists, lambda: (time.sleep(1.0), os.kill(int(rank1.read_text()),
                                                         signal.SIGKILL)))
    with pytest.raises(WorkerDied) as caught:
        run_workers_ray(announced_a3c_worker, config, shared)
    assert caught.value.worker == 1 and "worker 1" in str(caught.value)
    no_ray_left()


DRIVER = textwrap.dedent("""
    import sys
    import asyncrl_lab as lab
    if __name__ == "__main__":
        lab.train("a3c", env="helpers:SlowCartPole-v0", workers=2, total_steps=120_000,
                  backend="ray", progress=False, out=sys.argv[1])
""")


def _start_driver(out):
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(out)], env=subprocess_env(),
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_steps(path, timeout=120.0):
    deadline = time.time() + timeout
    while len(list(path.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(list(path.iterdir())) >= 2, "the workers never started stepping"


@slow
@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_every_actor_and_keep_the_partial_run(stepping_dir, tmp_path,
                                                                     how):
    """Ctrl-C at a terminal reaches the whole process group (the driver, Ray's processes and its
    workers); SIGTERM only the driver. Either way the run stops in seconds and is saved with its
    episodes, the driver exits as after the signal, and Ray is gone."""
    proc = _start_driver(tmp_path / "run")
    try:
        _wait_for_steps(stepping_dir)
        t = time.time()
        if how == "ctrl_c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stopped_in = time.time() - t
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = lab.load(tmp_path / "run")
    assert run.status == {"ctrl_c": "interrupted", "sigterm": "terminated"}[how]
    assert len(run.history) > 0 and 0 < run.global_step < 120_000
    assert proc.returncode == {"ctrl_c": 0, "sigterm": 143}[how] and stopped_in < 30
    no_ray_left()


@slow
def test_killing_the_driver_ends_its_ray_and_removes_its_directory(stepping_dir):
    before = set(glob.glob(os.path.join(session_root(), SESSION_PREFIX + "*")))
    proc = _start_driver(stepping_dir.parent / "run")
    _wait_for_steps(stepping_dir)
    assert ray_processes() != []
    proc.kill()
    proc.wait()
    no_ray_left()
    deadline = time.time() + 15
    while set(glob.glob(os.path.join(session_root(), SESSION_PREFIX + "*"))) != before \
            and time.time() < deadline:
        time.sleep(0.1)
    assert set(glob.glob(os.path.join(session_root(), SESSION_PREFIX + "*"))) == before


TWO_NODE_DRIVER = textwrap.dedent("""
    import json, os, sys
    import ray
    import torch
    import asyncrl_lab as lab
    if __name__ == "__main__":
        ray.init(address=sys.argv[1], log_to_driver=False)
        nodes = {n["NodeID"]: n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]}
        run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=150_000, seed=0,
                        backend="ray", stop_at_return=150, progress=False)
        print(json.dumps({"status": run.status, "step": run.global_step,
                          "workers": sorted(set(run.history.worker.tolist())),
                          "cpus": sorted(nodes.values()),
                          "reached": run.history.first_reaching(150) is not None}), flush=True)
""")


@slow
def test_workers_on_a_second_node_train_the_shared_network(tmp_path):
    """A two-node Ray cluster on loopback: a head with no CPU for workers, a second node with 2.
    Every worker must run on the second node, and their updates still train theta."""
    env = {**subprocess_env(), "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    temp = tempfile.mkdtemp(prefix="ray2n-", dir=session_root())  # short: Ray's socket paths
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    port = "6391"
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=0",
                        "--include-dashboard=false", f"--temp-dir={temp}"],
                       env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2"],
                       env=env, check=True, capture_output=True, timeout=120)
        out = subprocess.run([sys.executable, "-c", TWO_NODE_DRIVER, f"127.0.0.1:{port}"],
                             env=env, capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stderr[-3000:]
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cpus"] == [0.0, 2.0]  # the workers (one CPU each) fit only the second node
    assert result["status"] == "finished" and result["workers"] == [0, 1]
    assert result["reached"]  # a rolling mean of 150: an untrained policy balances ~20 steps


@slow
def test_acer_on_ray_keeps_worker_0s_average_network():
    """ACER's average network theta_a lives in each worker; the run keeps worker 0's, which has
    moved from the initial network."""
    run = lab.train("acer", env="CartPole-v1", workers=2, total_steps=8_000, seed=0,
                    backend="ray", progress=False)
    torch.manual_seed(0)
    initial = ACER.build_shared(run.config, *env_spaces("CartPole-v1"))["average_model"]
    moved = {name for name, value in run.shared_modules["average_model"].items()
             if not torch.equal(value, initial.state_dict()[name])}
    assert "policy.weight" in moved and "trunk.0.weight" in moved
    no_ray_left()


@slow
def test_more_workers_than_the_clusters_cpus_is_an_error_not_a_hang():
    from asyncrl_lab.ray_backend import ray_session

    with ray_session(cpus=1):
        with pytest.raises(ValueError, match=r"workers=2 needs a CPU each, and the Ray cluster "
                                             r"has 1"):
            lab.train("a3c", env="CartPole-v1", workers=2, total_steps=1_000, backend="ray",
                      progress=False)
    no_ray_left()
