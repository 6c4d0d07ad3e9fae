"""Training throughput on Pong, side by side in one run: this project's A2C (16 envs on ale_py's
AtariVectorEnv, the paper's small network), stable-baselines3's A2C with rl-zoo's Atari settings
(16 envs, its AtariWrapper and CnnPolicy), and the raw AtariVectorEnv stepping 16 envs with random
actions (no network at all: the ceiling for any learner on this machine).

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/atari_throughput.py [--steps 150000] [--sb3-steps 50000] \
        [--rounds 3] [--out results/atari_throughput.json]

Rates are env steps (agent steps, 4 frames each) per second of steady state: each learner trains
for its budget of steps, and the rate is taken over the last 75% of them (start-up, ROM loading
and the first updates excluded). The raw env steps as many steps, timed after a warm-up of 25%.
The whole set is measured `--rounds` times, every learner once per round, and the medians are
reported with the range of each ratio over the rounds: on this machine one learner's rate moves
by about 10% from one measurement to the next.
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
    from asyncrl_lab.book.experiments import training_rate

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


def make_sb3_a2c(seed: int = 0, paper_network: bool = False, our_settings: bool = False):
    """SB3's A2C with rl-zoo's Atari settings, and its vector env; with `paper_network`, the A3C
    paper's network in place of the Nature network; with `our_settings`, the paper's network and
    asyncrl_lab's A2C defaults where rl-zoo's differ: vf_coef 0.5 and torch's RMSprop with eps
    1e-5 added outside the square root (SB3's own default optimizer)."""
    import torch
    from stable_baselines3 import A2C
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
    from stable_baselines3.common.vec_env import VecFrameStack

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

    # rl-zoo's a2c.yml, atari: 16 envs, AtariWrapper, 4 stacked frames, CnnPolicy, ent_coef 0.01,
    # vf_coef 0.25, RMSpropTFLike with eps 1e-5 (n_steps 5 and lr 7e-4 are SB3's defaults)
    env = VecFrameStack(make_atari_env(ENV_ID, n_envs=N_ENVS, seed=seed), n_stack=4)
    policy_kwargs = {} if our_settings else dict(optimizer_class=RMSpropTFLike,
                                                 optimizer_kwargs=dict(eps=1e-5))
    if paper_network or our_settings:
        # net_arch=[]: heads straight on the 256 features, as NatureCNN gets by default (SB3 puts
        # two 64-unit layers per head after any other extractor)
        policy_kwargs.update(features_extractor_class=PaperNetwork, net_arch=[])
    model = A2C("CnnPolicy", env, ent_coef=0.01, vf_coef=0.5 if our_settings else 0.25, seed=seed,
                verbose=0, policy_kwargs=policy_kwargs)
    return model, env


def sb3_rate(steps: int, paper_network: bool = False) -> float:
    """SB3's A2C (make_sb3_a2c) training rate over the steps after the warm-up."""
    from stable_baselines3.common.callbacks import BaseCallback

    samples = []

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            samples.append((time.perf_counter(), self.num_timesteps))
            return True

    model, env = make_sb3_a2c(paper_network=paper_network)
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
    parser.add_argument("--rounds", type=int, default=3,
                        help="times to measure every learner; the medians are reported")
    parser.add_argument("--out", help="also write the results as JSON here")
    parser.add_argument("--child", choices=("ours", "sb3", "sb3-paper-network"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--openmp-default", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.child:
        if args.openmp_default:
            import torch  # noqa: F401  (first: libgomp loads before asyncrl_lab sets its spin)
        import asyncrl_lab  # noqa: F401  (also registers the ALE ids SB3 makes)
        if args.child == "ours":
            print(ours_rate(args.steps))
        else:
            print(sb3_rate(args.steps, paper_network=args.child == "sb3-paper-network"))
        return
    print(f"{ENV_ID}, {N_ENVS} envs, {os.cpu_count()} cores; steady-state env steps/s, "
          f"{args.rounds} round(s)")
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
    # Every learner once per round, so a slow spell of the machine touches each of them alike.
    rounds = []
    for round_index in range(args.rounds):
        rates = {}
        for name, measure, steps in runs:
            rates[name] = measure()
            print(f"  {round_index + 1}  {name:<40} {rates[name]:8,.0f} steps/s  ({steps:,} steps)",
                  flush=True)
        rounds.append(rates)
    ratios = {"ours_over_sb3": (ours, sb3), "ours_over_sb3_with_our_spin": (ours, sb3_short),
              "ours_over_sb3_same_network": (ours, sb3_paper), "ours_over_raw": (ours, raw),
              "our_spin_over_default_spin": (ours, ours_default)}
    per_round = {key: [r[a] / r[b] for r in rounds] for key, (a, b) in ratios.items()}
    # the medians over the rounds; each ratio is the median of the rounds' ratios
    rates = {name: float(np.median([r[name] for r in rounds])) for name in rounds[0]}
    summary = {key: float(np.median(values)) for key, values in per_round.items()}

    def spread(key, spec=".2f"):
        values = per_round[key]
        return f" (rounds: {min(values):{spec}}-{max(values):{spec}})" if len(values) > 1 else ""

    print("medians:")
    for name, rate in rates.items():
        print(f"  {name:<43} {rate:8,.0f} steps/s")
    print(f"asyncrl_lab A2C / stable-baselines3 A2C: {summary['ours_over_sb3']:.2f}x"
          f"{spread('ours_over_sb3')}; against SB3 with asyncrl_lab's spin: "
          f"{summary['ours_over_sb3_with_our_spin']:.2f}x{spread('ours_over_sb3_with_our_spin')}")
    print(f"asyncrl_lab A2C / SB3, the same network: {summary['ours_over_sb3_same_network']:.2f}x"
          f"{spread('ours_over_sb3_same_network')}")
    print(f"asyncrl_lab A2C / raw vector env:        {summary['ours_over_raw']:.1%}"
          f"{spread('ours_over_raw', '.1%')}")
    print(f"asyncrl_lab A2C, its spin / libgomp's:   {summary['our_spin_over_default_spin']:.2f}x"
          f"{spread('our_spin_over_default_spin')}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": ENV_ID, "n_envs": N_ENVS, "cores": os.cpu_count(),
                       "steps": args.steps, "sb3_steps": args.sb3_steps, "rates": rates,
                       **summary, "rounds": rounds, "ratios_per_round": per_round},
                      f, indent=2)

if __name__ == "__main__":
    main()
