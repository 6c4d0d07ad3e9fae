"""What Ray costs: A3C with 2 workers on CartPole-v1 on the shared-memory runtime and on Ray
(a local Ray on this machine), side by side in one run.

    .venv/bin/python benchmarks/ray_overhead.py [--seeds 0 1 2] [--steps 150000] [--out FILE.json]

1. Steady-state env steps/s with rollouts of t_max = 5 (the paper's) and 20: a longer rollout
   sends the same number of steps in a quarter of the messages.
2. The parameter server's own time per update (applying one gradient to A3C's CartPole network
   with shared RMSProp, measured in this process), and one round trip worker -> server -> worker
   through Ray (a gradient out, theta back), against the time a worker in shared memory spends
   per update cycle (a rollout and an update).
3. Time and env steps to solve (a rolling mean of 475 over 100 episodes) with the preset's t_max.
Ray's start-up (its processes, actors) is reported apart; the steady rate excludes it, the time
to solve includes it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import asyncrl_lab as lab
from asyncrl_lab.algos import a3c
from asyncrl_lab.book.experiments import steady_rate
from asyncrl_lab.config import A3CConfig
from asyncrl_lab.envs import env_spaces
from asyncrl_lab.presets import preset_settings
from asyncrl_lab.provenance import provenance
from asyncrl_lab.ray_backend import ParameterServer, ray_session

from cartpole_time_to_solve import compare, run_ours

SETTINGS = dict(preset_settings("a3c", "CartPole-v1"), env="CartPole-v1", workers=2)
BACKENDS = {"processes": "shared memory", "ray": "Ray"}


def rates(backend: str, t_max: int, steps: int, seed: int) -> dict:
    run = lab.train("a3c", seed=seed, progress=False, backend=backend,
                    **{**SETTINGS, "t_max": t_max, "total_steps": steps})
    updates = int(run.history.staleness.sum())
    return {"steps_per_s": steady_rate(run), "updates": updates, "wall_time": run.wall_time,
            "global_step": run.global_step,
            # per worker: one rollout and one update, on average, while the run lasted
            "cycle_ms": 1e3 * run.wall_time * SETTINGS["workers"] / updates}


def server_costs(repeats: int = 2000) -> dict:
    """The server's compute per update, and a whole round trip through a local Ray."""
    import ray

    config = A3CConfig(**{k: v for k, v in SETTINGS.items() if k in A3CConfig.__dataclass_fields__})
    torch.manual_seed(0)
    shared = a3c.build_shared(config, *env_spaces("CartPole-v1"))
    size = sum(p.numel() for p in shared["model"].parameters())
    grads = np.random.default_rng(0).normal(size=size).astype(np.float32) * 1e-3
    server = ParameterServer(shared, config, 0)
    server.join(0)
    t = time.perf_counter()
    for _ in range(repeats):
        server.push(0, grads, 1e-4, 5, [], [], None, None)
    compute = (time.perf_counter() - t) / repeats
    t = time.perf_counter()
    with ray_session(cpus=2):
        started = time.perf_counter() - t
        remote = ray.remote(ParameterServer).options(num_cpus=0).remote(shared, config, 0)
        ray.get(remote.join.remote(0))
        for _ in range(50):  # warm-up
            ray.get(remote.push.remote(0, grads, 1e-4, 5, [], [], None, None))
        t = time.perf_counter()
        for _ in range(repeats):
            ray.get(remote.push.remote(0, grads, 1e-4, 5, [], [], None, None))
        round_trip = (time.perf_counter() - t) / repeats
    return {"parameters": size, "server_compute_ms": 1e3 * compute,
            "round_trip_ms": 1e3 * round_trip, "ray_start_s": started}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=150_000,
                        help="global steps of each steps/s run")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    started = time.time()
    results = {"settings": SETTINGS, "rates": {}}
    costs = server_costs()
    results["server"] = costs
    print(f"parameter server: {costs['server_compute_ms']:.3f} ms of compute per update "
          f"({costs['parameters']:,} parameters); one round trip through Ray "
          f"{costs['round_trip_ms']:.2f} ms; a local Ray starts in {costs['ray_start_s']:.1f} s")
    for t_max in (5, 20):
        for backend, label in BACKENDS.items():
            runs = [rates(backend, t_max, args.steps, seed) for seed in args.seeds]
            results["rates"][f"{backend}_t{t_max}"] = runs
            print(f"t_max {t_max:>2}, {label:>13}: "
                  f"{statistics.median(r['steps_per_s'] for r in runs):8,.0f} steps/s (median), "
                  f"{statistics.median(r['cycle_ms'] for r in runs):5.2f} ms per worker's update "
                  "cycle", flush=True)
        ratio = statistics.median(r["steps_per_s"] for r in results["rates"][f"ray_t{t_max}"]) / \
            statistics.median(r["steps_per_s"] for r in results["rates"][f"processes_t{t_max}"])
        results[f"ray_over_processes_t{t_max}"] = ratio
        print(f"t_max {t_max:>2}: Ray / shared memory, steps/s: {ratio:.2f}x", flush=True)
    methods = {backend: (label, lambda seed, backend=backend: run_ours(
                   "a3c", seed, dict(SETTINGS, total_steps=300_000, backend=backend)))
               for backend, label in BACKENDS.items()}
    results["solve"] = compare(methods, (("ray", "processes"),), args.seeds, SETTINGS)
    if args.out:
        results["provenance"] = provenance(wall_time=time.time() - started)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
