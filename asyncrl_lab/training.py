"""`train`: build the shared state, run the workers (or the coordinator), checkpoint on the way,
and return the Run."""
from __future__ import annotations

import copy
import math
import os
import tempfile
import warnings
from pathlib import Path

import torch

from . import algos
from .envs import env_spaces
from .history import Diagnostics, History
from .parallel import Outcome, WorkerError, run_coordinator, run_workers
from .presets import PRESET_NAMES, preset_settings
from .progress import ProgressBar
from .run import Run, load, non_finite_parts
from .tensorboard_log import TensorBoardLog

_SIGTERM_EXIT_CODE = 128 + 15  # what a shell reports for a process ended by SIGTERM


def train(algo: str | None = None, env: str | None = None, workers: int | None = None,
          total_steps: int | None = None, seed: int | None = None, *, progress=True,
          out=None, checkpoint_every: int | None = None, resume=None,
          stop_at_return: float | None = None, preset: str = "tuned", tensorboard=None,
          **options) -> Run:
    """Train `algo` ("one_step_q", "one_step_sarsa", "n_step_q", "a3c", "a2c", "acer") on a
    Gymnasium env id with `workers` processes for `total_steps` global steps (A2C: one process
    stepping `n_envs` environments; it takes no `workers`). Further keyword options are the
    fields of the algorithm's config (e.g. t_max, lr, entropy_beta, target_update_interval); a
    bad value raises ValueError before any process starts.

    `preset`: "tuned" (the default) starts from the tuned settings for this algorithm and env
    where `presets.PRESETS` has them; "paper" from the config's defaults, the paper's Atari
    values. Options given here override either; the run's config records what was used.

    `progress`: True for a progress bar (steps/s, recent mean return), False for none, or a
    callable that receives the run's state so far (`.global_step`, `.wall_time`, `.episodes`)
    about five times a second, such as `plots.LiveCurve`.

    `out`: a directory to save the run into when training ends, however it ends, and, with
    `checkpoint_every=N`, every N global steps on the way. A failed save warns and training goes
    on; the previous save stays intact.

    `resume`: a directory saved by an earlier run (or a Run). Training continues from its global
    step, learning-rate schedule, optimizer statistics and history, up to `total_steps` (which
    may be raised); `workers`, `backend` and `ray_address` may change, nothing else. `out`
    defaults to that directory.

    `tensorboard`: a directory to write the run's episodes and diagnostics into, as they
    arrive, for TensorBoard (`tensorboard --logdir DIR`; names in `tensorboard_log`).

    `stop_at_return`: end the run early, as finished, once the mean return of the last 100
    episodes reaches this value (for time-to-threshold measurements).

    Ctrl-C (or "interrupt kernel") stops the workers and returns the partial run. SIGTERM
    stops them too, saves the run to `out` with status "terminated" and raises `Terminated`,
    which ends a script as SIGTERM would (exit status 143); a second SIGTERM ends the process at
    once. A failing worker raises WorkerError; its `.run` holds the partial run.
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset={preset!r}: must be one of {PRESET_NAMES}")
    if not (isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be True, False or a callable, not {progress!r}")
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not isinstance(
            checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be an integer >= 1, not {checkpoint_every!r}")
    if stop_at_return is not None and (isinstance(stop_at_return, bool) or not isinstance(
            stop_at_return, (int, float)) or not math.isfinite(stop_at_return)):
        raise ValueError(f"stop_at_return must be a finite number, not {stop_at_return!r}")
    if checkpoint_every is not None and out is None and resume is None:
        raise ValueError("checkpoint_every needs a directory to save into: pass out=...")
    given = {"env": env, "workers": workers, "total_steps": total_steps, "seed": seed}
    given = {k: v for k, v in given.items() if v is not None}
    previous = None
    if resume is not None:
        previous = resume if isinstance(resume, Run) else load(resume)
        out = resume if out is None and not isinstance(resume, Run) else out
        config = _resumed_config(algo, previous, {**given, **options})
        algo = previous.algo
    else:
        if algo is None:
            raise ValueError("name the algorithm to train (one of "
                             f"{sorted(algos.ALGORITHMS)}), or pass resume=<run directory>")
        config_cls = algos.config_for(algo)
        algo = algo.lower()
        if "workers" in given and algo == "a2c":
            raise ValueError("a2c is synchronous: one process steps n_envs environments, so it "
                             "has no workers; pass n_envs=... (the number of environments)")
        env_id = given.get("env", config_cls.env)
        config = config_cls.from_dict({**preset_settings(algo, env_id, preset), **given, **options})
    if out is not None:
        _check_writable(out)
    if tensorboard is not None:
        _check_writable(tensorboard, "write TensorBoard logs")
    obs_shape, n_actions = env_spaces(config.env, sticky_actions=config.sticky_actions,
                                      episodic_life=config.episodic_life)
    module = algos.ALGORITHMS[algo]
    torch.manual_seed(config.seed)
    shared = module.build_shared(config, obs_shape, n_actions)
    if previous is not None:
        shared["model"].load_state_dict(previous.model.state_dict())
        shared["optimizer"].load_state_dict(previous.optimizer_state)
        for name, state in previous.shared_modules.items():
            shared[name].load_state_dict(state)

    start_step = previous.global_step if previous is not None else 0

    def snapshot(outcome: Outcome) -> Run:
        if outcome.refresh_shared is not None:
            outcome.refresh_shared()
        return _to_run(algo, config, shared, outcome, previous)

    bar = ProgressBar(config.total_steps, enabled=progress is True, start=start_step)
    report = progress if callable(progress) else bar
    checkpoints = _Checkpoints(out, checkpoint_every, snapshot, start_step)
    board = None if tensorboard is None else TensorBoardLog(
        tensorboard, f"{algo} on {config.env}: {config.to_dict()}")

    def on_progress(outcome: Outcome):
        report(outcome)
        checkpoints(outcome)
        if board is not None:
            board(outcome)

    outcome = None
    try:
        if hasattr(module, "coordinator"):  # synchronous (A2C): one loop in this process
            outcome = run_coordinator(module.coordinator, config, shared, progress=on_progress,
                                      start_step=start_step, stop_when=_StopAtReturn(stop_at_return))
        else:
            runner = run_workers
            if config.backend == "ray":
                from .ray_backend import run_workers_ray as runner  # imports Ray only when used
            outcome = runner(module.worker, config, shared, progress=on_progress,
                             start_step=start_step, stop_when=_StopAtReturn(stop_at_return))
    except WorkerError as err:
        outcome = err.outcome
        err.run = snapshot(err.outcome)
        if checkpoints.final(err.run):
            err.args = (f"{err.args[0]}\nthe partial run is saved in {str(out)!r}",)
        raise
    finally:
        bar.close(outcome)
        if board is not None:
            board.close(outcome)
    run = snapshot(outcome)
    checkpoints.final(run)
    if run.status in ("interrupted", "terminated"):
        warnings.warn(f"training {run.status} at global step {run.global_step} of "
                      f"{config.total_steps}; "
                      + ("returning the partial run" if run.status == "interrupted" else "exiting")
                      + f" ({len(run.history)} episodes)"
                      + (f", saved to {str(out)!r}" if out is not None else ""), stacklevel=2)
    if run.status == "terminated":
        raise Terminated(run)
    return run


class Terminated(SystemExit):
    """Raised by `train` after a SIGTERM stopped and saved the run; uncaught, it ends the process
    with status 143, as the signal would have. `.run` is the partial run."""

    def __init__(self, run: Run):
        super().__init__(_SIGTERM_EXIT_CODE)
        self.run = run


class _StopAtReturn:
    """True, with a message on the outcome, once the last `window` episodes' mean return reaches
    the threshold (never if it is None)."""

    def __init__(self, threshold: float | None, window: int = 100):
        self.threshold, self.window = threshold, window

    def __call__(self, outcome: Outcome) -> bool:
        if self.threshold is None or len(outcome.episodes) < self.window:
            return False
        mean = float(outcome.episodes.column("episode_return", last=self.window).mean())
        if mean < self.threshold:
            return False
        outcome.message = (f"stopped early at global step {outcome.global_step:,}: the mean return "
                           f"of the last {self.window} episodes reached {mean:.1f} (threshold "
                           f"{self.threshold})")
        return True


def _check_writable(out, what: str = "save the run"):
    """Fail before training, not after it, if the run cannot be saved where the user asked."""
    if not isinstance(out, (str, os.PathLike)):
        raise ValueError(f"cannot {what} in {out!r}: give a directory's path")
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as err:
        raise ValueError(f"cannot {what} in {str(out)!r}: {err.strerror or err}") from None


def _resumed_config(algo, previous: Run, changes: dict):
    if algo is not None and algo.lower() != previous.algo:
        raise ValueError(f"cannot resume a {previous.algo!r} run as {algo!r}: the checkpoint "
                         f"was written by {previous.algo!r}")
    changed = {k for k, v in changes.items() if getattr(previous.config, k, None) != v}
    fixed = sorted(changed - {"total_steps", "workers", "n_envs", "backend", "ray_address"})
    if fixed:
        raise ValueError(f"a resumed run keeps its settings; only total_steps, workers, backend "
                         f"and ray_address (A2C: n_envs) may change, not {fixed}")
    config = type(previous.config).from_dict({**previous.config.to_dict(), **changes})
    if config.total_steps <= previous.global_step:
        raise ValueError(f"the run to resume is already at global step {previous.global_step:,}; "
                         f"pass total_steps greater than that (got {config.total_steps:,})")
    return config


class _Checkpoints:
    """Save the run into `out` every `every` global steps and at the end.

    A failed save warns and lets training go on (the previous save is intact). A run whose state
    is no longer finite is never saved, so it cannot replace the last good checkpoint. The check
    and the file read the same snapshot, the Run's own copy of the shared state (see `_to_run`).
    """

    def __init__(self, out, every, snapshot, start_step: int):
        self.out, self.every, self.snapshot = out, every, snapshot
        self.next = self._after(start_step)

    def _after(self, step: int):
        """The first multiple of `every` past `step`: saves land on a fixed grid of steps."""
        return (step // self.every + 1) * self.every if self.every else None

    def __call__(self, outcome: Outcome):
        if self.out is None or self.next is None or outcome.global_step < self.next:
            return
        self.next = self._after(outcome.global_step)
        self._save(self.snapshot(outcome))

    def final(self, run: Run) -> bool:
        """Save the run as it ended; True if it was saved."""
        return self.out is not None and self._save(run)

    def _save(self, run: Run) -> bool:
        bad = non_finite_parts(run)
        if bad:
            warnings.warn(f"{' and '.join(bad)} {'are' if len(bad) > 1 else 'is'} not finite at "
                          f"global step {run.global_step:,}; not saving over {str(self.out)!r}, "
                          "which keeps the last good checkpoint", stacklevel=3)
            return False
        try:
            run.save(self.out)
        except OSError as err:
            warnings.warn(f"checkpoint at global step {run.global_step:,} failed: {err}",
                          stacklevel=3)
            return False
        return True


def _to_run(algo, config, shared, outcome: Outcome, previous: Run | None = None) -> Run:
    """The Run so far, holding one copy of every shared module's state, on the CPU; a resumed
    run's history and wall time continue the previous ones.

    Workers may still be writing the shared tensors. A checkpoint checks its state for finite
    values and then writes it: reading the live tensors twice would let a network poisoned in
    between pass the check and be written over the last good checkpoint. So both read this copy.
    The network is copied last: what workers derive from it (ACER's average network, the
    optimizer's statistics) is then never newer than the network the copy holds, so a network
    poisoned while the copy is made cannot reach the rest of the copy through a worker.
    """
    with torch.no_grad():
        shared_modules = {name: {k: v.to("cpu", copy=True) for k, v in module.state_dict().items()}
                          for name, module in shared.items()
                          if name != "model" and isinstance(module, torch.nn.Module)}
        optimizer_state = {k: v.cpu() if torch.is_tensor(v) else [t.cpu() for t in v]
                           for k, v in shared["optimizer"].state_dict().items()}  # copies
        model = copy.deepcopy(shared["model"]).cpu()
    history = History(outcome.episodes, outcome.staleness, Diagnostics(outcome.diagnostics))
    wall_time = outcome.wall_time
    if previous is not None:
        history = previous.history.followed_by(history, previous.wall_time)
        wall_time += previous.wall_time
    return Run(algo, config, model, history, outcome.status, outcome.global_step, wall_time,
               outcome.message, optimizer_state, shared_modules)
