"""A run's episodes and diagnostics written to TensorBoard as they arrive (`train(...,
tensorboard="dir")`), under CleanRL's names, so that a run of this package sits beside theirs in
one TensorBoard:

    charts/episodic_return, charts/episodic_length     every episode, at the global step it ended
    losses/policy_loss, losses/value_loss, losses/entropy, losses/grad_norm,
    charts/learning_rate, charts/SPS                     every sampled update (history.Diagnostic)

A term a method does not have (the value-based methods' policy loss and entropy) is not written.
"""
from __future__ import annotations

import math

from .history import DIAGNOSTIC_COLUMNS

TAGS = {"policy_loss": "losses/policy_loss", "value_loss": "losses/value_loss",
        "entropy": "losses/entropy", "grad_norm": "losses/grad_norm",
        "lr": "charts/learning_rate", "steps_per_s": "charts/SPS"}
EPISODE_TAGS = {"episode_return": "charts/episodic_return",
                "episode_length": "charts/episodic_length"}


class TensorBoardLog:
    """Called with the outcome so far (as `train`'s progress is); writes what is new since the
    last call. A resumed run writes into the same directory: TensorBoard joins the event files."""

    def __init__(self, logdir, title: str):
        from torch.utils.tensorboard import SummaryWriter  # loads tensorboard only when asked

        self.writer = SummaryWriter(str(logdir))
        self.writer.add_text("run", title)
        self._episodes = self._diagnostics = 0

    def __call__(self, outcome):
        for episode in outcome.episodes[self._episodes:]:
            for name, tag in EPISODE_TAGS.items():
                self.writer.add_scalar(tag, getattr(episode, name), episode.global_step)
        self._episodes = len(outcome.episodes)
        for row in outcome.diagnostics[self._diagnostics:]:
            for name, value in zip(DIAGNOSTIC_COLUMNS, row):
                if name in TAGS and math.isfinite(value):
                    self.writer.add_scalar(TAGS[name], value, row.global_step)
        self._diagnostics = len(outcome.diagnostics)

    def close(self, outcome=None):
        if outcome is not None:
            self(outcome)
        self.writer.close()
