"""The peer's first million steps on Pong: stable-baselines3's A2C (make_sb3_a2c in
atari_throughput.py: 16 envs, n_steps 5, lr 7e-4 constant, ent_coef 0.01), its log written in
asyncrl_lab's history format, so that the A2C chapter can set it beside this project's committed
Pong runs. Two settings:

* zoo: rl-zoo's Atari settings, as users run it (the Nature network, RMSpropTFLike with eps 1e-5
  inside the square root, vf_coef 0.25);
* asyncrl_lab: this project's A2C defaults in SB3's code (the A3C paper's network, torch's
  RMSprop with eps 1e-5, vf_coef 0.5), so that only the code and the env wrappers differ.

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/sb3_pong_learning.py --out results/sb3_a2c_pong \
        [--settings zoo] [--steps 1000000] [--seed 0]

Scores are whole games (SB3's Monitor, unclipped), steps are agent steps (4 frames each), as in
asyncrl_lab's logs. The log is rewritten at every progress line, so a stopped run keeps what it
played. At the end it prints the mean of the first 50 games, of the last 50 within the budget, and
the step at which the mean of 50 games first stood 5 points above the first 50, for this run and
for this project's committed 16-env runs of its defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import asyncrl_lab as lab  # first: its OpenMP setting must precede torch's; registers the ALE ids
import numpy as np
import stable_baselines3
from atari_throughput import ENV_ID, N_ENVS, make_sb3_a2c
from stable_baselines3.common.callbacks import BaseCallback

RESULTS = Path(__file__).resolve().parent.parent / "results"
# this project's committed runs of its defaults (16 envs, lr 7e-4 constant, t_max 5), seeds 0-2
OURS = {"asyncrl_lab A2C, seed 0": RESULTS / "a2c_pong_3m",
        "asyncrl_lab A2C, seed 1": RESULTS / "a2c_pong_attempts" / "seed_1",
        "asyncrl_lab A2C, seed 2": RESULTS / "a2c_pong_attempts" / "seed_2"}
WINDOW, POINTS = 50, 5


class EpisodeLog(BaseCallback):
    """Every finished game as an asyncrl_lab history row (env index as the worker), written to
    `path` every `report_every` steps with a progress line."""

    def __init__(self, path: Path, report_every: int):
        super().__init__()
        self.path, self.report_every = path, report_every
        self.rows, self.next_report = [], report_every

    def _on_training_start(self):
        self.start = time.perf_counter()
        self.lengths = np.zeros(self.training_env.num_envs, dtype=np.int64)

    def _on_step(self) -> bool:
        self.lengths += 1  # agent steps: one per env per call
        for index, info in enumerate(self.locals["infos"]):
            if "episode" in info:  # the Monitor's record of a finished game
                self.rows.append((index, self.num_timesteps, time.perf_counter() - self.start,
                                  float(info["episode"]["r"]), int(self.lengths[index])))
                self.lengths[index] = 0
        if self.num_timesteps >= self.next_report:
            self.next_report += self.report_every
            self.write()
            seconds = time.perf_counter() - self.start
            recent = np.mean([row[3] for row in self.rows[-WINDOW:]]) if self.rows else float("nan")
            print(f"{self.num_timesteps:>9,} steps  {seconds / 60:6.1f} min  "
                  f"{self.num_timesteps / seconds:5,.0f} steps/s  {len(self.rows):4} games  "
                  f"mean of the last {WINDOW}: {recent:6.1f}", flush=True)
        return True

    def write(self):
        lab.History(self.rows).to_csv(self.path)


def summary(history: lab.History, by_step: int) -> str:
    """The first 50 games' mean, the mean of the last 50 within `by_step`, and where the mean of
    50 first stood 5 points above the first."""
    scores, steps = history.episode_return, history.global_step
    within = scores[steps <= by_step]
    if len(within) < WINDOW:
        return f"only {len(within)} games by step {by_step:,}: too few to compare"
    first, at = scores[:WINDOW].mean(), within[-WINDOW:].mean()
    up = history.first_reaching(first + POINTS, window=WINDOW)
    reached = f"{up[0]:,}" if up else f"not by {steps[-1]:,}"
    return f"{first:8.1f} {at:8.1f} {at - first:+7.1f}   {reached}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path,
                        help="a new directory for history.csv and run.json")
    parser.add_argument("--steps", type=int, default=1_000_000, help="env steps to train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", choices=("zoo", "asyncrl_lab"), default="zoo",
                        help="rl-zoo's Atari settings, or this project's A2C defaults")
    parser.add_argument("--report-every", type=int, default=50_000, help="steps between reports")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=False)
    model, env = make_sb3_a2c(seed=args.seed, our_settings=args.settings == "asyncrl_lab")
    log = EpisodeLog(args.out / "history.csv", args.report_every)
    start = time.perf_counter()
    model.learn(total_timesteps=args.steps, callback=log)
    wall = time.perf_counter() - start
    env.close()
    log.write()
    (args.out / "run.json").write_text(json.dumps({
        "learner": "stable-baselines3 A2C", "settings": args.settings, "env": ENV_ID,
        "n_envs": N_ENVS, "steps": model.num_timesteps, "seed": args.seed, "wall_time": wall,
        "stable_baselines3": stable_baselines3.__version__, "cores": os.cpu_count(),
        "python": platform.python_version(),
        "command": f"benchmarks/sb3_pong_learning.py --out {args.out} --settings "
                   f"{args.settings} --steps {args.steps} --seed {args.seed}"}, indent=2) + "\n")
    print(f"\n{'run':<32}{'first 50':>9}{'at ' + f'{args.steps / 1e6:g}M':>10}{'gain':>8}   "
          f"+{POINTS} points first at")
    print(f"{'SB3 A2C, ' + args.settings + ' settings':<32}"
          + summary(lab.History.from_csv(args.out / "history.csv"), args.steps))
    for name, folder in OURS.items():
        print(f"{name:<32}" + summary(lab.History.from_csv(folder / "history.csv"), args.steps))


if __name__ == "__main__":
    main()
