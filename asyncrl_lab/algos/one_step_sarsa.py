"""Asynchronous one-step Sarsa: Algorithm S1 of Mnih et al. (2016) with the on-policy target
y = r + gamma * Q(s', a'; theta^-), a' being the action the worker takes next in s'.

The loop is one-step Q-learning's (`one_step_q.one_step_worker`); only the target differs.
"""
from __future__ import annotations

from ..config import OneStepSarsaConfig as Config
from ..parallel import AsyncContext
from ..returns import sarsa_target
from ..value_methods import build_shared, make_network
from .one_step_q import one_step_worker

__all__ = ["Config", "build_shared", "make_network", "worker"]


def worker(ctx: AsyncContext):
    one_step_worker(ctx, sarsa_target)
