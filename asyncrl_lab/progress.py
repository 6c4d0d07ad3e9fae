"""The progress bar of a run: a tqdm bar in a terminal, one updating line in a notebook."""
from __future__ import annotations

import time

import numpy as np

from .parallel import Outcome


class ProgressBar:
    """Progress of the global step, with steps/s and the recent mean return.

    In a terminal: a tqdm bar. In a Jupyter kernel: one output line (an HTML progress bar and
    its text) updated in place, a few times a second. Unlike a widget it needs no JavaScript, so
    the executed notebook, and the static book built from it, keep the final state.
    """

    def __init__(self, total: int, enabled: bool, start: int = 0):
        self.total, self.start, self.bar, self.handle = total, start, None, None
        self.last_update = 0.0
        if not enabled:
            return
        if _in_jupyter_kernel():
            from IPython.display import display

            self.handle = display(self._bundle(start, 0.0, ()), raw=True, display_id=True)
        else:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", unit_scale=True,
                            smoothing=0.1, dynamic_ncols=True)

    def _bundle(self, step: int, seconds: float, recent) -> dict:
        text = (f"T = {step:,} / {self.total:,} steps ({step / self.total:.0%}), {seconds:.1f} s, "
                f"{(step - self.start) / max(seconds, 1e-9):,.0f} steps/s")
        if len(recent):
            text += f", mean return of the last {len(recent)} episodes {np.mean(recent):.1f}"
        return {"text/plain": text,
                "text/html": f'<progress value="{step}" max="{self.total}" '
                             f'style="width: 40%; vertical-align: middle"></progress> '
                             f'<code>{text}</code>'}

    def __call__(self, outcome: Outcome, final: bool = False):
        recent = outcome.episodes.column("episode_return", last=100)
        step = min(outcome.global_step, self.total)
        if self.handle is not None and (final or time.time() - self.last_update > 0.25):
            self.last_update = time.time()
            self.handle.update(self._bundle(step, outcome.wall_time, recent), raw=True)
        elif self.bar is not None:
            self.bar.update(step - self.bar.n)
            if len(recent):
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
