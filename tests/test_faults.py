"""Fault injection over every algorithm: interrupts at start-up, mid-rollout and mid-update;
exceptions in a worker at start and mid-run; a killed worker; a killed parent; a diverging loss;
failing checkpoint writes. Each case checks: no hang, no process left, the user told what
happened, the run's data so far kept."""
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
from asyncrl_lab.parallel import _resource_tracker_running, _stop_resource_tracker
from asyncrl_lab.run import parameters_are_finite

from helpers import children_of, rewrite_parameters_until, subprocess_env, when, workers_of

SLOW = dict(env="helpers:SlowCartPole-v0", workers=2, total_steps=10_000_000, progress=False)


ASYNCHRONOUS = sorted(name for name, module in ALGORITHMS.items()
                      if hasattr(module, "worker"))  # A2C's faults are in test_a2c.py


@pytest.fixture(params=ASYNCHRONOUS)
def faulty(request, monkeypatch, tmp_path):
    """Returns inject(fault): runs of this algorithm get the fault ("point:action[:after]")."""
    algo = request.param
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("ASYNCRL_FAULT_ALGO", algo)
    monkeypatch.setenv("ASYNCRL_FAULT_DIR", str(markers))
    monkeypatch.setenv("ASYNCRL_FAULT", "none:none")
    real = ALGORITHMS[algo]
    monkeypatch.setitem(ALGORITHMS, algo, types.SimpleNamespace(
        build_shared=real.build_shared, make_network=real.make_network,
        worker=__import__("helpers").faulty_worker))

    def inject(fault):
        monkeypatch.setenv("ASYNCRL_FAULT", fault)
        return algo
    inject.markers = markers
    inject.algo = algo
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
    import sys, types
    import asyncrl_lab as lab
    if __name__ == "__main__":
        lab.train(sys.argv[1], env="helpers:SlowCartPole-v0", workers=2, total_steps=10_000_000,
                  progress=False, out=sys.argv[2], checkpoint_every=500)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_workers_exit_when_the_parent_is_killed_and_checkpoints_survive(faulty, tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", PARENT, faulty.algo, str(out)],
                            env=subprocess_env(), stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (out / "checkpoint.pt").exists() and time.time() < deadline:
            time.sleep(0.05)
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        proc.send_signal(sig)
        proc.wait(timeout=10)
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lab.load(out).global_step >= 500  # the last periodic checkpoint


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
    good checkpoint; the check reads a copy."""
    model = lab.nets.ActorCritic((4,), 2).share_memory()
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
        checks = [parameters_are_finite(model) for _ in range(20_000)]
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
    assert not parameters_are_finite(model)
