"""Importable helpers for the tests: worker processes (spawn) must import what they run."""
from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import psutil
import torch
from gymnasium.envs.classic_control import CartPoleEnv

from asyncrl_lab.config import A3CConfig, with_default
from asyncrl_lab.nets import ActorCritic, ActorQCritic, QNetwork, RecurrentActorCritic


class FaultyCartPole(CartPoleEnv):
    """CartPole that raises after `fail_after` steps: a fault injected from inside a worker."""

    def __init__(self, fail_after: int = 300, **kwargs):
        super().__init__(**kwargs)
        self.fail_after, self.steps = fail_after, 0

    def step(self, action):
        self.steps += 1
        if self.steps > self.fail_after:
            raise RuntimeError(f"injected fault after {self.fail_after} steps")
        return super().step(action)


gym.register("FaultyCartPole-v0", entry_point="helpers:FaultyCartPole", max_episode_steps=500)
gym.register("SlowCartPole-v0", entry_point="helpers:SlowCartPole", max_episode_steps=500)


class SlowCartPole(CartPoleEnv):
    """CartPole at about 1,000 steps/s, so that a run lasts long enough to be interrupted.

    With ASYNCRL_STEPPING_DIR set, each env leaves a file there once it has taken 100 steps, so
    a test can wait until workers are really stepping, however slowly the machine starts them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == 100 and os.environ.get("ASYNCRL_STEPPING_DIR"):
            open(os.path.join(os.environ["ASYNCRL_STEPPING_DIR"], str(os.getpid())), "w").close()
        time.sleep(0.001)
        return super().step(action)


def staggered_updates(ctx):
    """Each worker applies `updates` gradients of ones, worker r in time slots r, r+N, r+2N, ...

    Slots are far apart, so the updates never overlap and their result is exactly computable.
    """
    cfg = ctx.config
    local = torch.nn.Linear(2, 1)
    slot, updates = 0.05, 4
    start = ctx.shared["start_time"]
    for k in range(updates):
        target = start + slot * (ctx.rank + k * cfg.workers)
        time.sleep(max(0.0, target - time.time()))
        ctx.sync(local)
        local.weight.grad = torch.ones_like(local.weight)
        local.bias.grad = torch.ones_like(local.bias)
        ctx.apply_gradients(local, lr=0.01)
        ctx.add_steps(1)


def when(condition, action, timeout: float = 60.0) -> dict:
    """Call `action()` in a thread as soon as `condition()` holds; the returned dict gets the
    time it fired under "t"."""
    fired = {}

    def watch():
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                fired["t"] = time.time()
                action()
                return
            time.sleep(0.01)
    threading.Thread(target=watch, daemon=True).start()
    return fired


def descendants_of(pid=None) -> list:
    """Live (non-zombie) descendants of a process, this one by default."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for kid in kids:
        try:
            if kid.status() != psutil.STATUS_ZOMBIE:
                alive.append(kid)
        except psutil.NoSuchProcess:
            pass
    return alive


FORKSERVER = "from multiprocessing.forkserver import main"
RESOURCE_TRACKER = "from multiprocessing.resource_tracker import main"


def _cmdline(proc) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return ""


def _is_forkserver(proc) -> bool:
    """The fork server itself; a worker forked from it shares its command line, not its parent's."""
    try:
        return FORKSERVER in _cmdline(proc) and FORKSERVER not in _cmdline(proc.parent())
    except (psutil.NoSuchProcess, AttributeError):
        return False


def children_of(pid=None) -> list:
    """Live descendants of a process, without multiprocessing's fork server and resource
    tracker, which live as long as the process that started them (the parent-killed tests in
    test_faults and test_lifecycle show they go with it)."""
    return [kid for kid in descendants_of(pid)
            if not _is_forkserver(kid) and RESOURCE_TRACKER not in _cmdline(kid)]


def workers_of(pid=None) -> list:
    """The live worker processes of a training parent: spawned, or forked by the fork server."""
    return [kid for kid in children_of(pid)
            if "spawn_main" in _cmdline(kid) or FORKSERVER in _cmdline(kid)]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def catches_signal(pid: int, sig) -> bool:
    """Whether process `pid` has a handler installed for `sig` (Linux: /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return bool(caught & (1 << (sig - 1)))


def subprocess_env() -> dict:
    """The environment for a child Python that imports asyncrl_lab and these helpers."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))


class NaNCartPole(CartPoleEnv):
    """CartPole whose reward becomes NaN after `nan_after` steps: a diverging loss."""

    def __init__(self, nan_after: int = 2000, **kwargs):
        super().__init__(**kwargs)
        self.nan_after, self.steps = nan_after, 0

    def step(self, action):
        self.steps += 1
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, float("nan") if self.steps > self.nan_after else reward, terminated, \
            truncated, info


gym.register("NaNCartPole-v0", entry_point="helpers:NaNCartPole", max_episode_steps=500)

# Fault injection into any algorithm's worker, configured through the environment (which spawned
# workers inherit): ASYNCRL_FAULT="<point>:<action>[:<after>]" with point start|sync|update and
# action raise|slow|poison|hang; ASYNCRL_FAULT_ALGO names the real algorithm; ASYNCRL_FAULT_DIR is
# where workers leave marker files ("<point>.<rank>") and their learning rates ("lr.<rank>").


class FaultyContext:
    """Wraps a WorkerContext: marks, delays or breaks the worker at a chosen point."""

    def __init__(self, ctx, point, action, after):
        self._ctx, self._point, self._action, self._after = ctx, point, action, after
        self._counts = {}
        self._dir = os.environ["ASYNCRL_FAULT_DIR"]

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    def _at(self, point):
        self._counts[point] = self._counts.get(point, 0) + 1
        open(os.path.join(self._dir, f"{point}.{self._ctx.rank}"), "a").close()
        if point != self._point or self._counts[point] <= self._after:
            return
        if self._action == "raise":
            raise RuntimeError(f"injected fault at {point} #{self._counts[point]}")
        if self._action == "slow":
            time.sleep(0.5)
        if self._action == "hang":  # a worker that never stops on its own: the parent must end it
            open(os.path.join(self._dir, f"hang.{self._ctx.rank}"), "w").close()
            time.sleep(3600)
        if self._action == "poison":
            with torch.no_grad():
                for p in self._ctx.model.parameters():
                    p.fill_(float("nan"))
            raise FloatingPointError("injected: the shared parameters are NaN")

    def sync(self, local):
        self._at("sync")
        return self._ctx.sync(local)

    def apply_gradients(self, local, lr):
        self._at("update")
        with open(os.path.join(self._dir, f"lr.{self._ctx.rank}"), "a") as f:
            f.write(f"{self._ctx.global_step} {lr!r}\n")
        return self._ctx.apply_gradients(local, lr)


@dataclass(frozen=True)
class RecurrentA3CConfig(A3CConfig):
    """A3C with a small LSTM and normalized observations (as its CartPoleNoVel-v1 preset): the
    fault suite runs the recurrent worker through its faults."""

    lstm_cells: int = with_default(A3CConfig, "lstm_cells", 16)
    obs_norm: bool = with_default(A3CConfig, "obs_norm", True)


def faulty_worker(ctx):
    from asyncrl_lab.algos import ALGORITHMS

    point, action, *after = os.environ["ASYNCRL_FAULT"].split(":")
    faulty = FaultyContext(ctx, point, action, int(after[0]) if after else 0)
    faulty._at("start")
    ALGORITHMS[os.environ["ASYNCRL_FAULT_ALGO"]].worker(faulty)


# CartPole cut at 12 steps: random play both terminates and truncates episodes within it.
gym.register("ShortCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
             max_episode_steps=12)


class CountingEnv(gym.Env):
    """An env whose observation says where it is: [episode number, step in the episode, 1 if the
    state is terminal else 0, 0]. Episodes terminate at random (probability 0.15 a step) or are
    truncated at 12 steps, so a test can check that replayed trajectories follow the episodes."""

    observation_space = gym.spaces.Box(-1e6, 1e6, (4,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self):
        self.episode, self.t = -1, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(False), {}

    def step(self, action):
        self.t += 1
        terminated = bool(self.np_random.random() < 0.15)
        return self._obs(terminated), 1.0, terminated, False, {}

    def _obs(self, terminal):
        return np.array([self.episode, self.t, float(terminal), 0.0], dtype=np.float32)


gym.register("CountingEnv-v0", entry_point="helpers:CountingEnv", max_episode_steps=12)


def average_reporting_worker(ctx):
    """Saves the average policy network the worker was handed (ACER resume test), then stops."""
    torch.save(ctx.shared["average_model"].state_dict(),
               os.path.join(os.environ["ASYNCRL_REPORT_DIR"], f"average.{ctx.rank}.pt"))


class InProcessContext:
    """Stands in for a worker's or the coordinator's context so that a test can run an algorithm's
    real loop in its own process, for `updates` updates; subclasses record what they need in
    `apply_gradients` (appending one entry to `records` per update)."""

    def __init__(self, config, shared, updates):
        self.config, self.shared, self.model = config, shared, shared["model"]
        self.optimizer, self.seed, self.rank, self.name = shared["optimizer"], config.seed, 0, "test"
        self.steps, self.limit, self.records = 0, updates, []

    @property
    def global_step(self):
        return self.steps

    def running(self):
        return len(self.records) < self.limit

    def add_steps(self, n):
        self.steps += n
        return self.steps

    def episode(self, episode_return, length, actor=None):
        pass

    def diagnose(self, global_step, lr, grad_norm, terms):
        pass

    @torch.no_grad()
    def sync(self, local):
        for mine, shared in zip(local.parameters(), self.model.parameters()):
            mine.copy_(shared)


def rewrite_parameters_until(model, stop, rewrites):
    """Keep changing `model`'s shared parameters in place, always to finite values, as a worker's
    updates do, until `stop` is set; counts its rewrites."""
    torch.set_num_threads(1)
    params = list(model.parameters())
    with torch.no_grad():
        steps = [torch.full_like(p, 1e-3) for p in params]
        while not stop.value:
            torch._foreach_add_(params, steps)
            torch._foreach_sub_(params, steps)
            rewrites.value += 1


class PoisonedAfterRead:
    """Mixed into a shared network: right after the training parent first reads all of its
    parameters (to the end of `parameters()`, a `state_dict()` or a deep copy), they turn NaN
    in place, as a worker's poisoned update could make them at any moment. So a parent that
    checks one read and writes another writes a poisoned network, every time. Workers (other
    processes) and copies (not in shared memory) read it as it is."""

    def _poison(self):
        if os.getpid() == self._poisoning_pid and not self._poisoned:
            self._poisoned = True
            with torch.no_grad():
                for p in super().parameters():
                    if p.is_shared():
                        p.fill_(float("nan"))

    def parameters(self, recurse=True):
        yield from super().parameters(recurse)
        self._poison()

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        self._poison()
        return state

    def __deepcopy__(self, memo):
        poisoned_class = self.__class__
        self.__class__ = poisoned_class.__bases__[1]  # the network's own class copies it
        try:
            copied = copy.deepcopy(self, memo)
        finally:
            self.__class__ = poisoned_class
        self._poison()
        return copied


def _poisoned_class(network_class):
    name = f"PoisonedAfterRead{network_class.__name__}"  # importable by name, for spawned workers
    globals()[name] = type(name, (PoisonedAfterRead, network_class),
                           {"__module__": __name__, "__qualname__": name})
    return globals()[name]


_POISONED = {cls: _poisoned_class(cls)
             for cls in (ActorCritic, RecurrentActorCritic, ActorQCritic, QNetwork)}


def poison_after_first_read(model):
    """Arm `model` (a shared network, in this process) as `PoisonedAfterRead` describes."""
    model.__class__ = _POISONED[type(model)]
    model._poisoning_pid, model._poisoned = os.getpid(), False
    return model


def book_pages(back_matter: bool = True) -> list[str]:
    """The book's pages in the order of _toc.yml, with or without the back matter."""
    from pathlib import Path

    from asyncrl_lab.book.student import book_pages as pages  # not on a worker's import path
    return pages(Path(ROOT), back_matter)


def announced_a3c_worker(ctx):
    """A3C's worker, which first leaves a file named after its rank holding its pid in
    $ASYNCRL_STEPPING_DIR: a test can then kill the actor of a known rank."""
    from asyncrl_lab.algos import a3c

    with open(os.path.join(os.environ["ASYNCRL_STEPPING_DIR"], f"rank{ctx.rank}"), "w") as f:
        f.write(str(os.getpid()))
    a3c.worker(ctx)


RAY_SESSION_VAR = "ASYNCRL_RAY_SESSION"


def ray_processes() -> list:
    """Live processes of a local Ray started by asyncrl_lab (marked in their environment)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and RAY_SESSION_VAR in proc.environ():
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found
