"""Learning curves of a run: the figure `Run.plot` draws, the live curve a notebook redraws while
training, and curves sampled on a common grid so that runs of different lengths can be compared."""
from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np

from . import figstyle
from .history import History
from .parallel import DIAGNOSE_EVERY


def plot_learning_curves(run, window: int = 100):
    """Episode returns (faint) and their rolling mean vs global step and vs wall time."""
    history = run.history
    fig, axes = figstyle.figure(2, sharey=True)
    mean = history.rolling_mean(window)
    for ax, x, label in ((axes[0], history.global_step, "global step T"),
                         (axes[1], history.wall_time, "wall time (s)")):
        ax.plot(x, history.episode_return, ".", ms=2, alpha=0.25, color="C0", label="an episode")
        ax.plot(x, mean, color="C0", label=f"mean of the last {window} episodes")
        ax.set_xlabel(label)
    figstyle.steps_axis(axes[0])
    axes[0].set_ylabel("episode return")
    actors = (f"{run.config.n_envs} envs" if run.algo == "a2c"
              else f"{run.config.workers} workers")
    fig.tight_layout()
    figstyle.legend_above(fig, title=f"{run.algo.upper()} on {run.config.env}, {actors} "
                                     f"({run.status})")
    return fig


DIAGNOSTIC_LABELS = {"policy_loss": "policy loss (per step)", "value_loss": "value loss (per step)",
                     "entropy": "policy entropy (nats)", "grad_norm": "gradient norm (unclipped)",
                     "lr": "learning rate", "steps_per_s": "steps/s"}


def plot_diagnostics(run, metrics):
    """One panel per diagnostic (`history.Diagnostic`'s columns) against the global step; each
    worker's samples as dots, their running median over 9 samples as a line."""
    unknown = [m for m in metrics if m not in DIAGNOSTIC_LABELS]
    if unknown:
        raise ValueError(f"unknown diagnostics {unknown}: Run.plot draws "
                         f"{sorted(DIAGNOSTIC_LABELS)} (or, given none, the learning curves)")
    diagnostics = run.history.diagnostics
    if len(diagnostics) == 0:
        raise ValueError("this run has no diagnostics: it was saved before they were recorded")
    fig, axes = figstyle.figure(len(metrics), squeeze=False)
    order = np.argsort(diagnostics.global_step, kind="stable")
    steps = diagnostics.global_step[order]
    for ax, metric in zip(axes[0], metrics):
        values = getattr(diagnostics, metric)[order]
        ax.plot(steps, values, ".", ms=2, alpha=0.3, color="C0", label="a sampled update")
        ax.plot(steps, _running_median(values, 9), color="C0", label="running median of 9")
        ax.set_xlabel("global step T")
        ax.set_ylabel(DIAGNOSTIC_LABELS[metric])
        figstyle.steps_axis(ax)
    fig.tight_layout()
    figstyle.legend_above(fig, title=f"{run.algo.upper()} on {run.config.env}: one update in "
                                     f"{DIAGNOSE_EVERY} of each "
                                     f"{'coordinator' if run.algo == 'a2c' else 'worker'}")
    return fig


def _running_median(values: np.ndarray, width: int) -> np.ndarray:
    """The median of the `width` values ending at each point (fewer at the start); NaN ignored."""
    return np.array([np.nanmedian(values[max(0, i - width + 1): i + 1])
                     if np.isfinite(values[max(0, i - width + 1): i + 1]).any() else np.nan
                     for i in range(len(values))])


def curves_on_grid(runs, grid, *, x: str = "global_step", window: int = 100) -> np.ndarray:
    """Each run's rolling-mean return (last `window` episodes) as a step function of `x`
    ("global_step" or "wall_time") evaluated on `grid`: shape (len(runs), len(grid)).
    NaN before a run's first episode and after its last."""
    if x not in ("global_step", "wall_time"):
        raise ValueError(f"x must be 'global_step' or 'wall_time', not {x!r}")
    grid = np.asarray(grid, dtype=np.float64)
    out = np.full((len(runs), len(grid)), np.nan)
    for row, run in zip(out, runs):
        # episodes are in arrival order; two workers' reports can cross by a few steps
        xs = np.maximum.accumulate(getattr(run.history, x)) if len(run.history) else []
        if len(xs) == 0:
            continue
        mean = run.history.rolling_mean(window)
        idx = np.searchsorted(xs, grid, side="right") - 1  # last episode at or before each point
        inside = (idx >= 0) & (grid <= xs[-1])
        row[inside] = mean[idx[inside]]
    return out


class LiveCurve:
    """A `progress` callback for `train` that redraws the learning curve in the notebook about
    once a second, so a reader watches the run learn."""

    def __init__(self, total_steps: int, title: str = "", every_s: float = 1.0, ylim=None):
        self.total_steps, self.title, self.every_s, self.ylim = total_steps, title, every_s, ylim
        self._last = 0.0

    def __call__(self, outcome):
        from IPython.display import clear_output, display

        if time.time() - self._last < self.every_s:
            return
        self._last = time.time()
        history = History(outcome.episodes)
        fig, ax = figstyle.figure()
        ax.plot(history.global_step, history.episode_return, ".", ms=2, alpha=0.4)
        if len(history):
            ax.plot(history.global_step, history.rolling_mean(20), lw=1.5,
                    label="mean of the last 20 episodes")
            ax.legend(loc="upper left")
        ax.set_xlim(0, self.total_steps)
        figstyle.steps_axis(ax)
        if self.ylim:
            ax.set_ylim(*self.ylim)
        ax.set_xlabel("global step T")
        ax.set_ylabel("episode return")
        ax.set_title(f"{self.title}  T={outcome.global_step:,}, "
                     f"{outcome.global_step / max(outcome.wall_time, 1e-9):,.0f} steps/s")
        clear_output(wait=True)
        display(fig)
        plt.close(fig)
