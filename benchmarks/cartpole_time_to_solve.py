"""Time to solve CartPole-v1: this project's A3C (2 worker processes) against stable-baselines3's
A2C with rl-zoo's CartPole-v1 settings, side by side in one run, over several seeds.

"Solved" means the mean return of the last 100 episodes reaches 475. For each run it prints the
wall time and the env steps until then, and the median ratio A3C / A2C.

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/cartpole_time_to_solve.py --seeds 0 1 2 [--out results/x.json]

Wall time counts from the start of training, process start-up included for A3C and env and
model construction included for SB3. Both use the machine's cores: A3C one process per worker
with one torch thread each, SB3 one process with torch's default threads.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque

import asyncrl_lab as lab
from asyncrl_lab.experiments import A3C_CARTPOLE

THRESHOLD, WINDOW = 475.0, 100
A3C_SETTINGS = dict(A3C_CARTPOLE, workers=2, total_steps=250_000)


def run_a3c(seed: int) -> dict:
    run = lab.train("a3c", seed=seed, progress=False, **A3C_SETTINGS)
    hit = run.history.first_reaching(THRESHOLD, WINDOW)
    return {"solved": hit is not None, "steps": hit[0] if hit else None,
            "seconds": hit[1] if hit else None, "total_steps": run.global_step,
            "total_seconds": run.wall_time}


def run_sb3_a2c(seed: int, budget: int = 500_000) -> dict:
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    class SolvedCallback(BaseCallback):
        def __init__(self, t0):
            super().__init__()
            self.t0, self.returns, self.hit = t0, deque(maxlen=WINDOW), None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
                    if len(self.returns) == WINDOW and sum(self.returns) / WINDOW >= THRESHOLD:
                        self.hit = (self.num_timesteps, time.time() - self.t0)
                        return False
            return True

    t0 = time.time()
    # rl-zoo hyperparameters for A2C on CartPole-v1: 8 envs, ent_coef 0.0, the rest SB3 defaults.
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, verbose=0)
    callback = SolvedCallback(t0)
    model.learn(total_timesteps=budget, callback=callback)
    hit = callback.hit
    return {"solved": hit is not None, "steps": hit[0] if hit else None,
            "seconds": hit[1] if hit else None, "total_steps": model.num_timesteps,
            "total_seconds": time.time() - t0}


def _fmt(r):
    return f"{r['seconds']:6.1f} s {r['steps'] / 1e3:6.0f}k" if r["solved"] else "  not solved   "


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    rows = []
    print(f"{'seed':>4} | {'A3C (2 workers)':^17} | {'SB3 A2C (rl-zoo)':^17}")
    for seed in args.seeds:
        a3c, a2c = run_a3c(seed), run_sb3_a2c(seed)
        rows.append({"seed": seed, "a3c": a3c, "sb3_a2c": a2c})
        print(f"{seed:>4} | {_fmt(a3c)} | {_fmt(a2c)}", flush=True)
    both = [r for r in rows if r["a3c"]["solved"] and r["sb3_a2c"]["solved"]]
    summary = {"a3c_solved": sum(r["a3c"]["solved"] for r in rows),
               "sb3_solved": sum(r["sb3_a2c"]["solved"] for r in rows), "seeds": len(rows)}
    for key in ("seconds", "steps"):
        for name in ("a3c", "sb3_a2c"):
            solved = [r[name][key] for r in rows if r[name]["solved"]]
            summary[f"{name}_median_{key}"] = statistics.median(solved) if solved else None
        if both:
            summary[f"median_ratio_{key}"] = statistics.median(
                r["a3c"][key] / r["sb3_a2c"][key] for r in both)
    print(f"solved: A3C {summary['a3c_solved']}/{len(rows)}, SB3 A2C {summary['sb3_solved']}/{len(rows)}")
    if both:
        print(f"median A3C / SB3 A2C: wall time {summary['median_ratio_seconds']:.2f}x, "
              f"env steps {summary['median_ratio_steps']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"a3c_settings": A3C_SETTINGS, "rows": rows, "summary": summary}, f, indent=2)


if __name__ == "__main__":
    main()
