"""One style for every figure the package and the book draw.

The book's text column is about 690 px wide at a 1280 px window, and the page scales every figure
to it. A figure drawn wider than the column shrinks with its text (an 11-inch figure's 10 pt ticks
end up ~7 px tall), so figures are drawn at the column's width: WIDTH inches, whatever the panels,
at DPI for sharp lines on dense screens. Step counts are ticked in k and M (a tick of 150000 next
to 125000 collides), and legends go above the axes, never over the data.
"""
from __future__ import annotations

import matplotlib as mpl
from matplotlib.ticker import FuncFormatter

WIDTH = 6.9  # inches: the text column
HEIGHT = 2.9
DPI = 150

RC = {"figure.figsize": (WIDTH, HEIGHT), "figure.dpi": DPI, "savefig.dpi": DPI,
      "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
      "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
      "legend.frameon": False}


def use():
    """Apply the style to every figure drawn from now on (a chapter calls it once, hidden)."""
    mpl.rcParams.update(RC)


def figure(ncols: int = 1, *, height: float = HEIGHT, **kwargs):
    """A figure of `ncols` panels at the column's width; returns (fig, axes) as plt.subplots.
    Its fonts are `use()`'s once that has been called. (Not in an rc_context: leaving one
    restores the backend setting too, and in Jupyter every later figure then waits unshown.)"""
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(WIDTH, height), dpi=DPI, **kwargs)


def _short(x: float) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:g}{suffix}"
    return f"{x:g}"


STEPS = FuncFormatter(lambda x, _: _short(x))


def steps_axis(ax, axis: str = "x"):
    """Tick a step-count axis in k and M."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(STEPS)


def legend_above(target, ncols: int = 2, **kwargs):
    """A legend above the axes (or above every panel of a figure), outside the data."""
    import matplotlib.figure

    if isinstance(target, matplotlib.figure.Figure):
        handles, labels = [], []
        for ax in target.axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                if label not in labels:
                    handles.append(h)
                    labels.append(label)
        return target.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                             ncols=ncols, frameon=False, **kwargs)
    return target.legend(loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=ncols,
                         borderaxespad=0, frameon=False, **kwargs)
