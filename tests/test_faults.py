"""Fault injection over every algorithm: interrupts at start-up, mid-rollout and mid-update;
exceptions in a worker at start and mid-run; a killed worker; a killed parent; SIGTERM to the
parent; a diverging loss; poisoned parameters; failing checkpoint writes. Each case checks: no hang, no process left, the user told what
happened, the run's data so far kept."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import psutil
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.algos import ALGORITHMS
from asyncrl_lab.config import A3CConfig
from asyncrl_lab.optim import make_optimizer
from asyncrl_lab.parallel import Outcome, _resource_tracker_running, _stop_resource_tracker
from asyncrl_lab.run import non_finite_parts
from asyncrl_lab.training import _to_run

from helpers import (RecurrentA3CConfig, catches_signal, children_of, descendants_of, poison_after_first_read,
                     rewrite_parameters_until, subprocess_env, when, workers_of)

pytestmark = pytest.mark.slow  # make test-fast leaves it out

SLOW = dict(env="helpers:SlowCartPole-v0", workers=2, total_steps=10_000_000, progress=False)


ASYNCHRONOUS = sorted(name for name, module in ALGORITHMS.items()
                      if hasattr(module, "worker"))  # A2C's faults are in test_a2c.py


@pytest.fixture(params=ASYNCHRONOUS + ["a3c_lstm"])
def faulty(request, monkeypatch, tmp_path):
    """Returns inject(fault): runs of this algorithm get the fault ("point:action[:after]");
    "a3c_lstm" is A3C with an LSTM (runs of "a3c" default to lstm_cells=16, obs_norm=True)."""
    algo = "a3c" if request.param == "a3c_lstm" else request.param
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("ASYNCRL_FAULT_ALGO", algo)
    monkeypatch.setenv("ASYNCRL_FAULT_DIR", str(markers))
    monkeypatch.setenv("ASYNCRL_FAULT", "none:none")
    real = ALGORITHMS[algo]
    monkeypatch.setitem(ALGORITHMS, algo, types.SimpleNamespace(
        Config=RecurrentA3CConfig if request.param == "a3c_lstm" else real.Config,
        build_shared=real.build_shared, make_network=real.make_network,
        worker=__import__("helpers").faulty_worker))

    def inject(fault):
        monkeypatch.setenv("ASYNCRL_FAULT", fault)
        return algo
    inject.markers = markers
    inject.algo = algo
    inject.options = {"lstm_cells": 16, "obs_norm": True} if request.param == "a3c_lstm" else {}  # for a new process
    return inject


def interrupt_parent():
    os.kill(os.getpid(), signal.SIGINT)


def assert_saved(out, status, min_step=0):
    saved = lab.load(out)
    assert saved.status == status and saved.global_step >= min_step
    assert all(torch.isfinite(p).all() for p in saved.model.parameters())
    return saved


def test_interrupt_at_start_up(faulty, sigint_raises_keyboard_interrupt, tmp_path):
    algo = faulty("none:none")
    fired = when(lambda: len(workers_of()) >= 1, interrupt_parent)  # spawned, still importing
    with pytest.warns(UserWarning, match="interrupted at global step 0"):
        run = lab.train(algo, out=tmp_path / "run", **SLOW)
    assert time.time() - fired["t"] < 10.0
    assert run.status == "interrupted" and run.global_step == 0
    assert children_of() == []
    assert_saved(tmp_path / "run", "interrupted")


@pytest.mark.parametrize("point", ["sync", "update"])
def test_interrupt_mid_rollout_and_mid_update(faulty, sigint_raises_keyboard_interrupt, tmp_path,
                                              point):
    # "sync" marks a worker that has started a rollout; "update:slow" holds workers inside their
    # update for half a second, so the interrupt lands there.
    algo = faulty(f"{point}:slow:3" if point == "update" else "none:none")
    marker = faulty.markers / f"{point}.0"
    fired = when(lambda: marker.exists() and len(list(faulty.markers.glob("lr.*"))) > 0,
                 interrupt_parent)
    with pytest.warns(UserWarning, match="interrupted"):
        run = lab.train(algo, out=tmp_path / "run", **SLOW)
    assert time.time() - fired["t"] < 5.0
    assert run.status == "interrupted" and run.global_step > 0
    assert children_of() == []
    saved = assert_saved(tmp_path / "run", "interrupted", min_step=1)
    assert saved.global_step == run.global_step


@pytest.mark.parametrize("fault, where", [("start:raise", "start #1"),
                                          ("update:raise:20", "update #21")])
def test_an_exception_in_a_worker_stops_the_run_and_keeps_it(faulty, tmp_path, fault, where):
    algo = faulty(fault)
    with pytest.raises(lab.WorkerError, match=f"injected fault at {where}") as info:
        lab.train(algo, out=tmp_path / "run", **{**SLOW, "env": "CartPole-v1"})
    err = info.value
    assert "worker" in str(err) and "Traceback" in err.traceback
    assert "the partial run is saved in" in str(err)
    assert err.run.status == "failed"
    assert children_of() == []
    assert_saved(tmp_path / "run", "failed")


def test_a_killed_worker_is_reported_and_the_run_kept(faulty, tmp_path):
    algo = faulty("none:none")
    fired = when(lambda: len(list(faulty.markers.glob("lr.*"))) >= 2,
                 lambda: os.kill(workers_of()[0].pid, signal.SIGKILL))
    with pytest.raises(lab.WorkerDied, match="SIGKILL"):
        lab.train(algo, out=tmp_path / "run", **SLOW)
    assert time.time() - fired["t"] < 5.0
    assert children_of() == []
    assert_saved(tmp_path / "run", "failed", min_step=1)


PARENT = textwrap.dedent("""
    import json, sys
    import asyncrl_lab as lab
    if __name__ == "__main__":
        lab.train(sys.argv[1], env="helpers:SlowCartPole-v0", workers=2, total_steps=10_000_000,
                  progress=False, out=sys.argv[2], checkpoint_every=500, **json.loads(sys.argv[3]))
""")


def _wait_for_file(path, timeout=60.0):
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"


def test_workers_exit_when_the_parent_is_killed_and_checkpoints_survive(faulty, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", PARENT, faulty.algo, str(out),
                             json.dumps(faulty.options)],
                            env=subprocess_env(), stdout=subprocess.DEVNULL)
    try:
        _wait_for_file(out / "checkpoint.pt")
        workers, everything = workers_of(proc.pid), descendants_of(proc.pid)
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=10)
        _, alive = psutil.wait_procs(everything, timeout=5)  # the fork server too
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lab.load(out).global_step >= 500  # the last periodic checkpoint


TERMINATED = textwrap.dedent("""
    import sys
    import asyncrl_lab as lab
    if __name__ == "__main__":
        algo, out = sys.argv[1], sys.argv[2]
        size = {"n_envs": 2} if algo == "a2c" else {"workers": 2}
        lab.train(algo, env="helpers:SlowCartPole-v0", total_steps=10_000_000, progress=False,
                  out=out, **size)
        print("train returned")
""")
CLI_TERMINATED = ["-m", "asyncrl_lab", "train", "a3c", "--env", "helpers:SlowCartPole-v0",
                  "--workers", "2", "--steps", "10000000", "--no-progress", "--out"]


@pytest.mark.parametrize("algo, how", [(algo, "script") for algo in sorted(ALGORITHMS)]
                         + [("a3c", "cli")])
def test_sigterm_stops_saves_the_run_and_exits(tmp_path, monkeypatch, algo, how):
    stepping, out = tmp_path / "stepping", tmp_path / "run"
    stepping.mkdir()
    monkeypatch.setenv("ASYNCRL_STEPPING_DIR", str(stepping))
    args = [*CLI_TERMINATED, str(out)] if how == "cli" else ["-c", TERMINATED, algo, str(out)]
    proc = subprocess.Popen([sys.executable, *args], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while len(list(stepping.iterdir())) < 1 and time.time() < deadline:
            time.sleep(0.02)
        kids = children_of(proc.pid)
        assert len(kids) >= (0 if algo == "a2c" else 2)  # A2C steps its envs in-process
        t = time.time()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
        assert time.time() - t <= 10.0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "train returned" not in stdout and "Traceback" not in stderr
    assert "training terminated at global step" in stderr and str(out) in stderr
    assert [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE] == []
    saved = assert_saved(out, "terminated", min_step=1)
    assert "terminated by SIGTERM" in saved.message


FAULTY_PARENT = textwrap.dedent("""
    import sys, types
    import asyncrl_lab as lab
    from asyncrl_lab.algos import ALGORITHMS
    from helpers import faulty_worker
    if __name__ == "__main__":
        real = ALGORITHMS[sys.argv[1]]
        ALGORITHMS[sys.argv[1]] = types.SimpleNamespace(
            Config=real.Config, build_shared=real.build_shared, make_network=real.make_network,
            worker=faulty_worker)
        lab.train(sys.argv[1], env="CartPole-v1", workers=2, total_steps=10_000_000,
                  progress=False, out=sys.argv[2])
""")


@pytest.mark.parametrize("faulty", ["a3c"], indirect=True)
def test_a_second_sigterm_ends_the_parent_at_once(faulty, tmp_path):
    """The first SIGTERM stops the run; while the parent waits for a worker that will not stop
    (it hangs in an update, so the parent waits its full grace period), a second one ends it."""
    faulty("update:hang:2")
    proc = subprocess.Popen([sys.executable, "-c", FAULTY_PARENT, faulty.algo,
                             str(tmp_path / "run")], env=subprocess_env(), stdout=subprocess.DEVNULL)
    try:
        _wait_for_file(faulty.markers / "hang.0")
        workers = workers_of(proc.pid)
        assert catches_signal(proc.pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while catches_signal(proc.pid, signal.SIGTERM) and time.time() < deadline:
            time.sleep(0.005)  # until the first one is handled
        assert proc.poll() is None  # still waiting for the hung worker
        t = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.time() - t < 1.0
        assert proc.returncode == -signal.SIGTERM  # ended by the signal itself, not an exit
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_diverging_loss_names_worker_and_step_and_keeps_the_last_good_checkpoint(faulty,
                                                                                   tmp_path):
    out = tmp_path / "run"
    with pytest.raises(lab.WorkerError, match=r"worker \d: the loss is nan at global step \d+"):
        lab.train(faulty.algo, env="helpers:NaNCartPole-v0", workers=2, total_steps=1_000_000,
                  progress=False, out=out, checkpoint_every=1000)
    assert children_of() == []
    assert_saved(out, "failed", min_step=1000)


def test_poisoned_parameters_never_replace_the_last_good_checkpoint(faulty, tmp_path):
    algo = faulty("update:poison:400")
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="not finite at global step [0-9,]+; not saving"):
        # the poisoning worker's error, or the other worker's NaN loss if it computes one first
        with pytest.raises(lab.WorkerError,
                           match="the shared parameters are NaN|the loss is nan") as info:
            lab.train(algo, out=out, checkpoint_every=200, **{**SLOW, "env": "CartPole-v1"})
    assert "the partial run is saved" not in str(info.value)
    saved = assert_saved(out, "running")  # the last periodic checkpoint, taken mid-run
    assert saved.global_step >= 200
    assert children_of() == []


def test_a_checkpoint_writes_exactly_the_state_it_checked(faulty, tmp_path, monkeypatch):
    """The shared parameters turn NaN right after the parent first reads them, as a worker's
    poisoned update could make them at any moment: a save that checked one read of the live
    network and wrote another would write NaN over the last good checkpoint, every time."""
    real = ALGORITHMS[faulty("none:none")]

    def build_shared(config, obs_shape, n_actions):
        shared = real.build_shared(config, obs_shape, n_actions)
        poison_after_first_read(shared["model"])
        return shared

    monkeypatch.setitem(ALGORITHMS, faulty.algo, types.SimpleNamespace(
        Config=real.Config, build_shared=build_shared, make_network=real.make_network,
        worker=real.worker))
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="network's parameters .*not finite at global step"):
        with pytest.raises(lab.WorkerError):  # the workers meet the NaN parameters
            lab.train(faulty.algo, out=out, checkpoint_every=200, **SLOW)
    saved = assert_saved(out, "running", min_step=200)  # the first periodic save, as it was read
    assert saved.global_step < 10_000
    assert children_of() == []


def test_a_failed_save_leaves_the_previous_checkpoint_intact(faulty, tmp_path, monkeypatch):
    run = lab.train(faulty.algo, env="CartPole-v1", workers=1, total_steps=2000, progress=False)
    run.save(tmp_path / "run")
    before = {k: v.clone() for k, v in lab.load(tmp_path / "run").model.state_dict().items()}
    files_before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with torch.no_grad():
        for p in run.model.parameters():
            p.add_(1.0)
    with pytest.raises(OSError, match="No space left on device.*saved there before is intact"):
        run.save(tmp_path / "run")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files_before
    for k, v in lab.load(tmp_path / "run").model.state_dict().items():
        assert torch.equal(v, before[k])


def test_failing_periodic_checkpoints_warn_and_training_goes_on(faulty, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.warns(UserWarning, match="checkpoint at global step .* failed"):
        run = lab.train(faulty.algo, env="CartPole-v1", workers=2, total_steps=6000, progress=False,
                        out=tmp_path / "run", checkpoint_every=1000)
    assert run.status == "finished" and run.global_step >= 6000
    assert children_of() == []


def test_the_finite_check_before_a_save_holds_while_workers_write_the_parameters():
    """Periodic saves read the shared parameters while workers update them. torch.isfinite reads
    each value twice, so on the live tensors a changing value could read as not finite and skip a
    good checkpoint; the check reads the run's snapshot."""
    model = lab.nets.ActorCritic((4,), 2).share_memory()
    config = A3CConfig()
    shared = {"model": model, "optimizer": make_optimizer(config, model.parameters())}

    def snapshot_is_finite():
        return non_finite_parts(_to_run("a3c", config, shared, Outcome())) == []

    context = torch.multiprocessing.get_context("spawn")
    stop, rewrites = context.Value("b", 0, lock=False), context.Value("l", 0, lock=False)
    tracker_was_running = _resource_tracker_running()
    writer = context.Process(target=rewrite_parameters_until, args=(model, stop, rewrites))
    writer.start()
    try:
        deadline = time.time() + 60
        while rewrites.value == 0 and time.time() < deadline:  # the writer starts up
            time.sleep(0.01)
        before = rewrites.value
        checks = [snapshot_is_finite() for _ in range(5_000)]
        assert rewrites.value - before > 1_000  # the writer was writing during the checks
    finally:
        stop.value = 1
        writer.join(timeout=30)
        if not tracker_was_running:  # spawning started it; the tests after this one count children
            _stop_resource_tracker()
    assert children_of() == []
    assert all(checks), f"{checks.count(False)} of {len(checks)} checks read a finite network " \
        "as not finite"
    with torch.no_grad():
        model.value.bias.fill_(float("nan"))
    assert non_finite_parts(_to_run("a3c", config, shared, Outcome())) == ["the network's parameters"]
