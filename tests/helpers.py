"""Importable helpers for the tests: worker processes (spawn) must import what they run."""
from __future__ import annotations

import os
import time

import gymnasium as gym
import psutil
import torch
from gymnasium.envs.classic_control import CartPoleEnv


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
    """CartPole at about 1,000 steps/s, so that a run lasts long enough to be interrupted."""

    def step(self, action):
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


def children_of(pid=None) -> list:
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


def workers_of(pid=None) -> list:
    """The live worker processes of a training parent (not multiprocessing's resource tracker)."""
    workers = []
    for kid in children_of(pid):
        try:
            if "spawn_main" in " ".join(kid.cmdline()):
                workers.append(kid)
        except psutil.NoSuchProcess:
            pass
    return workers


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env() -> dict:
    """The environment for a child Python that imports asyncrl_lab and these helpers."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
