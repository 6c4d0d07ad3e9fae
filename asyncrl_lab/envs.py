"""Environments: Gymnasium ids with discrete actions; Atari ids get the paper's preprocessing; and
CartPoleNoVel-v1, a CartPole that needs memory, registered here.

Atari preprocessing (Mnih et al. 2015/2016), built from Gymnasium's own wrappers where they fit:

* no-op starts (up to 30 no-ops), frame skip 4 with a max over the last two frames,
  84x84 grayscale (`AtariPreprocessing`), then a stack of the last 4 frames;
* training rewards clipped to [-1, 1]; evaluation sees the raw rewards;
* sticky actions off by default, as in the paper (ALE v5 ids default to 0.25; pass
  ``sticky_actions=True`` to keep them);
* optional episodic life: a lost life ends the *training* episode without resetting the game
  (Gymnasium's ``terminal_on_life_loss`` resets the whole game instead, which is not the same).

Every env records its true episode statistics (unclipped return, length in agent steps, over the
whole game) in ``info["episode"]`` when a real episode ends; workers log those.
"""
from __future__ import annotations

import difflib
import importlib

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control import CartPoleEnv
from gymnasium.wrappers import (AtariPreprocessing, ClipReward, FrameStackObservation,
                                RecordEpisodeStatistics)

try:
    import ale_py

    gym.register_envs(ale_py)
    # ALE prints a banner for every game it loads, in every worker; keep only its errors.
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
except ImportError:  # Atari is optional for the package; requirements.txt installs it
    ale_py = None


class CartPoleNoVelEnv(CartPoleEnv):
    """CartPole-v1 with the two velocities removed from the observation: the agent sees the cart's
    position and the pole's angle only, so it must remember earlier frames to tell how fast they
    change (rl-zoo's CartPoleNoVel-v1, the task sb3-contrib's RecurrentPPO is benchmarked on)."""

    VISIBLE = np.array([0, 2])  # x and theta of (x, x_dot, theta, theta_dot)

    def __init__(self, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.observation_space = gym.spaces.Box(self.observation_space.low[self.VISIBLE],
                                                self.observation_space.high[self.VISIBLE],
                                                dtype=np.float32)

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        return obs[self.VISIBLE], info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs[self.VISIBLE], reward, terminated, truncated, info


# Registered on import, so in every worker process too (each imports this module to make its env).
if "CartPoleNoVel-v1" not in gym.registry:
    gym.register("CartPoleNoVel-v1", entry_point=CartPoleNoVelEnv, max_episode_steps=500,
                 reward_threshold=475.0)


def check_env_id(env_id: str) -> None:
    """Raise a ValueError naming close matches when `env_id` is not a registered Gymnasium id."""
    if ":" in env_id:  # "module:EnvId" registers the env on import, as gym.make does
        module, _, _ = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"environment {env_id!r}: cannot import module {module!r} ({exc})") from None
        env_id = env_id.partition(":")[2]
    if env_id in gym.registry:
        return
    known = list(gym.registry)
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.6)
    close += [k for k in known if env_id.lower() in k.lower() and k not in close][: 5 - len(close)]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
        "; see gymnasium.pprint_registry() for the available ids"
    raise ValueError(f"unknown environment id {env_id!r}{hint}")


def is_atari(env_id: str) -> bool:
    spec = gym.spec(env_id.partition(":")[2] or env_id)
    return "ale_py" in str(spec.entry_point)


class EpisodicLife(gym.Wrapper):
    """End the training episode on a lost life, but reset the game only when it is really over."""

    def __init__(self, env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # continue the same game from the state after the lost life
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class _EveryFrame(gym.Wrapper):
    """Hands every frame the env renders to `on_frame`, once set: after each reset and step."""

    def __init__(self, env):
        super().__init__(env)
        self.on_frame = None

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        if self.on_frame is not None:
            self.on_frame(self.env.render())
        return result

    def step(self, action):
        result = self.env.step(action)
        if self.on_frame is not None:
            self.on_frame(self.env.render())
        return result


def make_env(env_id: str, seed: int | None = None, *, training: bool = True,
             sticky_actions: bool = False, episodic_life: bool = False,
             noop_max: int = 30, frame_stack: int = 4, on_frame=None):
    """Make a Gymnasium env with discrete actions; Atari ids get the paper's preprocessing.

    `training=False` gives the evaluation version: raw rewards and no episodic life.
    `seed` seeds the first reset and the action space.
    `on_frame`: called with every frame the env renders (RGB, its full size): on Atari every
    emulator frame, the skipped ones too; elsewhere one frame a step (and one at a reset).
    """
    check_env_id(env_id)
    render = {} if on_frame is None else {"render_mode": "rgb_array"}
    if is_atari(env_id):
        env = gym.make(env_id, frameskip=1, repeat_action_probability=0.25 if sticky_actions else 0.0,
                       **render)
        if on_frame is not None:
            env = frames = _EveryFrame(env)
        env = AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=84,
                                 grayscale_obs=True, scale_obs=False)
        env = RecordEpisodeStatistics(env)
        if training and episodic_life:
            env = EpisodicLife(env)
        if training:
            env = ClipReward(env, -1.0, 1.0)
        env = FrameStackObservation(env, frame_stack)
    else:
        env = gym.make(env_id, **render)
        if on_frame is not None:
            env = frames = _EveryFrame(env)
        env = RecordEpisodeStatistics(env)
    problem = None
    if not isinstance(env.action_space, gym.spaces.Discrete):
        problem = (f"has action space {env.action_space}; the asynchronous methods here need a "
                   "discrete action space (Discrete(n))")
    elif not isinstance(env.observation_space, gym.spaces.Box):
        problem = (f"has observation space {env.observation_space}; a Box observation space "
                   "(vector or image) is needed")
    if problem:
        env.close()
        raise ValueError(f"environment {env_id!r} {problem}")
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    if on_frame is not None:
        frames.on_frame = on_frame  # from the next reset on: the seeding reset is not played
    return env


def env_spaces(env_id: str, **options) -> tuple[tuple[int, ...], int]:
    """(observation shape, number of actions) of an env id, checked for discrete actions."""
    env = make_env(env_id, **options)
    try:
        return tuple(env.observation_space.shape), int(env.action_space.n)
    finally:
        env.close()


class VectorEnv:
    """`n_envs` copies of an env stepped as one batch (A2C); each copy starts its next episode as
    soon as one ends, within the same step.

    Atari ids run on ale_py's native `AtariVectorEnv`, which does the paper's preprocessing (no-op
    starts, frame skip 4 with a max over the last two frames, 84x84 grayscale, a stack of 4) in
    C++ threads; other ids on Gymnasium's `SyncVectorEnv`, one process, which for cheap envs such as
    CartPole beats shipping observations between processes. Either way `step` returns:

    * `obs`: the next observations, already the first of a new episode where one ended;
    * `rewards`: training rewards (clipped to [-1, 1] on Atari);
    * `terminated`, `truncated`: how each env's training episode ended this step, if it did
      (with `episodic_life`, a lost life terminates it while the game goes on);
    * `final_obs`: the observations that ended those episodes, to bootstrap a truncation from;
    * `finished`: (env index, return, length) of each real episode that ended, with raw rewards
      and whole games, as the history records them.
    """

    def __init__(self, env_id: str, n_envs: int, seed: int, *, sticky_actions: bool = False,
                 episodic_life: bool = False):
        check_env_id(env_id)
        self.atari = is_atari(env_id)
        self.episodic_life = episodic_life and self.atari
        seeds = np.random.SeedSequence(seed).generate_state(n_envs) % 2**31
        if self.atari:
            from ale_py.vector_env import AtariVectorEnv

            spec = gym.spec(env_id.partition(":")[2] or env_id)
            self.env = AtariVectorEnv(
                spec.kwargs["game"], n_envs, autoreset_mode="SameStep",
                repeat_action_probability=0.25 if sticky_actions else 0.0,
                full_action_space=spec.kwargs.get("full_action_space", False),
                max_num_frames_per_episode=spec.kwargs.get("max_num_frames_per_episode", 108_000),
                noop_max=30, frameskip=4, img_height=84, img_width=84, grayscale=True, stack_num=4,
                reward_clipping=False, episodic_life=False, use_fire_reset=False)
        else:
            same_step = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
            self.env = gym.make_vec(env_id, n_envs, vectorization_mode="sync",
                                    vector_kwargs=same_step)
        self.n_envs = n_envs
        self.single_observation_space = self.env.single_observation_space
        self.n_actions = int(self.env.single_action_space.n)
        self._seeds = seeds.astype(np.int64)
        self.returns = np.zeros(n_envs)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        self.lives = np.zeros(n_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        """Start every env's first episode (seeded); returns the observations."""
        obs, info = self.env.reset(seed=self._seeds if self.atari else self._seeds.tolist())
        self.returns[:], self.lengths[:] = 0.0, 0
        if self.atari:
            self.lives[:] = info["lives"]
        return obs

    def step(self, actions: np.ndarray):
        obs, raw_rewards, terminated, truncated, info = self.env.step(actions)
        self.returns += raw_rewards
        self.lengths += 1
        done = terminated | truncated
        finished = [(int(i), float(self.returns[i]), int(self.lengths[i]))
                    for i in np.flatnonzero(done)]
        self.returns[done], self.lengths[done] = 0.0, 0
        final_obs = obs
        if done.any():
            final_obs = obs.copy()
            final_obs[done] = np.stack(list(info["final_obs"][done]))
        rewards = raw_rewards
        if self.atari:
            rewards = np.clip(raw_rewards, -1.0, 1.0)
            lives = info["lives"]
            if self.episodic_life:  # a lost life ends the training episode, not the game
                terminated = terminated | ((lives < self.lives) & ~done)
            self.lives = lives
        return obs, rewards, terminated, truncated, final_obs, finished

    def close(self):
        self.env.close()


def make_vector_env(env_id: str, n_envs: int, seed: int, *, sticky_actions: bool = False,
                    episodic_life: bool = False) -> VectorEnv:
    """A `VectorEnv` of `n_envs` copies of a Gymnasium env id (discrete actions, Box observations).
    Raises the same ValueErrors as `make_env` for an unknown id or unsupported spaces."""
    env_spaces(env_id, sticky_actions=sticky_actions)
    return VectorEnv(env_id, n_envs, seed, sticky_actions=sticky_actions,
                     episodic_life=episodic_life)
