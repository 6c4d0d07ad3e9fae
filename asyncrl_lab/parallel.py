"""The parallel runtime every asynchronous method runs on.

`run_workers` starts N actor-learner *processes* (torch.multiprocessing; threads would serialise on
the GIL). What they share lives in shared memory: the global network and, unless asked otherwise,
the optimizer's statistics, which workers update lock-free (Hogwild!, Recht et al. 2011); the
global step counter T; the count of updates applied; a stop flag. Each worker gets a distinct seed
and one torch thread (more would oversubscribe the cores). Workers stream episodes and update
statistics (staleness, and the diagnostics of a sample of updates) to the parent over one pipe
each, so a worker that dies cannot corrupt another's channel.

Lifecycle guarantees (each is tested):

* Ctrl-C, or "interrupt kernel" in Jupyter, stops every worker within seconds and returns the
  partial run, also during start-up. Workers ignore SIGINT from birth; only the parent decides
  to stop.
* SIGTERM to the parent stops the run the same way, with status "terminated" (`train` then
  saves it and exits); a second SIGTERM ends the parent at once.
* An exception in a worker is re-raised in the parent as `WorkerError` with the worker's
  traceback, after the other workers are stopped.
* A worker that dies without a word (SIGKILL, out of memory) is detected at once through its
  process sentinel and reported as `WorkerDied`.
* Workers exit when their parent dies (PR_SET_PDEATHSIG, and a parent check in `running()`).
* Afterwards no child process remains: shutdown asks, then terminates, then kills.

A run with more than one worker is not deterministic, whatever its seed: the order in which the
workers' updates land depends on the operating system's scheduling, a different order gives
different parameters, and those give different actions from then on. One worker is deterministic.

The synchronous method, A2C, runs on `run_coordinator` instead: one loop in the calling process,
with the same progress reports, early stop, Outcome and errors (an exception in the loop is
raised as `WorkerError` with the partial outcome; Ctrl-C returns it as "interrupted").
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import NamedTuple, Protocol

import numpy as np
import torch
import torch.multiprocessing as mp

from .history import Diagnostic, DiagnosticLog, Episode, EpisodeLog

_FLUSH_EVERY_S = 0.5  # how often workers send update statistics to the parent
_GRACE_S = 2.0  # how long workers get to stop on their own before they are terminated
# Each worker (and A2C's coordinator) keeps the diagnostics of one update in this many, its first
# included: a long run's history grows by one small row per DIAGNOSE_EVERY updates.
DIAGNOSE_EVERY = 100


class WorkerError(RuntimeError):
    """A worker raised an exception; `traceback` is the worker's, `outcome` the partial run."""

    def __init__(self, message: str, worker: int, worker_traceback: str, outcome=None):
        super().__init__(message)
        self.worker, self.traceback, self.outcome = worker, worker_traceback, outcome


class WorkerDied(WorkerError):
    """A worker process ended without reporting (killed by a signal, or crashed)."""


@dataclass
class Outcome:
    """What the workers produced: episodes in arrival order, update staleness, the sampled
    updates' diagnostics, final counters."""

    episodes: EpisodeLog = field(default_factory=EpisodeLog)
    diagnostics: DiagnosticLog = field(default_factory=DiagnosticLog)
    staleness: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    global_step: int = 0
    updates: int = 0
    wall_time: float = 0.0
    status: str = "running"  # then "finished", "interrupted", "terminated" or "failed"
    message: str = ""
    ready: set = field(default_factory=set)  # workers that finished starting up
    # Brings the caller's shared objects up to date where the workers' copy lives elsewhere (a Ray
    # parameter server); None where they are the workers' own (shared memory).
    refresh_shared: object = field(default=None, repr=False)

    def add_staleness(self, counts):
        counts = np.asarray(counts, dtype=np.int64)
        if len(counts) > len(self.staleness):
            self.staleness = np.pad(self.staleness, (0, len(counts) - len(self.staleness)))
        self.staleness[: len(counts)] += counts


class Context(Protocol):
    """What an algorithm's loop (`worker(ctx)`, or A2C's `coordinator(ctx)`) may use of the run.

    `WorkerContext` implements it (as `AsyncContext`) in each worker process, over shared memory;
    `CoordinatorContext` in the caller's process for the synchronous A2C.
    """

    rank: int  # this worker's index (the coordinator: 0)
    name: str  # "worker r" or "the coordinator", for messages
    seed: int  # this worker's own seed, derived from the run's
    config: object  # the algorithm's config
    shared: dict  # what every worker shares: "model", "optimizer", and the algorithm's own
    model: torch.nn.Module  # shared["model"], the global network theta
    optimizer: object  # shared["optimizer"]

    @property
    def global_step(self) -> int:
        """T, the global step counter."""

    def running(self) -> bool:
        """False once T reaches total_steps or the run is asked to stop."""

    def add_steps(self, n: int) -> int:
        """T <- T + n; returns the new T."""

    def apply_gradients(self, local_model: torch.nn.Module, lr: float) -> torch.Tensor:
        """Clip the local network's gradients and apply them to the shared parameters; returns
        the gradients' norm before clipping."""

    def diagnose(self, global_step: int, lr: float, grad_norm: torch.Tensor, terms: dict):
        """Offer an update's diagnostics (`terms`: loss terms as scalar tensors, means over the
        update's steps, named as `history.Diagnostic`'s columns); one in DIAGNOSE_EVERY is kept."""

    def episode(self, episode_return: float, length: int, actor: int | None = None):
        """Report a finished episode; `actor` names the env that played it where one loop steps
        several (A2C's env index), else it is the context's rank."""


class AsyncContext(Context, Protocol):
    """An asynchronous worker's context: the contract, plus the read of the shared parameters."""

    def sync(self, local_model: torch.nn.Module):
        """theta' <- theta: copy the shared parameters into the worker's local network."""


# What a worker sends its parent over its pipe, besides `history.Episode`s.
class _Ready(NamedTuple):
    rank: int


class _Done(NamedTuple):
    rank: int


class _Raised(NamedTuple):
    rank: int
    traceback: str


class _Staleness(NamedTuple):
    rank: int
    counts: list  # counts[k]: updates applied with k other updates between read and write


class _Diagnostics(NamedTuple):
    rows: list  # history.Diagnostic rows


class WorkerContext:
    """A worker's view of the shared state; built inside the worker process.

    The counters are lock-free: worker r alone writes slot r of `steps` and `updates` (shared
    int64 arrays), and T is their sum. No worker ever holds a lock, so one that is killed cannot
    leave the others blocked.
    """

    def __init__(self, rank, seed, config, shared, counters, conn, starter_pid, t0):
        self.rank, self.seed, self.config = rank, seed, config
        self.name = f"worker {rank}"
        self.model, self.optimizer = shared["model"], shared["optimizer"]
        self.shared = shared
        self._steps, self._updates, self._stop = (c.numpy() for c in counters)
        self._conn, self._starter_pid, self._t0 = conn, starter_pid, t0
        self._others_read = 0
        self._shared_params = list(self.model.parameters())
        self._shared_buffers = list(self.model.buffers())
        self._local = (None, [], [])  # (local network, its parameters, its buffers): listing
        # them is not free
        self._staleness: list[int] = []
        self._diagnostics = _Sampler(rank, t0)
        self._last_flush = time.time()
        if not config.shared_optimizer_stats:
            self.optimizer.reset_statistics()
        self.optimizer.use_slot(rank if config.shared_optimizer_stats else 0)

    @property
    def global_step(self) -> int:
        """T, the global step counter shared by all workers."""
        return int(self._steps.sum())

    def running(self) -> bool:
        """False once T reaches total_steps, the parent asked to stop, or the parent is gone."""
        return (not self._stop[0] and self.global_step < self.config.total_steps
                and os.getppid() == self._starter_pid)

    def add_steps(self, n: int) -> int:
        """T <- T + n; returns the new T."""
        self._steps[self.rank] += n
        return self.global_step

    def _other_updates(self) -> int:
        return int(self._updates.sum() - self._updates[self.rank])

    def _params_of(self, local_model: torch.nn.Module) -> list:
        if self._local[0] is not local_model:
            self._local = (local_model, list(local_model.parameters()),
                           list(local_model.buffers()))
        return self._local[1]

    @torch.no_grad()
    def sync(self, local_model: torch.nn.Module):
        """theta' <- theta: copy the shared parameters into the worker's local network, in place,
        and its buffers (the observation statistics of obs_norm) with them."""
        self._others_read = self._other_updates()
        torch._foreach_copy_(self._params_of(local_model), self._shared_params)
        if self._shared_buffers:
            torch._foreach_copy_(self._local[2], self._shared_buffers)

    def apply_gradients(self, local_model: torch.nn.Module, lr: float) -> torch.Tensor:
        """Apply the local network's gradients, their norm clipped to config.max_grad_norm, to the
        shared parameters, lock-free; returns the norm before clipping.

        Records the staleness of the update: how many other workers' updates landed between this
        worker's last `sync` and this write.
        """
        params = self._params_of(local_model)
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step([p.grad for p in params], lr)
        self._updates[self.rank] += 1
        self._staleness.append(self._other_updates() - self._others_read)
        if time.time() - self._last_flush > _FLUSH_EVERY_S:
            self.flush()
        return norm

    def diagnose(self, global_step: int, lr: float, grad_norm: torch.Tensor, terms: dict):
        """Keep one update's diagnostics in DIAGNOSE_EVERY; the parent gets them at a flush."""
        self._diagnostics.offer(global_step, lr, grad_norm, terms)

    def episode(self, episode_return: float, length: int, actor: int | None = None):
        """Report a finished episode to the parent."""
        self._conn.send(Episode(self.rank if actor is None else actor, self.global_step,
                                time.time() - self._t0, float(episode_return), int(length)))

    def flush(self):
        if self._staleness:
            self._conn.send(_Staleness(self.rank, np.bincount(self._staleness).tolist()))
            self._staleness.clear()
        if self._diagnostics.rows:
            self._conn.send(_Diagnostics(self._diagnostics.take()))
        self._last_flush = time.time()


class _Sampler:
    """The diagnostics of one update in DIAGNOSE_EVERY of one worker (or the coordinator).
    Only a kept update's tensors are read (`float`), so the others cost a counter increment."""

    def __init__(self, rank: int, t0: float):
        self.rank, self.t0 = rank, t0
        self.rows: list[Diagnostic] = []
        self._offered = 0
        self._last = (None, t0)  # (T, time) at the previous sample

    def offer(self, global_step: int, lr: float, grad_norm: torch.Tensor, terms: dict):
        self._offered += 1
        if (self._offered - 1) % DIAGNOSE_EVERY:
            return
        now = time.time()
        last_step, last_time = self._last
        rate = (global_step - last_step) / (now - last_time) if last_step is not None and \
            now > last_time else float("nan")
        self._last = (global_step, now)
        values = {name: float(value) for name, value in terms.items()}
        self.rows.append(Diagnostic(
            self.rank, global_step, now - self.t0, float(lr), float(grad_norm), rate,
            *(values.pop(name, float("nan")) for name in ("policy_loss", "value_loss",
                                                          "entropy"))))
        if values:
            raise ValueError(f"unknown diagnostics {sorted(values)}: a method reports "
                             "policy_loss, value_loss and entropy")

    def take(self) -> list:
        rows, self.rows = self.rows, []
        return rows


def _die_with_parent():
    """Ask Linux to SIGKILL this process when its parent dies (no orphans if the parent is killed)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _let_the_forkserver_go():
    """Close this worker's copy of the pipe whose end tells the fork server that every process
    using it has exited. Holding it, the workers would keep the server alive after the parent
    dies, and the server them (PR_SET_PDEATHSIG); without it, the parent's death ends the
    server and so, at once, every worker, even one stuck in an update."""
    from multiprocessing import forkserver

    fd = forkserver._forkserver._forkserver_alive_fd
    if fd is not None:
        forkserver._forkserver._forkserver_alive_fd = None
        with contextlib.suppress(OSError):
            os.close(fd)


def _worker_entry(worker_fn, rank, seed, config, shared, counters, conn, starter_pid, t0,
                  environ=None):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the parent decides when to stop
    if environ is not None:  # forked from a fork server started earlier: the parent's env now
        os.environ.clear()
        os.environ.update(environ)
        _let_the_forkserver_go()
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_AT_START)  # blocked since the spawn
    _die_with_parent()
    if os.getppid() != starter_pid:  # it died before the line above: we were orphaned
        return
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    ctx = WorkerContext(rank, seed, config, shared, counters, conn, starter_pid, t0)
    conn.send(_Ready(rank))
    try:
        worker_fn(ctx)
        ctx.flush()
        conn.send(_Done(rank))
    except BaseException:
        counters[2][0] = 1  # tell the others to stop now
        with contextlib.suppress(OSError):
            conn.send(_Raised(rank, traceback.format_exc()))
        sys.exit(1)


_HELD_AT_START = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_held_while_starting():
    """Start children with SIGINT and SIGTERM held, so that a Ctrl-C during their start-up reaches
    only the parent, and only once every child it asked for is started and known (a fork server
    forks the child before `start()` learns its pid: an interrupt in between would orphan it).

    Two holds, since each misses a case. The signal mask is inherited by spawned children, so a
    spawned worker cannot be interrupted while it imports torch, before `_worker_entry` ignores
    SIGINT for good. But the mask is per thread: a signal sent to the process is delivered to
    another thread (a progress bar's, a kernel's), and Python then runs its handler in the main
    thread anyway; so the handlers only record it meanwhile. Either way the signal is raised again
    once every child is started, and stops the run instead of being lost.
    """
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "pthread_sigmask")):
        yield
        return
    caught = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in _HELD_AT_START}
    signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_AT_START)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_AT_START)  # a pending one lands here
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


class _Terminate(BaseException):
    """Raised in the parent by the SIGTERM that stops a run."""


class _SigtermStopsTheRun:
    """While a run goes on, the first SIGTERM to the parent stops it as Ctrl-C does: it raises
    `_Terminate` wherever the parent is, unless the run is already stopping (`stopping = True`),
    where it is only recorded (`received`). The handler then goes back to the default, so a
    second SIGTERM ends the process at once. Only the main thread can take signals."""

    def __init__(self):
        self.received, self.stopping, self.previous = False, False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.received = True
        if not self.stopping:
            raise _Terminate

    def __exit__(self, *exc):
        if self.previous is not None and not self.received:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def _stopped(outcome: "Outcome", status: str):
    outcome.status = status
    outcome.message = {"interrupted": "interrupted by the user",
                       "terminated": "terminated by SIGTERM"}[status] + "; the partial run is kept"


def _resource_tracker_running() -> bool:
    from multiprocessing import resource_tracker

    return getattr(resource_tracker._resource_tracker, "_pid", None) is not None


def _stop_resource_tracker():
    """Stop multiprocessing's resource tracker, a helper process that the spawn and forkserver
    start methods launch and that would otherwise outlive the run; the next run restarts it."""
    from multiprocessing import resource_tracker

    with contextlib.suppress(Exception):
        resource_tracker._resource_tracker._stop()


def _signal_name(exitcode: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(-exitcode).name
    return f"signal {-exitcode}"


PRELOADED = ["__main__", "torch", "asyncrl_lab"]


def _starter_pid(mp_ctx, by_forkserver: bool) -> int:
    """The pid a worker's parent has: ours, or with forkserver the server's, which forks every
    worker and exits when we do (so the chain of PR_SET_PDEATHSIG still ends every worker)."""
    if not by_forkserver:
        return os.getpid()
    from multiprocessing import forkserver

    # A server started here imports torch and the package once; every worker is a fork of it,
    # ready in milliseconds instead of paying ~1.3 s to import torch (benchmarks/worker_startup.py).
    mp_ctx.set_forkserver_preload(PRELOADED)
    forkserver.ensure_running()
    return forkserver._forkserver._forkserver_pid


def worker_seeds(config) -> list[int]:
    """The distinct seed of each worker, derived from the run's seed."""
    return np.random.SeedSequence(config.seed).generate_state(config.workers).tolist()


def run_workers(worker_fn, config, shared: dict, *, progress=None, start_step: int = 0,
                stop_when=None) -> Outcome:
    """Run `worker_fn(ctx)` in `config.workers` processes until T >= total_steps, then clean up.

    `shared` holds the objects every worker sees (the global model, the optimizer, ...), already in
    shared memory. `progress`, if given, is called in the parent about 5 times a second with the
    outcome so far; so is `stop_when`, and the run ends early, as finished, once it returns True.
    T starts at `start_step` (a resumed run continues its count). Returns the
    Outcome; raises WorkerError/WorkerDied (with `.outcome`) on failure.
    A KeyboardInterrupt returns the partial outcome with status "interrupted".
    """
    mp_ctx = mp.get_context(config.start_method)
    by_forkserver = config.start_method == "forkserver"
    counters = (torch.zeros(config.workers, dtype=torch.int64).share_memory_(),  # steps per worker
                torch.zeros(config.workers, dtype=torch.int64).share_memory_(),  # updates per worker
                torch.zeros(1, dtype=torch.uint8).share_memory_())  # the stop flag
    steps, updates, stop = counters
    steps[0] = start_step  # T is the sum of the slots; worker 0 carries the resumed count
    tracker_was_running = _resource_tracker_running()
    seeds = worker_seeds(config)
    outcome = Outcome()
    starter = _starter_pid(mp_ctx, by_forkserver)
    environ = dict(os.environ) if by_forkserver else None
    t0 = time.time()
    procs, readers = [], []
    for rank in range(config.workers):
        reader, writer = mp_ctx.Pipe(duplex=False)
        proc = mp_ctx.Process(target=_worker_entry, name=f"asyncrl-worker-{rank}", daemon=True,
                              args=(worker_fn, rank, seeds[rank], config, shared, counters,
                                    writer, starter, t0, environ))
        procs.append(proc)
        readers.append((reader, writer))
    failure = None
    open_readers, started = {}, []
    with _SigtermStopsTheRun() as sigterm:
        try:
            with _signals_held_while_starting():
                for proc in procs:
                    proc.start()
                    started.append(proc)
            for rank, (reader, writer) in enumerate(readers):
                writer.close()  # the parent keeps only the read end: EOF means the worker is gone
                open_readers[reader] = rank
            done = set()
            while len(done) < len(procs):
                wait(list(open_readers) + [p.sentinel for p in procs if p.exitcode is None],
                     timeout=0.2)
                failure = _drain(open_readers, outcome, done) or failure
                for rank, proc in enumerate(procs):
                    if proc.exitcode is not None and rank not in done:
                        failure = _drain(open_readers, outcome, done, until_eof=True) or failure
                        if rank not in done and failure is None:
                            failure = WorkerDied(_death_message(rank, proc, outcome, config),
                                                 rank, "")
                        done.add(rank)
                if failure is not None:
                    break
                outcome.global_step, outcome.updates = int(steps.sum()), int(updates.sum())
                outcome.wall_time = time.time() - t0
                if progress is not None:
                    progress(outcome)
                if stop_when is not None and stop_when(outcome):
                    break
            outcome.status = "finished"
        except KeyboardInterrupt:
            _stopped(outcome, "interrupted")
        except _Terminate:
            _stopped(outcome, "terminated")
        finally:
            sigterm.stopping = True
            stop[0] = 1
            _shutdown(started, open_readers, outcome)
            if not tracker_was_running and not by_forkserver:
                _stop_resource_tracker()  # the forkserver, which lives on, holds the tracker
            outcome.global_step, outcome.updates = int(steps.sum()), int(updates.sum())
            outcome.wall_time = time.time() - t0
    if sigterm.received and outcome.status == "finished":  # it came while the workers stopped
        _stopped(outcome, "terminated")
    if failure is not None:
        outcome.status, outcome.message = "failed", str(failure)
        failure.outcome = outcome
        raise failure
    return outcome


def _death_message(rank, proc, outcome: Outcome, config) -> str:
    how = (f"was killed by {_signal_name(proc.exitcode)}" if proc.exitcode < 0
           else f"exited with code {proc.exitcode}")
    message = f"worker {rank} (pid {proc.pid}) {how} without reporting; the other workers were stopped"
    if rank not in outcome.ready and proc.exitcode > 0:
        message += (f". It died while starting up (its error is printed above). With the "
                    f"'{config.start_method}' start method a script that trains must guard its "
                    "code with `if __name__ == '__main__':`, since workers import the main module; "
                    "or pass start_method='fork'")
    return message


def _drain(open_readers: dict, outcome: Outcome, done: set, until_eof=False):
    """Read every pending message; returns a WorkerError if a worker reported one."""
    failure = None
    for reader, rank in list(open_readers.items()):
        try:
            while reader.poll(0.05 if until_eof else 0):
                match reader.recv():
                    case Episode() as episode:
                        outcome.episodes.append(episode)
                    case _Staleness(counts=counts):
                        outcome.add_staleness(counts)
                    case _Diagnostics(rows=rows):
                        for row in rows:
                            outcome.diagnostics.append(row)
                    case _Ready():
                        outcome.ready.add(rank)
                    case _Done():
                        done.add(rank)
                    case _Raised(traceback=worker_traceback):
                        done.add(rank)
                        failure = failure or WorkerError(
                            f"worker {rank} raised an exception; the other workers were stopped.\n"
                            f"Worker {rank}'s traceback:\n{worker_traceback}", rank,
                            worker_traceback)
        except (EOFError, OSError):
            del open_readers[reader]
            reader.close()
    return failure


def _shutdown(procs, open_readers: dict, outcome: Outcome):
    """Stop every worker: wait for them (draining their pipes), then terminate, then kill."""
    deadline = time.time() + _GRACE_S
    ignored = set()
    while any(p.is_alive() for p in procs) and time.time() < deadline:
        _drain(open_readers, outcome, ignored)
        time.sleep(0.02)
    for sig_method in ("terminate", "kill"):
        alive = [p for p in procs if p.is_alive()]
        for proc in alive:
            getattr(proc, sig_method)()
        for proc in alive:
            proc.join(1.0)
    for proc in procs:
        proc.join(0.1)
        proc.close()
    _drain(open_readers, outcome, ignored)
    for reader in list(open_readers):
        reader.close()
    open_readers.clear()


class CoordinatorContext:
    """The synchronous coordinator's view of the run (A2C): the same counters and reports as a
    worker's `WorkerContext`, kept in the calling process. `running()` also reports progress."""

    rank = 0
    name = "the coordinator"

    def __init__(self, config, shared, outcome: Outcome, start_step: int, report, t0: float):
        self.config, self.shared, self.seed = config, shared, config.seed
        self.model, self.optimizer = shared["model"], shared["optimizer"]
        self._outcome, self._report, self._t0 = outcome, report, t0
        self._step = start_step
        self._stopped = False
        self._last_report = time.time()
        self._diagnostics = _Sampler(self.rank, t0)

    @property
    def global_step(self) -> int:
        return self._step

    def running(self) -> bool:
        """False once T reaches total_steps or the early-stop test (`stop_when`) says so."""
        if time.time() - self._last_report > 1 / 5:
            self._last_report = time.time()
            self._stopped = self._report(self._update_outcome())
        return not self._stopped and self._step < self.config.total_steps

    def add_steps(self, n: int) -> int:
        self._step += n
        return self._step

    def apply_gradients(self, model: torch.nn.Module, lr: float) -> torch.Tensor:
        """Apply the gradients, their norm clipped to config.max_grad_norm; returns the norm before
        clipping. Nothing else writes the parameters between the read and this write: every update
        has staleness 0."""
        params = list(model.parameters())  # the coordinator trains the shared model itself
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step([p.grad for p in params], lr)
        self._outcome.updates += 1
        return norm

    def diagnose(self, global_step: int, lr: float, grad_norm: torch.Tensor, terms: dict):
        """Keep one update's diagnostics in DIAGNOSE_EVERY."""
        self._diagnostics.offer(global_step, lr, grad_norm, terms)
        for row in self._diagnostics.take():
            self._outcome.diagnostics.append(row)

    def episode(self, episode_return: float, length: int, actor: int | None = None):
        """Record a finished episode; the history's worker column holds the env's index."""
        self._outcome.episodes.append(Episode(self.rank if actor is None else actor, self._step,
                                              time.time() - self._t0, float(episode_return),
                                              int(length)))

    def _update_outcome(self) -> Outcome:
        outcome = self._outcome
        outcome.global_step, outcome.wall_time = self._step, time.time() - self._t0
        outcome.staleness = np.array([outcome.updates], dtype=np.int64)
        return outcome


def run_coordinator(loop_fn, config, shared: dict, *, progress=None, start_step: int = 0,
                    stop_when=None) -> Outcome:
    """Run `loop_fn(ctx)` in this process until T >= total_steps: `run_workers` for a method with
    one synchronous learner. Same arguments, Outcome and errors as `run_workers`."""
    outcome = Outcome()

    def report(so_far: Outcome) -> bool:
        if progress is not None:
            progress(so_far)
        return stop_when is not None and stop_when(so_far)

    ctx = CoordinatorContext(config, shared, outcome, start_step, report, time.time())
    try:
        with _SigtermStopsTheRun():
            loop_fn(ctx)
        outcome.status = "finished"
    except KeyboardInterrupt:
        _stopped(outcome, "interrupted")
    except _Terminate:
        _stopped(outcome, "terminated")
    except Exception as exc:
        ctx._update_outcome()
        outcome.status = "failed"
        failure = WorkerError(f"{ctx.name} raised an exception:\n{traceback.format_exc()}", 0,
                              traceback.format_exc(), outcome)
        outcome.message = str(failure)
        raise failure from exc
    ctx._update_outcome()
    return outcome
