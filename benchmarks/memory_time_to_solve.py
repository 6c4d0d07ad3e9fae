"""Time to solve CartPoleNoVel-v1 (CartPole without its velocities, a task that needs memory):
this project's A3C with an LSTM (2 worker processes) and A2C with an LSTM (one process, 16 envs)
against sb3-contrib's RecurrentPPO with rl-zoo's ppo_lstm settings, side by side in one run, over
several seeds.

"Solved" means the mean return of the last 100 training episodes reaches 475, as in
cartpole_time_to_solve.py, whose harness this uses: the wall time and env steps until then, and
the median ratios to RecurrentPPO's (a seed that does not solve within its budget counts as
infinitely slow).

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python benchmarks/memory_time_to_solve.py --seeds 0 1 2 [--out results/x.json]

rl-zoo's card for ppo_lstm on CartPoleNoVel-v1 reports 500 +/- 0 after its n_timesteps of 100k
(evaluated after training). RecurrentPPO runs with those settings, its `lin_` schedules (learning
rate, clip range) annealed over the budget given, as rl-zoo anneals them over n_timesteps.
"""
from __future__ import annotations

import time

import asyncrl_lab  # noqa: F401 (its import registers CartPoleNoVel-v1, for SB3's envs too)
from asyncrl_lab.presets import preset_settings
from cartpole_time_to_solve import compare, learn_sb3, parse_args, run_ours

ENV = "CartPoleNoVel-v1"
SETTINGS = {"a3c": dict(preset_settings("a3c", ENV), env=ENV, workers=2),
            "a2c": dict(preset_settings("a2c", ENV), env=ENV)}
# rl-zoo3's hyperparams/ppo_lstm.yml for CartPoleNoVel-v1
RPPO = dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, normalize_obs=True,
            policy_kwargs="dict(ortho_init=False, activation_fn=nn.ReLU, lstm_hidden_size=64, "
                          "enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64]))")
RPPO_BUDGET = 500_000


def linear(initial: float):
    """rl-zoo's `lin_<initial>` schedule: from `initial` at the start to 0 at the budget's end."""
    return lambda progress_remaining: progress_remaining * initial


def run_recurrent_ppo(seed: int) -> dict:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    t0 = time.time()
    env = VecNormalize(make_vec_env(ENV, n_envs=RPPO["n_envs"], seed=seed), norm_obs=True,
                       norm_reward=False)
    model = RecurrentPPO(
        "MlpLstmPolicy", env, n_steps=RPPO["n_steps"], batch_size=RPPO["batch_size"],
        gae_lambda=RPPO["gae_lambda"], gamma=RPPO["gamma"], n_epochs=RPPO["n_epochs"],
        ent_coef=RPPO["ent_coef"], learning_rate=linear(RPPO["learning_rate"]),
        clip_range=linear(RPPO["clip_range"]),
        policy_kwargs=eval(RPPO["policy_kwargs"], {"nn": nn}), seed=seed, verbose=0)
    return learn_sb3(model, RPPO_BUDGET, t0)


METHODS = {"a3c": ("A3C LSTM (2 workers)", lambda seed: run_ours("a3c", seed, SETTINGS["a3c"])),
           "a2c": ("A2C LSTM (16 envs)", lambda seed: run_ours("a2c", seed, SETTINGS["a2c"])),
           "rppo": ("RecurrentPPO (rl-zoo)", run_recurrent_ppo)}


def main():
    args = parse_args(METHODS)
    methods = {name: METHODS[name] for name in args.methods}
    settings = {**{k: v for k, v in SETTINGS.items() if k in methods},
                "rppo": dict(RPPO, budget=RPPO_BUDGET)}
    compare(methods, (("a3c", "rppo"), ("a2c", "rppo")), args.seeds, settings, args.out,
            peers=("stable-baselines3", "sb3-contrib"))


if __name__ == "__main__":
    main()
