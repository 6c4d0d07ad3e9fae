"""`train` and `load`, and the Run they return: history, model, evaluate, plot, save."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .algos import ALGORITHMS
from .config import AsyncConfig, config_for
from .envs import env_spaces, make_env
from .nets import ActorCritic, make_actor
from .parallel import Outcome, WorkerError, run_workers

CHECKPOINT_FORMAT = 1
EPISODE_COLUMNS = ("worker", "global_step", "wall_time", "episode_return", "episode_length")


class History:
    """Every finished episode (worker, global step, wall time, return, length), in arrival order,
    and the staleness of every update (`staleness[k]`: updates applied with k other updates
    landing between the worker's read of the parameters and its write)."""

    def __init__(self, episodes=(), staleness=None):
        rows = np.array(list(episodes), dtype=np.float64).reshape(-1, len(EPISODE_COLUMNS))
        self.worker = rows[:, 0].astype(np.int64)
        self.global_step = rows[:, 1].astype(np.int64)
        self.wall_time = rows[:, 2]
        self.episode_return = rows[:, 3]
        self.episode_length = rows[:, 4].astype(np.int64)
        self.staleness = np.zeros(0, np.int64) if staleness is None else np.asarray(staleness, np.int64)

    def __len__(self):
        return len(self.episode_return)

    def __repr__(self):
        return f"History({len(self)} episodes, {int(self.staleness.sum())} updates)"

    def rolling_mean(self, window: int = 100) -> np.ndarray:
        """Mean return of the last `window` episodes (fewer at the start), one value per episode."""
        cumsum = np.concatenate([[0.0], np.cumsum(self.episode_return)])
        idx = np.arange(1, len(self) + 1)
        start = np.maximum(idx - window, 0)
        return (cumsum[idx] - cumsum[start]) / (idx - start)

    def first_reaching(self, threshold: float, window: int = 100):
        """(global step, wall time) of the first episode at which the rolling mean of the last
        `window` returns (a full window) reaches `threshold`; None if it never does."""
        if len(self) < window:
            return None
        hits = np.flatnonzero(self.rolling_mean(window)[window - 1:] >= threshold)
        if len(hits) == 0:
            return None
        i = hits[0] + window - 1
        return int(self.global_step[i]), float(self.wall_time[i])

    def to_csv(self, path):
        with _atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(EPISODE_COLUMNS)
            for row in zip(self.worker, self.global_step, self.wall_time, self.episode_return,
                           self.episode_length):
                writer.writerow([int(row[0]), int(row[1]), f"{row[2]:.4f}", repr(float(row[3])),
                                 int(row[4])])

    @classmethod
    def from_csv(cls, path, staleness=None) -> "History":
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if tuple(header or ()) != EPISODE_COLUMNS:
                raise ValueError(f"{path} is not a history file: its header is {header}, "
                                 f"expected {list(EPISODE_COLUMNS)}")
            return cls(([float(x) for x in row] for row in reader), staleness)


@dataclass
class Run:
    """The result of `train` (or `load`): what was learned and how it went."""

    algo: str
    config: AsyncConfig
    model: torch.nn.Module
    history: History
    status: str = "finished"  # "finished", "interrupted" or "failed"
    global_step: int = 0
    wall_time: float = 0.0
    message: str = ""
    optimizer_state: dict = field(default_factory=dict, repr=False)

    def __repr__(self):
        return (f"Run({self.algo}, env={self.config.env!r}, status={self.status!r}, "
                f"global_step={self.global_step}, {len(self.history)} episodes, "
                f"wall_time={self.wall_time:.1f}s)")

    def evaluate(self, episodes: int = 10, *, greedy: bool = False, seed: int = 12345) -> dict:
        """Play `episodes` full episodes with the learned policy on the evaluation env (raw rewards).

        Returns {"mean", "std", "returns"}. `greedy=True` takes the most likely action instead of
        sampling from the policy.
        """
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise ValueError(f"episodes={episodes!r}: must be an integer >= 1")
        env = make_env(self.config.env, seed=seed, training=False,
                       sticky_actions=self.config.sticky_actions)
        actor = make_actor(self.model, seed)
        returns = []
        try:
            for _ in range(episodes):
                obs, _ = env.reset()
                while True:
                    obs, _, terminated, truncated, info = env.step(actor.act(obs, greedy))
                    if terminated or truncated:
                        returns.append(float(info["episode"]["r"]))
                        break
        finally:
            env.close()
        return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns}

    def plot(self, window: int = 100):
        """Learning curves: episode returns and their rolling mean vs global step and vs wall time."""
        from .plots import plot_learning_curves

        return plot_learning_curves(self, window=window)

    def save(self, path) -> Path:
        """Write config.json, history.csv, staleness.csv and checkpoint.pt into directory `path`.

        Every file is written to a temporary name and renamed, so a crash mid-write leaves the
        previous version intact.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"algo": self.algo, "status": self.status, "global_step": self.global_step,
                "wall_time": self.wall_time, "message": self.message,
                "config": self.config.to_dict()}
        checkpoint = {"format": CHECKPOINT_FORMAT, **meta,
                      "obs_shape": list(self.model.obs_shape), "n_actions": self.model.n_actions,
                      "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                      "optimizer": self.optimizer_state,
                      "staleness": torch.as_tensor(self.history.staleness)}
        with _atomic_path(path / "checkpoint.pt") as tmp:
            torch.save(checkpoint, tmp)
        self.history.to_csv(path / "history.csv")
        with _atomic_path(path / "config.json") as tmp, open(tmp, "w") as f:
            json.dump(meta, f, indent=2)
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
    config = config_for(ckpt["algo"]).from_dict(ckpt["config"])
    model = ActorCritic(tuple(ckpt["obs_shape"]), ckpt["n_actions"], config.hidden_sizes)
    model.load_state_dict(ckpt["model"])
    staleness = ckpt["staleness"].numpy()
    history_file = file.parent / "history.csv"
    history = History.from_csv(history_file, staleness) if history_file.exists() else \
        History(staleness=staleness)
    return Run(ckpt["algo"], config, model, history, ckpt["status"], ckpt["global_step"],
               ckpt["wall_time"], ckpt["message"], ckpt["optimizer"])


def train(algo: str, env: str | None = None, workers: int | None = None,
          total_steps: int | None = None, seed: int | None = None, *, progress=True,
          **options) -> Run:
    """Train `algo` ("a3c") on a Gymnasium env id with `workers` processes for `total_steps`
    global steps. Further keyword options are the fields of the algorithm's config (e.g. t_max,
    lr, entropy_beta); a bad value raises ValueError before any process starts.

    `progress`: True for a progress bar (steps/s, recent mean return), False for none, or a
    callable that receives the run's state so far (`.global_step`, `.wall_time`, `.episodes`)
    about five times a second, such as `plots.LiveCurve`.

    Ctrl-C (or "interrupt kernel") stops the workers and returns the partial run. A failing worker
    raises WorkerError; its `.run` holds the partial run.
    """
    if not (isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be True, False or a callable, not {progress!r}")
    config_cls = config_for(algo)
    algo = algo.lower()
    given = {"env": env, "workers": workers, "total_steps": total_steps, "seed": seed}
    config = config_cls.from_dict({**{k: v for k, v in given.items() if v is not None}, **options})
    obs_shape, n_actions = env_spaces(config.env, sticky_actions=config.sticky_actions,
                                      episodic_life=config.episodic_life)
    module = ALGORITHMS[algo]
    torch.manual_seed(config.seed)
    shared = module.build_shared(config, obs_shape, n_actions)
    bar = _ProgressBar(config.total_steps, enabled=progress is True)
    outcome = None
    try:
        outcome = run_workers(module.worker, config, shared,
                              progress=progress if callable(progress) else bar)
    except WorkerError as err:
        outcome = err.outcome
        err.run = _to_run(algo, config, shared, err.outcome)
        raise
    finally:
        bar.close(outcome)
    run = _to_run(algo, config, shared, outcome)
    if run.status == "interrupted":
        warnings.warn(f"training interrupted at global step {run.global_step} of "
                      f"{config.total_steps}; returning the partial run ({len(run.history)} "
                      "episodes)", stacklevel=2)
    return run


def _to_run(algo, config, shared, outcome: Outcome) -> Run:
    return Run(algo, config, shared["model"], History(outcome.episodes, outcome.staleness),
               outcome.status, outcome.global_step, outcome.wall_time, outcome.message,
               shared["optimizer"].state_dict())


class _ProgressBar:
    """Progress of the global step, with steps/s and the recent mean return.

    In a terminal: a tqdm bar. In a Jupyter kernel: one output line (an HTML progress bar and
    its text) updated in place, a few times a second. Unlike a widget it needs no JavaScript, so
    the executed notebook, and the static book built from it, keep the final state.
    """

    def __init__(self, total: int, enabled: bool):
        self.total, self.bar, self.handle = total, None, None
        self.last_update = 0.0
        if not enabled:
            return
        if _in_jupyter_kernel():
            from IPython.display import display

            self.handle = display(self._bundle(0, 0.0, []), raw=True, display_id=True)
        else:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", unit_scale=True, smoothing=0.1,
                            dynamic_ncols=True)

    def _bundle(self, step: int, seconds: float, recent) -> dict:
        text = (f"T = {step:,} / {self.total:,} steps ({step / self.total:.0%}), {seconds:.1f} s, "
                f"{step / max(seconds, 1e-9):,.0f} steps/s")
        if recent:
            text += f", mean return of the last {len(recent)} episodes {np.mean(recent):.1f}"
        return {"text/plain": text,
                "text/html": f'<progress value="{step}" max="{self.total}" '
                             f'style="width: 40%; vertical-align: middle"></progress> '
                             f'<code>{text}</code>'}

    def __call__(self, outcome: Outcome, final: bool = False):
        recent = [e[3] for e in outcome.episodes[-100:]]
        step = min(outcome.global_step, self.total)
        if self.handle is not None and (final or time.time() - self.last_update > 0.25):
            self.last_update = time.time()
            self.handle.update(self._bundle(step, outcome.wall_time, recent), raw=True)
        elif self.bar is not None:
            self.bar.update(step - self.bar.n)
            if recent:
                self.bar.set_postfix_str(f"return(last {len(recent)})={np.mean(recent):.1f}",
                                         refresh=False)

    def close(self, outcome: Outcome | None = None):
        if outcome is not None:
            self(outcome, final=True)
        if self.bar is not None:
            self.bar.close()


def _in_jupyter_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


class _atomic_path:
    """Yield a temporary path beside `path`; on success fsync and rename it over `path`."""

    def __init__(self, path):
        self.path = Path(path)

    def __enter__(self) -> str:
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        os.close(fd)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            with contextlib.suppress(OSError):
                os.remove(self.tmp)
            return False
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        return False

