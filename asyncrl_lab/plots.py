"""Figures drawn from a Run's history."""
from __future__ import annotations

import matplotlib.pyplot as plt


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
    fig.suptitle(f"{run.algo.upper()} on {run.config.env}, {run.config.workers} workers "
                 f"({run.status})")
    fig.tight_layout()
    return fig
