"""The runtime's lifecycle guarantees: interrupts, worker exceptions, killed workers, no leftovers."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
import torch

import asyncrl_lab as lab
from asyncrl_lab.config import A3CConfig
from asyncrl_lab.optim import make_optimizer
from asyncrl_lab.parallel import run_workers

from helpers import (ROOT, children_of, descendants_of, staggered_updates, subprocess_env, when,
                     workers_of)

pytestmark = pytest.mark.slow  # make test-fast leaves it out

# About 1,000 steps/s per worker: 60 s if nothing stops it, far longer than any test waits.
LONG = dict(env="helpers:SlowCartPole-v0", workers=2, total_steps=120_000, progress=False)


@pytest.fixture(autouse=True)
def stepping_dir(tmp_path, monkeypatch):
    """Where SlowCartPole envs (in workers) report that they are stepping."""
    path = tmp_path / "stepping"
    path.mkdir()
    monkeypatch.setenv("ASYNCRL_STEPPING_DIR", str(path))
    return path


def wait_until_stepping(path, n=2, timeout=60.0):
    deadline = time.time() + timeout
    while len(list(path.iterdir())) < n and time.time() < deadline:
        time.sleep(0.02)
    assert len(list(path.iterdir())) >= n, "the workers never started stepping"


def _when_workers_run(action, n=2, timeout=60.0):
    """Call `action(worker_pids)` in a thread once `n` workers are up and stepping."""
    path = os.environ["ASYNCRL_STEPPING_DIR"]
    return when(lambda: len(os.listdir(path)) >= n,
                lambda: action([k.pid for k in workers_of()]), timeout)


def _foreground_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # in the child, before Python starts


def test_keyboard_interrupt_stops_workers_and_returns_the_partial_run(sigint_raises_keyboard_interrupt):
    fired = {}

    def interrupt(pids):
        fired["t"], fired["pids"] = time.time(), pids
        os.kill(os.getpid(), signal.SIGINT)  # what "interrupt kernel" does to a Jupyter kernel

    _when_workers_run(interrupt)
    with pytest.warns(UserWarning, match="interrupted"):
        run = lab.train("a3c", **LONG)
    assert time.time() - fired["t"] < 5.0
    assert run.status == "interrupted"
    assert len(run.history) > 0 and run.global_step > 0
    assert children_of() == []


def test_an_exception_in_a_worker_is_reraised_with_its_traceback():
    with pytest.raises(lab.WorkerError) as info:
        lab.train("a3c", env="helpers:FaultyCartPole-v0", workers=2, total_steps=10_000_000,
                  progress=False)
    err = info.value
    assert "injected fault after 300 steps" in str(err)
    assert "Traceback" in err.traceback and "helpers.py" in err.traceback
    assert err.run.status == "failed" and err.run.global_step > 0
    assert children_of() == []


def test_a_killed_worker_is_detected_and_reported():
    fired = {}

    def kill_one(pids):
        fired["t"] = time.time()
        os.kill(pids[0], signal.SIGKILL)

    _when_workers_run(kill_one)
    with pytest.raises(lab.WorkerDied, match="SIGKILL") as info:
        lab.train("a3c", **LONG)
    assert time.time() - fired["t"] < 5.0
    assert info.value.run.status == "failed"
    assert children_of() == []


def test_normal_finish_leaves_no_child_process():
    run = lab.train("a3c", env="CartPole-v1", workers=2, total_steps=3000, progress=False)
    assert run.status == "finished" and run.global_step >= 3000
    assert children_of() == []


SCRIPT = textwrap.dedent("""
    import json, sys
    import asyncrl_lab as lab
    if __name__ == "__main__":
        run = lab.train("a3c", env="helpers:SlowCartPole-v0", workers=2, total_steps=120_000,
                        progress=False)
        print(json.dumps({"status": run.status, "episodes": len(run.history)}), flush=True)
""")


def test_ctrl_c_at_the_terminal_reaches_the_whole_process_group(stepping_dir):
    # A terminal's Ctrl-C sends SIGINT to every process of the foreground group, workers included.
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True,
                            env=subprocess_env(), start_new_session=True,
                            preexec_fn=_foreground_sigint)
    try:
        wait_until_stepping(stepping_dir)
        workers, everything = workers_of(proc.pid), descendants_of(proc.pid)
        assert len(workers) >= 2
        t = time.time()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert time.time() - t < 5.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "interrupted" and result["episodes"] > 0
    assert proc.returncode == 0
    _, alive = psutil.wait_procs(everything, timeout=5)  # workers, fork server, tracker
    assert alive == []


def test_workers_exit_when_their_parent_is_killed(stepping_dir):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=subprocess_env(),
                            stdout=subprocess.DEVNULL)
    wait_until_stepping(stepping_dir)
    workers, everything = workers_of(proc.pid), descendants_of(proc.pid)
    assert len(workers) >= 2
    proc.kill()
    proc.wait()
    gone, alive = psutil.wait_procs(everything, timeout=5)  # the fork server too
    assert alive == []


@pytest.mark.parametrize("shared_stats", [True, False])
def test_workers_share_parameters_and_optimizer_statistics(shared_stats):
    """Two workers each apply 4 gradients of ones, one at a time, to one shared Linear(2, 1).

    With shared RMSProp statistics the 8 updates form one sequence; with per-worker statistics
    each worker's 4 updates use their own running average. Either way the parameters are shared,
    so both workers' updates land in the parent's tensor.
    """
    config = A3CConfig(workers=2, total_steps=8, lr=0.01, lr_anneal=False,
                       shared_optimizer_stats=shared_stats)
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1).share_memory()
    start = model.weight.detach().clone()
    optimizer = make_optimizer(config, model.parameters())
    shared = {"model": model, "optimizer": optimizer, "start_time": time.time() + 3.0}
    outcome = run_workers(staggered_updates, config, shared)
    assert outcome.updates == 8

    def rmsprop_steps(n, lr=0.01, alpha=0.99, eps=0.1):
        sq, delta = 0.0, 0.0
        for _ in range(n):
            sq = alpha * sq + (1 - alpha)
            delta -= lr / (sq ** 0.5 + eps)
        return delta

    expected = rmsprop_steps(8) if shared_stats else 2 * rmsprop_steps(4)
    torch.testing.assert_close(model.weight, start + expected)
    square_avg = optimizer.state["square_avg"][0]
    if shared_stats:
        torch.testing.assert_close(square_avg, torch.full_like(square_avg, 1 - 0.99 ** 8))
    else:
        assert torch.all(square_avg == 0)  # the parent's copy was never touched
    assert children_of() == []


def test_interrupt_kernel_in_jupyter_stops_the_run_and_keeps_it(stepping_dir):
    """The real thing: a Jupyter kernel runs train(), and the client presses "interrupt kernel"."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=ROOT, env=subprocess_env())
    try:
        kc.execute_interactive("import os, asyncrl_lab as lab; print(os.getpid())", timeout=60)
        kernel_pid = km.provisioner.process.pid
        msg_id = kc.execute("run = lab.train('a3c', env='helpers:SlowCartPole-v0', workers=2, "
                            "total_steps=120_000, progress=False)")
        wait_until_stepping(stepping_dir)
        assert len(workers_of(kernel_pid)) == 2
        t = time.time()
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert time.time() - t < 5.0
        assert reply["content"]["status"] == "ok"  # train returned the partial run, no exception
        outputs = []
        kc.execute_interactive("print(run.status, len(run.history) > 0)", timeout=30,
                               output_hook=lambda m: outputs.append(m["content"].get("text", "")))
        assert "interrupted True" in "".join(outputs)
        assert workers_of(kernel_pid) == []
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
