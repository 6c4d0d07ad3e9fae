"""The record of a run: its episodes, the staleness of its updates, and diagnostics of a sample
of its updates (losses, entropy, gradient norm, learning rate, throughput).

`EpisodeLog` and `DiagnosticLog` are what the parent fills while a run goes on; `History` is
what a Run keeps. All store columns in numpy arrays. The episode log takes 32 bytes an episode:
a tuple of five Python numbers costs about 200, and a long run's parent would grow by that much
for every episode.
"""
from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path

from typing import NamedTuple

import numpy as np


class Episode(NamedTuple):
    """One finished episode, as a worker reports it and a history row reads."""

    worker: int  # the worker's rank (A2C: the env's index)
    global_step: int  # T when it ended
    wall_time: float  # seconds since the run started
    episode_return: float
    episode_length: int


EPISODE_COLUMNS = Episode._fields
_LOG_DTYPES = (np.int32, np.int64, np.float64, np.float64, np.int32)  # 32 bytes an episode
_CHUNK = 4096  # rows a chunk of a log holds
_DTYPES = (np.int64, np.int64, np.float64, np.float64, np.int64)


class Diagnostic(NamedTuple):
    """One sampled update, as a worker reports it. The losses are means over the update's steps;
    a term a method does not have is NaN (the value-based methods have no policy or entropy)."""

    worker: int
    global_step: int  # T at the update
    wall_time: float  # seconds since the run started
    lr: float  # the learning rate the update used
    grad_norm: float  # the gradient's norm before clipping
    steps_per_s: float  # global steps per second since the worker's previous sample
    policy_loss: float
    value_loss: float
    entropy: float


DIAGNOSTIC_COLUMNS = Diagnostic._fields
_DIAGNOSTIC_DTYPES = (np.int32, np.int64) + (np.float64,) * 7  # 68 bytes a sample


class _ColumnLog:
    """Rows of a NamedTuple in arrival order, in columns.

    Rows go into chunks of `_CHUNK` rows, allocated once and never copied or freed: a log
    that doubled one array would copy it and leave the freed halves to the allocator, and the
    parent's memory would grow by more than the bytes a row takes.

    It reads as a sequence of rows, as a `progress` callable sees `outcome.episodes`;
    `column(name)` gives one column without building rows.
    """

    row_type: type
    dtypes: tuple

    def __init__(self):
        self._chunks: list[list[np.ndarray]] = []  # each: one array per column, _CHUNK rows
        self._n = 0

    def append(self, row):
        i = self._n % _CHUNK
        if i == 0:
            self._chunks.append([np.empty(_CHUNK, dtype) for dtype in self.dtypes])
        for column, value in zip(self._chunks[-1], row):
            column[i] = value
        self._n += 1

    def __len__(self):
        return self._n

    def column(self, name: str, last: int | None = None) -> np.ndarray:
        """A copy of one column: every row so far, or the `last` ones."""
        j = self.row_type._fields.index(name)
        start = 0 if last is None else max(self._n - last, 0)
        first = start // _CHUNK
        parts = [chunk[j] for chunk in self._chunks[first:]]
        if not parts:
            return np.empty(0, self.dtypes[j])
        return np.concatenate(parts)[start - first * _CHUNK: self._n - first * _CHUNK]

    def columns(self) -> list:
        return [self.column(name) for name in self.row_type._fields]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"{self.row_type.__name__.lower()} index out of range")
        chunk = self._chunks[index // _CHUNK]
        return self.row_type(*(c[index % _CHUNK].item() for c in chunk))

    def __iter__(self):
        return (self[i] for i in range(self._n))


class EpisodeLog(_ColumnLog):
    """The episodes of a running training in arrival order (32 bytes an episode)."""

    row_type, dtypes = Episode, _LOG_DTYPES


class DiagnosticLog(_ColumnLog):
    """The sampled updates' diagnostics of a running training in arrival order."""

    row_type, dtypes = Diagnostic, _DIAGNOSTIC_DTYPES


class Diagnostics:
    """A run's sampled updates (see `Diagnostic`), one numpy array per column, named as the
    columns are (`diagnostics.entropy`, ...)."""

    def __init__(self, rows=()):
        if isinstance(rows, DiagnosticLog):
            columns = rows.columns()
        else:
            table = np.array(list(rows), dtype=np.float64).reshape(-1, len(DIAGNOSTIC_COLUMNS))
            columns = [table[:, i] for i in range(len(DIAGNOSTIC_COLUMNS))]
        for name, column, dtype in zip(DIAGNOSTIC_COLUMNS, columns, _DIAGNOSTIC_DTYPES):
            setattr(self, name, column.astype(np.int64 if dtype != np.float64 else dtype))

    def __len__(self):
        return len(self.global_step)

    def __repr__(self):
        return f"Diagnostics({len(self)} sampled updates)"

    def _columns(self):
        return [getattr(self, name) for name in DIAGNOSTIC_COLUMNS]

    def followed_by(self, later: "Diagnostics", wall_offset: float) -> "Diagnostics":
        """These samples, then a resumed run's, whose wall times count from `wall_offset`."""
        joined = Diagnostics()
        for name, a, b in zip(DIAGNOSTIC_COLUMNS, self._columns(), later._columns()):
            setattr(joined, name, np.concatenate([a, b + wall_offset if name == "wall_time" else b]))
        return joined

    def _write_csv(self, file):
        with open(file, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(DIAGNOSTIC_COLUMNS)
            for row in zip(*self._columns()):
                writer.writerow([int(row[0]), int(row[1]), f"{row[2]:.4f}",
                                 *(repr(float(x)) for x in row[3:])])

    @classmethod
    def from_csv(cls, path) -> "Diagnostics":
        return cls(_read_rows(path, DIAGNOSTIC_COLUMNS, "a diagnostics file"))


class History:
    """Every finished episode (worker, global step, wall time, return, length), in arrival order,
    the staleness of every update (`staleness[k]`: updates applied with k other updates
    landing between the worker's read of the parameters and its write), and the `diagnostics`
    of one update in `DIAGNOSE_EVERY` of each worker (see `Diagnostic`).

    `episodes` is an EpisodeLog or an iterable of rows."""

    def __init__(self, episodes=(), staleness=None, diagnostics=None):
        if isinstance(episodes, EpisodeLog):
            columns = [c.astype(dtype) for c, dtype in zip(episodes.columns(), _DTYPES)]
        else:
            rows = np.array(list(episodes), dtype=np.float64).reshape(-1, len(EPISODE_COLUMNS))
            columns = [rows[:, i].astype(dtype) for i, dtype in enumerate(_DTYPES)]
        self.worker, self.global_step, self.wall_time, self.episode_return, \
            self.episode_length = columns
        self.staleness = np.zeros(0, np.int64) if staleness is None else np.asarray(staleness, np.int64)
        self.diagnostics = diagnostics if isinstance(diagnostics, Diagnostics) else \
            Diagnostics(() if diagnostics is None else diagnostics)

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

    def of_worker(self, rank: int) -> "History":
        """The episodes worker `rank` played (update staleness is not kept per worker)."""
        return History(row for row in self.rows() if row[0] == rank)

    def followed_by(self, later: "History", wall_offset: float) -> "History":
        """This history, then `later`'s episodes (a resumed run's), whose wall times count from
        `wall_offset`, and its diagnostics; the staleness counts add up."""
        history = History(staleness=_add_counts(self.staleness, later.staleness),
                          diagnostics=self.diagnostics.followed_by(later.diagnostics, wall_offset))
        history.worker, history.global_step, history.wall_time, history.episode_return, \
            history.episode_length = (
                np.concatenate([a, b + wall_offset if name == "wall_time" else b])
                for name, a, b in zip(EPISODE_COLUMNS, self._columns(), later._columns()))
        return history

    def _columns(self):
        return (self.worker, self.global_step, self.wall_time, self.episode_return,
                self.episode_length)

    def to_csv(self, path):
        with atomic_path(path) as tmp:
            self._write_csv(tmp)

    def _write_csv(self, file):
        with open(file, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(EPISODE_COLUMNS)
            for row in self.rows():
                writer.writerow([int(row[0]), int(row[1]), f"{row[2]:.4f}", repr(float(row[3])),
                                 int(row[4])])

    def rows(self) -> list:
        """The episodes as (worker, global step, wall time, return, length) tuples."""
        return list(zip(*self._columns()))

    @classmethod
    def from_csv(cls, path, staleness=None, diagnostics=None) -> "History":
        return cls(_read_rows(path, EPISODE_COLUMNS, "a history file"), staleness, diagnostics)


def _read_rows(path, columns: tuple, what: str) -> list:
    """The rows of a CSV file written with `columns` as its header, as lists of floats."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if tuple(header or ()) != columns:
            raise ValueError(f"{path} is not {what}: its header is {header}, "
                             f"expected {list(columns)}")
        return [[float(x) for x in row] for row in reader]


def _add_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = np.zeros(max(len(a), len(b)), dtype=np.int64)
    total[: len(a)] += a
    total[: len(b)] += b
    return total


class atomic_path:
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
