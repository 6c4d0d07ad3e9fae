"""The Run that `train` returns and `load` reads back: what was learned and how it went, and its
checkpoint format (checkpoint.pt, history.csv, diagnostics.csv, config.json in one directory)."""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .algos import algorithm
from .config import Config
from .envs import make_env
from .history import Diagnostics, History, atomic_path
from .nets import make_actor

CHECKPOINT_FORMAT = 1


@dataclass
class Run:
    """The result of `train` (or `load`): what was learned and how it went.

    A Run owns its state: `train` copies the shared networks and optimizer statistics into it
    once, so the workers' later writes never reach it.
    """

    algo: str
    config: Config
    model: torch.nn.Module
    history: History
    status: str = "finished"  # "finished", "interrupted", "terminated" or "failed"
    global_step: int = 0
    wall_time: float = 0.0
    message: str = ""
    optimizer_state: dict = field(default_factory=dict, repr=False)
    # the state of the other networks the workers shared (ACER's average policy network,
    # the value methods' target network), so that a resumed run continues with them
    shared_modules: dict = field(default_factory=dict, repr=False)

    def __repr__(self):
        return (f"Run({self.algo}, env={self.config.env!r}, status={self.status!r}, "
                f"global_step={self.global_step}, {len(self.history)} episodes, "
                f"wall_time={self.wall_time:.1f}s)")

    def evaluate(self, episodes: int = 10, *, greedy: bool = False, seed: int = 12345,
                 on_frame=None) -> dict:
        """Play `episodes` full episodes with the learned policy on the evaluation env (raw rewards).

        Returns {"mean", "std", "returns"}. `greedy=True` takes the most likely action instead of
        sampling from the policy. The value-based methods' policy is greedy in Q (no epsilon).
        On Atari each episode starts with up to 30 no-op actions (a random number), without sticky
        actions unless the run trained with them. `on_frame` receives every rendered frame (see
        `envs.make_env`); `video` records them.
        """
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes={episodes!r}: must be an integer >= 1")
        env = make_env(self.config.env, seed=seed, training=False,
                       sticky_actions=self.config.sticky_actions, on_frame=on_frame)
        actor = make_actor(self.model, seed)
        returns = []
        try:
            for _ in range(episodes):
                obs, _ = env.reset()
                actor.reset()  # a recurrent policy starts each episode from a zero state
                while True:
                    obs, _, terminated, truncated, info = env.step(actor.act(obs, greedy))
                    if terminated or truncated:
                        returns.append(float(info["episode"]["r"]))
                        break
        finally:
            env.close()
        return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns}

    def video(self, path, episodes: int = 1, *, greedy: bool = False, seed: int = 12345,
              seconds: float | None = None) -> dict:
        """Record the policy playing `episodes` episodes into an MP4 file at `path`, every frame
        the env renders at its full size (Atari: each emulator frame, 60 a second); `seconds`
        keeps only the first seconds of video. Returns `evaluate`'s result with the file's
        "path", "frames" and "fps"."""
        from .video import record  # the encoder loads only when a video is made

        return record(self, path, episodes, greedy=greedy, seed=seed, seconds=seconds)

    def plot(self, *diagnostics: str, window: int = 100):
        """Learning curves: episode returns and their rolling mean vs global step and vs wall time.

        Given names of diagnostics ("policy_loss", "value_loss", "entropy", "grad_norm", "lr",
        "steps_per_s"), one panel for each against the global step instead.
        """
        from .curves import plot_diagnostics, plot_learning_curves  # matplotlib loads only here

        if diagnostics:
            return plot_diagnostics(self, diagnostics)
        return plot_learning_curves(self, window=window)

    def save(self, path) -> Path:
        """Write checkpoint.pt, history.csv, diagnostics.csv and config.json into directory `path`.

        All four are written to temporary names first and renamed over the old ones only when
        all four are complete, so a failure (a full disk, a crash) leaves the previous save intact.
        """
        path = Path(path)
        meta = {"algo": self.algo, "status": self.status, "global_step": self.global_step,
                "wall_time": self.wall_time, "message": self.message,
                "config": self.config.to_dict()}
        checkpoint = {"format": CHECKPOINT_FORMAT, **meta,
                      "obs_shape": list(self.model.obs_shape), "n_actions": self.model.n_actions,
                      "model": self.model.state_dict(),
                      "optimizer": self.optimizer_state,
                      "shared_modules": self.shared_modules,
                      "staleness": torch.as_tensor(self.history.staleness)}
        try:
            path.mkdir(parents=True, exist_ok=True)
            with contextlib.ExitStack() as stack:
                ckpt_tmp, history_tmp, diagnostics_tmp, meta_tmp = (
                    stack.enter_context(atomic_path(path / name))
                    for name in ("checkpoint.pt", "history.csv", "diagnostics.csv", "config.json"))
                torch.save(checkpoint, ckpt_tmp)
                self.history._write_csv(history_tmp)
                self.history.diagnostics._write_csv(diagnostics_tmp)
                with open(meta_tmp, "w") as f:
                    json.dump(meta, f, indent=2)
        except OSError as err:
            raise OSError(f"could not save the run to {str(path)!r} ({err.strerror or err}); "
                          "any run saved there before is intact") from err
        return path


def load(path) -> Run:
    """Load a run saved by `Run.save` or the CLI. The checkpoint is read with weights_only=True,
    so a checkpoint cannot execute code."""
    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no asyncrl_lab run at {str(path)!r}: {str(file)!r} does not exist")
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{str(file)!r} is not a readable asyncrl_lab checkpoint (corrupted, "
                         f"truncated, or not saved by asyncrl_lab): {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(file)!r} is not an asyncrl_lab checkpoint of format "
                         f"{CHECKPOINT_FORMAT}")
    module = algorithm(ckpt["algo"])
    config = module.Config.from_dict(ckpt["config"])
    model = module.make_network(config, tuple(ckpt["obs_shape"]), ckpt["n_actions"])
    model.load_state_dict(ckpt["model"])
    staleness = ckpt["staleness"].numpy()
    history_file, diagnostics_file = file.parent / "history.csv", file.parent / "diagnostics.csv"
    diagnostics = Diagnostics.from_csv(diagnostics_file) if diagnostics_file.exists() else None
    history = History.from_csv(history_file, staleness, diagnostics) if history_file.exists() \
        else History(staleness=staleness, diagnostics=diagnostics)
    return Run(ckpt["algo"], config, model, history, ckpt["status"], ckpt["global_step"],
               ckpt["wall_time"], ckpt["message"], ckpt["optimizer"],
               ckpt.get("shared_modules", {}))


def non_finite_parts(run: Run) -> list[str]:
    """The parts of the run's state (network, optimizer statistics, other shared networks) that
    hold a value that is not finite."""
    parts = {"the network's parameters": run.model.state_dict(),
             "the optimizer's statistics": run.optimizer_state,
             **{f"the {name}'s parameters": state for name, state in run.shared_modules.items()}}
    return [name for name, state in parts.items()
            if not all(torch.isfinite(t).all() for t in _tensors(state))]


def _tensors(state):
    for value in state.values():
        yield from (value if isinstance(value, (list, tuple)) else [value])
