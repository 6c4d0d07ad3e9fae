"""Training throughput on Pong, side by side in one run: this project's A2C (16 envs on ale_py's
AtariVectorEnv, the paper's small network), stable-baselines3's A2C with rl-zoo's Atari settings
(16 envs, its AtariWrapper and CnnPolicy), and the raw AtariVectorEnv stepping 16 envs with random
actions (no network at all: the ceiling for any learner on this machine).

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/atari_throughput.py [--steps 150000] [--sb3-steps 50000] \
        [--out results/atari_throughput.json]

Rates are env steps (agent steps, 4 frames each) per second of steady state: each learner trains
for its budget of steps, and the rate is taken over the last 75% of them (start-up, ROM loading
and the first updates excluded). The raw env steps as many steps, timed after a warm-up of 25%.
SB3's CnnPolicy is the larger Nature network (Mnih et al. 2015); ours is the A3C paper's, as its
Atari experiments used. So that the ratio does not credit the code with what the smaller network
saves, SB3 is also measured with the paper's network as its features extractor. Each runs with
torch's default threads on all cores.

Each learner is measured twice, each time in a fresh process, because OpenMP (libgomp) reads how
long its idle threads spin when torch loads it: with the 30,000 rounds (GOMP_SPINCOUNT) that
importing asyncrl_lab first sets, and with libgomp's default of 300,000 (torch imported first),
which leaves threads spinning on the cores the emulators need. The ratios compare each learner as
it runs by default: ours with the package's setting, SB3 with libgomp's default.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

N_ENVS = 16
ENV_ID = "PongNoFrameskip-v4"
WARMUP = 0.25  # the fraction of each budget left out of the rate


def raw_vector_env_rate(steps: int) -> float:
    from ale_py.vector_env import AtariVectorEnv

    env = AtariVectorEnv("pong", N_ENVS, autoreset_mode="SameStep", reward_clipping=False,
                         use_fire_reset=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(int(WARMUP * steps) // N_ENVS):
        env.step(rng.integers(0, 6, N_ENVS))
    start = time.perf_counter()
    for _ in range(steps // N_ENVS):
        env.step(rng.integers(0, 6, N_ENVS))
    rate = steps // N_ENVS * N_ENVS / (time.perf_counter() - start)
    env.close()
    return rate


def ours_rate(steps: int) -> float:
    from asyncrl_lab.experiments import training_rate

    _, rate = training_rate("a2c", env=ENV_ID, n_envs=N_ENVS, total_steps=steps, seed=0,
                            warmup=WARMUP)
    return rate


def rate_in_fresh_process(learner: str, steps: int, openmp_default: bool) -> float:
    """`learner`'s rate measured by this script in a new process: importing asyncrl_lab first, or,
    with `openmp_default`, torch first (the OpenMP variables unset either way)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    command = [sys.executable, __file__, "--child", learner, "--steps", str(steps)]
    out = subprocess.run(command + ["--openmp-default"] * openmp_default, env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def sb3_rate(steps: int, paper_network: bool = False) -> float:
    """SB3's A2C with rl-zoo's Atari settings; with `paper_network`, the A3C paper's network in
    place of the Nature network."""
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.vec_env import VecFrameStack

    samples = []

    class PaperNetwork(BaseFeaturesExtractor):
        """The layers of asyncrl_lab's AtariTrunk; SB3 scales the frames to [0, 1] itself."""

        def __init__(self, observation_space):
            super().__init__(observation_space, features_dim=256)
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(observation_space.shape[0], 16, 8, stride=4), torch.nn.ReLU(),
                torch.nn.Conv2d(16, 32, 4, stride=2), torch.nn.ReLU(), torch.nn.Flatten(),
                torch.nn.Linear(32 * 9 * 9, 256), torch.nn.ReLU())

        def forward(self, observations):
            return self.net(observations)

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            samples.append((time.perf_counter(), self.num_timesteps))
            return True

    # rl-zoo's a2c.yml, atari: 16 envs, AtariWrapper, 4 stacked frames, CnnPolicy, ent_coef 0.01,
    # vf_coef 0.25, RMSpropTFLike with eps 1e-5 (n_steps 5 and lr 7e-4 are SB3's defaults)
    env = VecFrameStack(make_atari_env(ENV_ID, n_envs=N_ENVS, seed=0), n_stack=4)
    policy_kwargs = dict(optimizer_class=RMSpropTFLike, optimizer_kwargs=dict(eps=1e-5))
    if paper_network:
        # net_arch=[]: heads straight on the 256 features, as NatureCNN gets by default (SB3 puts
        # two 64-unit layers per head after any other extractor)
        policy_kwargs.update(features_extractor_class=PaperNetwork, net_arch=[])
    model = A2C("CnnPolicy", env, ent_coef=0.01, vf_coef=0.25, seed=0, verbose=0,
                policy_kwargs=policy_kwargs)
    model.learn(total_timesteps=steps, callback=Clock())
    env.close()
    after = [(t, s) for t, s in samples if s >= WARMUP * steps]
    (t1, s1), (t2, s2) = after[0], after[-1]
    return (s2 - s1) / (t2 - t1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150_000,
                        help="env steps for this project's A2C and the raw env")
    parser.add_argument("--sb3-steps", type=int, default=50_000,
                        help="env steps for stable-baselines3's A2C (about 3x slower)")
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--child", choices=("ours", "sb3", "sb3-paper-network"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--openmp-default", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.openmp_default:
            import torch  # noqa: F401  (first: libgomp loads before asyncrl_lab sets its spin)
        import asyncrl_lab  # noqa: F401  (also registers the ALE ids SB3 makes)
        if args.child == "ours":
            print(ours_rate(args.steps))
        else:
            print(sb3_rate(args.steps, paper_network=args.child == "sb3-paper-network"))
        return
    print(f"{ENV_ID}, {N_ENVS} envs, {os.cpu_count()} cores; steady-state env steps/s")
    raw = "raw AtariVectorEnv (random actions)"
    ours, ours_default = "asyncrl_lab A2C", "asyncrl_lab A2C, libgomp's default spin"
    sb3, sb3_short = "stable-baselines3 A2C", "stable-baselines3 A2C, asyncrl_lab's spin"
    sb3_paper = "stable-baselines3 A2C, the paper's network"
    runs = ((raw, lambda: raw_vector_env_rate(args.steps), args.steps),
            (ours, lambda: rate_in_fresh_process("ours", args.steps, False), args.steps),
            (ours_default, lambda: rate_in_fresh_process("ours", args.steps, True), args.steps),
            (sb3, lambda: rate_in_fresh_process("sb3", args.sb3_steps, True), args.sb3_steps),
            (sb3_short, lambda: rate_in_fresh_process("sb3", args.sb3_steps, False),
             args.sb3_steps),
            (sb3_paper, lambda: rate_in_fresh_process("sb3-paper-network", args.sb3_steps, True),
             args.sb3_steps))
    rates = {}
    for name, measure, steps in runs:
        rates[name] = measure()
        print(f"  {name:<40} {rates[name]:8,.0f} steps/s  ({steps:,} steps)", flush=True)
    print(f"asyncrl_lab A2C / stable-baselines3 A2C: {rates[ours] / rates[sb3]:.2f}x "
          f"({rates[ours] / rates[sb3_short]:.2f}x against SB3 with asyncrl_lab's spin)")
    print(f"asyncrl_lab A2C / SB3, the same network: {rates[ours] / rates[sb3_paper]:.2f}x")
    print(f"asyncrl_lab A2C / raw vector env:        {rates[ours] / rates[raw]:.0%}")
    print(f"asyncrl_lab A2C, its spin / libgomp's:   {rates[ours] / rates[ours_default]:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": ENV_ID, "n_envs": N_ENVS, "cores": os.cpu_count(),
                       "steps": args.steps, "sb3_steps": args.sb3_steps, "rates": rates,
                       "ours_over_sb3": rates[ours] / rates[sb3],
                       "ours_over_sb3_with_our_spin": rates[ours] / rates[sb3_short],
                       "ours_over_sb3_same_network": rates[ours] / rates[sb3_paper],
                       "ours_over_raw": rates[ours] / rates[raw],
                       "our_spin_over_default_spin": rates[ours] / rates[ours_default]},
                      f, indent=2)


if __name__ == "__main__":
    main()
