"""Figures drawn from a Run's history."""
from __future__ import annotations

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

from .history import History


def plot_learning_curves(run, window: int = 100):
    """Episode returns (faint) and their rolling mean vs global step and vs wall time."""
    history = run.history
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    mean = history.rolling_mean(window)
    for ax, x, label in ((axes[0], history.global_step, "global step T"),
                         (axes[1], history.wall_time, "wall time (s)")):
        ax.plot(x, history.episode_return, ".", ms=2, alpha=0.25, color="C0")
        ax.plot(x, mean, color="C0", label=f"mean of last {window} episodes")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return")
    axes[0].legend(loc="lower right")
    actors = (f"{run.config.n_envs} envs" if run.algo == "a2c"
              else f"{run.config.workers} workers")
    fig.suptitle(f"{run.algo.upper()} on {run.config.env}, {actors} ({run.status})")
    fig.tight_layout()
    return fig


def plot_seed_curves(runs_by_label: dict, *, x: str = "global_step", window: int = 100,
                     threshold: float | None = None, points: int = 200, ax=None):
    """For each label, the median over seeds of the rolling-mean return vs `x` ("global_step" or
    "wall_time"), with a band from the lowest to the highest seed."""
    from .experiments import curves_on_grid

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for i, (label, runs) in enumerate(runs_by_label.items()):
        end = max(getattr(r.history, x)[-1] for r in runs if len(r.history))
        grid = np.linspace(0, end, points)
        curves = curves_on_grid(runs, grid, x=x, window=window)
        seen = ~np.all(np.isnan(curves), axis=0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before any episode
            median = np.nanmedian(curves, axis=0)
            low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        ax.plot(grid[seen], median[seen], color=f"C{i}", label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(grid[seen], low[seen], high[seen], color=f"C{i}", alpha=0.2, lw=0)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=1)
    ax.set_xlabel({"global_step": "global step T", "wall_time": "wall time (s)"}[x])
    ax.set_ylabel(f"mean return, last {window} episodes")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_worker_curves(run, labels=None, *, window: int = 20, ax=None):
    """Each worker's own rolling-mean return vs global step: how the workers' different
    behaviour policies (their epsilons, say) fare on the same shared network."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for rank in range(run.config.workers):
        history = run.history.of_worker(rank)
        label = f"worker {rank}" + (f", {labels[rank]}" if labels else "")
        if len(history):
            ax.plot(history.global_step, history.rolling_mean(window), color=f"C{rank}",
                    label=f"{label} ({len(history)} episodes)")
    ax.set_xlabel("global step T")
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k")
    ax.set_ylabel(f"mean return, worker's last {window}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return ax


def plot_speedups(measured: dict, paper: dict, *, ax=None):
    """Bars of the speed-up from 1 to 2 workers per method: measured here beside the paper's."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    names = list(measured)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [measured[n] for n in names], 0.4, label="measured here")
    ax.bar(x + 0.2, [paper.get(n, np.nan) for n in names], 0.4,
           label="paper, Table 2 (2 threads)")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(2.0, color="k", ls=":", lw=0.8)
    ax.set_xticks(x, names)
    ax.set_ylabel("speed-up, 1 -> 2 workers")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return ax


def plot_staleness(counts_by_label: dict, *, max_shown: int = 12, ax=None):
    """Histogram of update staleness: the fraction of updates applied with k other updates landing
    between the worker's read of the parameters and its write."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(len(counts_by_label), 1)
    for i, (label, counts) in enumerate(counts_by_label.items()):
        counts = np.asarray(counts, dtype=np.float64)
        shown = np.zeros(max_shown + 1)
        shown[: min(len(counts), max_shown + 1)] = counts[: max_shown + 1]
        shown[max_shown] += counts[max_shown + 1:].sum()  # the last bar collects the tail
        k = np.arange(max_shown + 1)
        ax.bar(k + (i - (len(counts_by_label) - 1) / 2) * width, shown / counts.sum(), width,
               label=f"{label} (mean {np.dot(np.arange(len(counts)), counts) / counts.sum():.2f})")
    ax.set_xticks(range(max_shown + 1), [*map(str, range(max_shown)), f"{max_shown}+"])
    ax.set_xlabel("staleness: other updates between a worker's read and its write")
    ax.set_ylabel("fraction of updates")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    return ax


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
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(history.global_step, history.episode_return, ".", ms=2, alpha=0.4)
        if len(history):
            ax.plot(history.global_step, history.rolling_mean(20), lw=1.5,
                    label="mean of the last 20 episodes")
            ax.legend(loc="upper left", fontsize="small")
        ax.set_xlim(0, self.total_steps)
        if self.ylim:
            ax.set_ylim(*self.ylim)
        ax.set_xlabel("global step T")
        ax.set_ylabel("episode return")
        ax.set_title(f"{self.title}  T={outcome.global_step:,}, "
                     f"{outcome.global_step / max(outcome.wall_time, 1e-9):,.0f} steps/s")
        ax.grid(alpha=0.3)
        clear_output(wait=True)
        display(fig)
        plt.close(fig)
