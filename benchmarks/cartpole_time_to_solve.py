"""Time to solve CartPole-v1: this project's A3C (2 worker processes), A2C (one process, 16 envs)
and ACER (2 worker processes, replay) against stable-baselines3's A2C with rl-zoo's CartPole-v1
settings, side by side in one run, over several seeds.

"Solved" means the mean return of the last 100 episodes reaches 475. For each run it prints the
wall time and the env steps until then, the median ratios to SB3's A2C, and ACER's to A3C (ACER's
point is sample efficiency). A seed that does not solve within its budget counts as infinitely
slow in the ratios of medians over all seeds.

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/cartpole_time_to_solve.py --seeds 0 1 2 [--out results/x.json]
    .venv/bin/python benchmarks/cartpole_time_to_solve.py --methods acer a3c   # no SB3 needed

Wall time counts from the start of training, process start-up included for A3C and ACER and env
and model construction included for both A2Cs. All use the machine's cores: A3C and ACER one
process per worker with one torch thread each, the A2Cs one process with torch's default threads.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import deque
from importlib import metadata

import asyncrl_lab as lab
from asyncrl_lab.presets import preset_settings
from asyncrl_lab.provenance import provenance

THRESHOLD, WINDOW = 475.0, 100
# each method's CartPole preset (asyncrl_lab/presets.py), with the benchmark's budget
SETTINGS = {"a3c": dict(preset_settings("a3c", "CartPole-v1"), workers=2, total_steps=250_000),
            "a2c": dict(preset_settings("a2c", "CartPole-v1"), total_steps=600_000),
            "acer": dict(preset_settings("acer", "CartPole-v1"), workers=2)}
METHODS = {"a3c": "A3C (2 workers)", "a2c": "A2C (16 envs)", "acer": "ACER (2 workers)",
           "sb3_a2c": "SB3 A2C (rl-zoo)"}


def run_ours(algo: str, seed: int, settings: dict | None = None) -> dict:
    """Train one of our methods with `settings` (its SETTINGS here by default) until solved."""
    t0 = time.time()
    run = lab.train(algo, seed=seed, progress=False, stop_at_return=THRESHOLD,
                    **(SETTINGS[algo] if settings is None else settings))
    total_seconds = time.time() - t0
    hit = run.history.first_reaching(THRESHOLD, WINDOW)
    return {"solved": hit is not None, "steps": hit[0] if hit else None,
            "seconds": hit[1] if hit else None, "total_steps": run.global_step,
            "total_seconds": total_seconds}


def solved_callback(t0: float):
    """An SB3 callback that stops training once the mean return of the last WINDOW episodes
    reaches THRESHOLD, and keeps (env steps, seconds since t0) then as `.hit`."""
    from stable_baselines3.common.callbacks import BaseCallback

    class SolvedCallback(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns, self.hit = deque(maxlen=WINDOW), None

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
                    if len(self.returns) == WINDOW and sum(self.returns) / WINDOW >= THRESHOLD:
                        self.hit = (self.num_timesteps, time.time() - t0)
                        return False
            return True

    return SolvedCallback()


def learn_sb3(model, budget: int, t0: float) -> dict:
    """Train an SB3 model until it solves the task or spends `budget` env steps."""
    callback = solved_callback(t0)
    model.learn(total_timesteps=budget, callback=callback)
    hit = callback.hit
    return {"solved": hit is not None, "steps": hit[0] if hit else None,
            "seconds": hit[1] if hit else None, "total_steps": model.num_timesteps,
            "total_seconds": time.time() - t0}


def run_sb3_a2c(seed: int, budget: int = 500_000) -> dict:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    t0 = time.time()
    # rl-zoo hyperparameters for A2C on CartPole-v1: 8 envs, ent_coef 0.0, the rest SB3 defaults.
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    return learn_sb3(A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, verbose=0), budget, t0)


def _fmt(r):
    return f"{r['seconds']:6.1f} s {r['steps'] / 1e3:6.0f}k" if r["solved"] else "  not solved   "


def parse_args(methods) -> argparse.Namespace:
    """The options every time-to-solve benchmark takes: --seeds, --methods (of `methods`), --out."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=list(methods), default=list(methods))
    parser.add_argument("--out", help="also write the results as JSON here")
    return parser.parse_args()


def compare(methods: dict, pairs, seeds, settings: dict, out: str | None = None,
            peers=("stable-baselines3",)) -> dict:
    """Run every method (name: (label, run(seed) -> result)) on every seed, one after the other,
    print each seed's row, the solved counts and, for each (method, baseline) in `pairs`, the
    ratios of their median wall times and env steps; optionally write it all as JSON, with the
    provenance and the versions of the `peers`' packages."""
    started = time.time()
    labels = {name: label for name, (label, _) in methods.items()}
    rows = []
    print(f"{'seed':>4} | " + " | ".join(f"{label:^17}" for label in labels.values()))
    for seed in seeds:
        row = {"seed": seed}
        for name, (_, run) in methods.items():
            row[name] = run(seed)
        rows.append(row)
        print(f"{seed:>4} | " + " | ".join(_fmt(row[name]) for name in methods), flush=True)
    summary = {"seeds": len(rows)}
    for name in methods:
        summary[f"{name}_solved"] = sum(r[name]["solved"] for r in rows)
        for key in ("seconds", "steps"):
            solved = [r[name][key] for r in rows if r[name]["solved"]]
            summary[f"{name}_median_{key}"] = statistics.median(solved) if solved else None
            summary[f"{name}_median_all_{key}"] = statistics.median(
                r[name][key] if r[name]["solved"] else math.inf for r in rows)
    print("solved: " + ", ".join(f"{label} {summary[name + '_solved']}/{len(rows)}"
                                 for name, label in labels.items()))
    for name, baseline in pairs:
        if name not in methods or baseline not in methods:
            continue
        both = [r for r in rows if r[name]["solved"] and r[baseline]["solved"]]
        line = []
        for key, what in (("seconds", "wall time"), ("steps", "env steps")):
            ratio = summary[f"{name}_median_all_{key}"] / summary[f"{baseline}_median_all_{key}"]
            summary[f"{name}_over_{baseline}_{key}"] = ratio if math.isfinite(ratio) else None
            if both:
                summary[f"{name}_over_{baseline}_paired_{key}"] = statistics.median(
                    r[name][key] / r[baseline][key] for r in both)
            line.append(f"{what} {ratio:.2f}x")
        print(f"median {labels[name]} / median {labels[baseline]} (all seeds): " + ", ".join(line))
    if out:
        record = provenance(wall_time=time.time() - started)
        for package in peers:
            try:
                record["versions"][package] = metadata.version(package)
            except metadata.PackageNotFoundError:  # a run of our methods only
                record["versions"][package] = None
        with open(out, "w") as f:
            json.dump({"settings": settings, "rows": rows, "summary": summary,
                       "provenance": record}, f, indent=2)
    return summary


def main():
    args = parse_args(METHODS)
    methods = {name: (label, run_sb3_a2c if name == "sb3_a2c" else
                      (lambda seed, name=name: run_ours(name, seed)))
               for name, label in METHODS.items() if name in args.methods}
    compare(methods, (("a3c", "sb3_a2c"), ("a2c", "sb3_a2c"), ("acer", "sb3_a2c"), ("acer", "a3c")),
            args.seeds, {k: v for k, v in SETTINGS.items() if k in methods}, args.out)


if __name__ == "__main__":
    main()
