"""Where this A2C's time goes on Pong: one training run (16 envs) with each part of the
coordinator's loop timed, beside the time the bare AtariVectorEnv takes for the same env steps.

    .venv/bin/python benchmarks/a2c_profile.py [--steps 100000] [--out results/a2c_profile.json]

The parts are timed by wrapping the functions the loop calls: the env step (ale_py's vector env
and this package's wrapper around it), the network's forward passes (batches of 16 while acting,
of 96 for the update), sampling the actions, the returns, the loss, and the update (backward,
gradient clipping, the optimizer's step). Times are per 80-step rollout (16 envs x t_max 5), over
the steps after a warm-up of 25%; what no wrapper covers (storing the rollout, the loop itself,
progress reports) is the remainder. The acting passes are also timed alone, in a loop of their
own on frames from the game.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import time

import asyncrl_lab as lab  # first: its OpenMP setting must precede torch's
import torch
from asyncrl_lab import envs
from asyncrl_lab.algos import a2c
from atari_throughput import WARMUP, raw_vector_env_rate

N_ENVS, T_MAX = 16, 5
ROLLOUT = N_ENVS * T_MAX


def profile(steps: int) -> tuple[dict, float, int]:
    """Seconds spent in each part after the warm-up, the wall time and env steps it covers."""
    seconds = collections.defaultdict(float)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start
        return wrapper

    forward = lab.nets.ActorCritic.forward

    def timed_forward(model, obs):
        return timed(f"forward pass, batch of {len(obs)}", forward)(model, obs)

    patches = [(envs.VectorEnv, "step", timed("env step", envs.VectorEnv.step)),
               (lab.nets.ActorCritic, "forward", timed_forward),
               (a2c, "sample_actions", timed("sampling the actions", a2c.sample_actions)),
               (a2c, "batched_n_step_returns", timed("n-step returns", a2c.batched_n_step_returns)),
               (a2c, "actor_critic_loss", timed("loss", a2c.actor_critic_loss)),
               (a2c, "gradient_update",
                timed("backward, clip and optimizer step", a2c.gradient_update))]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    marks = {}

    def on_progress(outcome):
        now = time.perf_counter()
        if "start" not in marks and outcome.global_step >= WARMUP * steps:
            seconds.clear()
            marks["start"] = (now, outcome.global_step)
        elif "start" in marks:
            marks["last"] = (now, outcome.global_step, dict(seconds))

    for owner, name, fn in patches:
        setattr(owner, name, fn)
    try:
        lab.train("a2c", env="ALE/Pong-v5", n_envs=N_ENVS, t_max=T_MAX, total_steps=steps,
                  seed=0, progress=on_progress)
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    if "last" not in marks:
        raise SystemExit(f"{steps:,} steps ran too briefly to time anything after the warm-up; "
                         "pass a larger --steps")
    (t0, step0), (t1, step1, parts) = marks["start"], marks["last"]
    return parts, t1 - t0, step1 - step0


def acting_passes_alone_ms(repeats: int = 300) -> float:
    """t_max forward passes for N_ENVS observations, in a loop of their own: ms per rollout."""
    vector_env = envs.make_vector_env("ALE/Pong-v5", N_ENVS, seed=0)
    obs = torch.as_tensor(vector_env.reset())
    vector_env.close()
    model = lab.nets.ActorCritic(obs.shape[1:], vector_env.n_actions)
    with torch.no_grad():
        for _ in range(repeats // 10):
            model(obs)
        start = time.perf_counter()
        for _ in range(repeats):
            model(obs)
    return (time.perf_counter() - start) / repeats * T_MAX * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps to train")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    parts, wall, steps = profile(args.steps)
    rollouts = steps / ROLLOUT
    per_rollout = {name: s / rollouts * 1000 for name, s in parts.items()}
    rollout_ms = wall / rollouts * 1000
    raw_rate = raw_vector_env_rate(args.steps)
    raw_ms = ROLLOUT / raw_rate * 1000
    acting_alone_ms = acting_passes_alone_ms()
    print(f"Pong, {N_ENVS} envs, t_max {T_MAX}, {os.cpu_count()} cores: ms per {ROLLOUT}-step "
          f"rollout ({steps:,} steps after the warm-up)")
    for name, ms in sorted(per_rollout.items(), key=lambda item: -item[1]):
        print(f"  {name:<36} {ms:6.2f}")
    other_ms = rollout_ms - sum(per_rollout.values())
    print(f"  {'the rest':<36} {other_ms:6.2f}")
    print(f"  {'total':<36} {rollout_ms:6.2f}  ({ROLLOUT / rollout_ms * 1000:,.0f} env steps/s)")
    print(f"the bare AtariVectorEnv, the same {ROLLOUT} steps: {raw_ms:.2f} ms "
          f"({raw_rate:,.0f} env steps/s); 40% of its rate allows {raw_ms / 0.4:.2f} ms")
    print(f"the {T_MAX} forward passes for {N_ENVS}, in a loop of their own: "
          f"{acting_alone_ms:.2f} ms")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": "ALE/Pong-v5", "n_envs": N_ENVS, "t_max": T_MAX,
                       "cores": os.cpu_count(), "steps_timed": steps, "ms_per_rollout": per_rollout,
                       "other_ms": other_ms, "rollout_ms": rollout_ms,
                       "rate": ROLLOUT / rollout_ms * 1000, "raw_rate": raw_rate,
                       "raw_rollout_ms": raw_ms, "acting_alone_ms": acting_alone_ms},
                      f, indent=2)


if __name__ == "__main__":
    main()
