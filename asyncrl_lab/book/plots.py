"""The book's figures of several runs: seeds, workers, speed-ups, staleness, aggregates."""
from __future__ import annotations

import warnings

import numpy as np

from .. import figstyle
from ..curves import curves_on_grid

_AXIS_LABEL = {"global_step": "global step T", "wall_time": "wall time (s)"}


def plot_seed_curves(runs_by_label: dict, *, x: str = "global_step", window: int = 100,
                     threshold: float | None = None, points: int = 200, ax=None,
                     title: str = ""):
    """For each label, the median over seeds of the rolling-mean return vs `x` ("global_step" or
    "wall_time"), with a band from the lowest to the highest seed, drawn only where every seed
    has data: a median over the seeds still running is not a median. Past the first seed's end,
    each remaining seed is drawn alone, thin."""
    alone = ax is None  # a figure of its own gets its legend; a panel leaves it to the figure
    if alone:
        _, ax = figstyle.figure()
    for i, (label, runs) in enumerate(runs_by_label.items()):
        end = max(getattr(r.history, x)[-1] for r in runs if len(r.history))
        grid = np.linspace(0, end, points)
        curves = curves_on_grid(runs, grid, x=x, window=window)
        every = ~np.any(np.isnan(curves), axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before any episode
            median = np.nanmedian(curves, axis=0)
        seeds = f"{len(runs)} seed{'s' * (len(runs) != 1)}"
        ax.plot(grid[every], median[every], color=f"C{i}", label=f"{label} ({seeds})")
        ax.fill_between(grid[every], curves.min(axis=0, where=every, initial=np.inf)[every],
                        curves.max(axis=0, where=every, initial=-np.inf)[every],
                        color=f"C{i}", alpha=0.2, lw=0)
        last_common = grid[every][-1] if every.any() else 0.0
        for curve in curves:  # the seeds that outlast the first to end
            tail = (grid >= last_common) & ~np.isnan(curve)
            if tail.sum() > 1:
                ax.plot(grid[tail], curve[tail], color=f"C{i}", lw=0.6, alpha=0.7)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=1)
    ax.set_xlabel(_AXIS_LABEL[x])
    if x == "global_step":
        figstyle.steps_axis(ax)
    ax.set_ylabel(f"mean return, last {window} episodes")
    if alone:
        figstyle.legend_above(ax, title=title)
    elif title:
        ax.set_title(title)
    return ax


def plot_worker_curves(run, labels=None, *, window: int = 20, ax=None, title: str = ""):
    """Each worker's own rolling-mean return vs global step: how the workers' different
    behaviour policies (their epsilons, say) fare on the same shared network."""
    if ax is None:
        _, ax = figstyle.figure()
    for rank in range(run.config.workers):
        history = run.history.of_worker(rank)
        label = f"worker {rank}" + (f", {labels[rank]}" if labels else "")
        if len(history):
            ax.plot(history.global_step, history.rolling_mean(window), color=f"C{rank}",
                    label=f"{label} ({len(history)} episodes)")
    ax.set_xlabel("global step T")
    figstyle.steps_axis(ax)
    ax.set_ylabel(f"mean return, worker's last {window}")
    figstyle.legend_above(ax, title=title)
    return ax


def plot_speedups(measured: dict, paper: dict, *, ax=None, title: str = ""):
    """Bars of the speed-up from 1 to 2 workers per method: measured here beside the paper's."""
    if ax is None:
        _, ax = figstyle.figure()
    names = list(measured)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [measured[n] for n in names], 0.4, label="measured here")
    ax.bar(x + 0.2, [paper.get(n, np.nan) for n in names], 0.4,
           label="paper, Table 2 (2 threads)")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(2.0, color="k", ls=":", lw=0.8)
    ax.set_xticks(x, names)
    ax.set_ylabel("speed-up, 1 -> 2 workers")
    ax.grid(False, axis="x")
    figstyle.legend_above(ax, title=title)
    return ax


def plot_staleness(counts_by_label: dict, *, max_shown: int = 12, ax=None, title: str = ""):
    """Histogram of update staleness: the fraction of updates applied with k other updates landing
    between the worker's read of the parameters and its write."""
    if ax is None:
        _, ax = figstyle.figure()
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
    ax.grid(False, axis="x")
    figstyle.legend_above(ax, ncols=1, title=title)
    return ax


def plot_steps_and_time(runs_by_label: dict, *, threshold: float | None = None, title: str = "",
                        window: int = 100):
    """The book's two-panel figure: `plot_seed_curves` against global steps (left) and against
    wall time (right), sharing the return axis."""
    fig, axes = figstyle.figure(2, sharey=True)
    for ax, x in zip(axes, ("global_step", "wall_time")):
        plot_seed_curves(runs_by_label, x=x, threshold=threshold, window=window, ax=ax)
    axes[1].set_ylabel("")
    fig.tight_layout()
    figstyle.legend_above(fig, title=title or None)
    return fig


def plot_speedup_curves(table: dict, paper: dict, *, key: str = "speedup", ax=None,
                        title: str = ""):
    """Table 2 as curves: for each method the measured ratio to one worker (`key`: "speedup", of
    wall time, or "data_efficiency", of env steps) against the workers (solid), and the paper's
    speed-ups at the same counts (dashed, the same colour). The legend is the caller's (one for
    two panels: `figstyle.legend_above(fig)`)."""
    if ax is None:
        _, ax = figstyle.figure()
    for i, (method, by_workers) in enumerate(table.items()):
        workers = sorted(by_workers)
        ax.plot(workers, [by_workers[k][key] for k in workers], "o-", color=f"C{i}", label=method)
        if key == "speedup" and method in paper:
            ax.plot(workers, [paper[method].get(k, np.nan) for k in workers], "--", color=f"C{i}",
                    lw=1)
    workers = sorted({k for by_workers in table.values() for k in by_workers})
    ax.plot(workers, workers if key == "speedup" else np.ones(len(workers)), ":", color="k", lw=0.8,
            label="linear" if key == "speedup" else "as many steps as 1 worker")
    ax.set_xticks(workers)
    ax.set_xlabel("workers")
    ax.set_ylabel({"speedup": "time speed-up (1 worker / k)",
                   "data_efficiency": "env steps, 1 worker / k"}[key])
    ax.set_title(title, fontsize=9)
    return ax


def plot_lr_scatter(points_by_label: dict, *, threshold: float | None = None, ax=None,
                    title: str = ""):
    """The paper's Figure 2: each run's final score against its learning rate (log axis), one
    colour per method; a run that diverged is a cross at the foot of the axis. The legend is the
    caller's."""
    if ax is None:
        _, ax = figstyle.figure()
    for i, (label, points) in enumerate(points_by_label.items()):
        lrs, scores = np.asarray(points, dtype=np.float64).reshape(-1, 2).T
        ok = np.isfinite(scores)
        ax.scatter(lrs[ok], scores[ok], s=12, alpha=0.7, color=f"C{i}", label=label)
        if (~ok).any():
            ax.scatter(lrs[~ok], np.zeros((~ok).sum()), marker="x", s=20, color=f"C{i}",
                       label=f"{label}: diverged ({(~ok).sum()})")
    if threshold is not None:
        ax.axhline(threshold, color="k", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final score (mean of the last 100 episodes)")
    ax.set_title(title, fontsize=9)
    return ax


def plot_intervals(intervals: dict, *, ax=None, xlabel: str = "", title: str = ""):
    """One row per label: a point estimate with its confidence interval, as rliable draws its
    aggregate metrics ({label: (estimate, lower, upper)})."""
    if ax is None:
        _, ax = figstyle.figure()
    labels = list(intervals)
    for i, label in enumerate(labels):
        estimate, lower, upper = intervals[label]
        ax.plot([lower, upper], [i, i], lw=6, alpha=0.4, color=f"C{i}", solid_capstyle="butt")
        ax.plot([estimate], [i], "|", ms=14, mew=2, color=f"C{i}")
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.grid(False, axis="y")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_profiles(profiles: dict, taus, *, ax=None, xlabel: str = "", title: str = ""):
    """rliable's performance profiles: the fraction of runs scoring above tau, against tau, with
    the bootstrap band ({label: (profile, lower, upper)})."""
    if ax is None:
        _, ax = figstyle.figure()
    for i, (label, (profile, lower, upper)) in enumerate(profiles.items()):
        ax.plot(taus, profile, color=f"C{i}", label=label)
        ax.fill_between(taus, lower, upper, color=f"C{i}", alpha=0.15, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    figstyle.legend_above(ax, ncols=3, title=title)
    return ax
