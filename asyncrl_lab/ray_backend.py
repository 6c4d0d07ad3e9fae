"""The asynchronous methods on Ray: the same algorithm files, their workers as Ray actors
anywhere in a cluster, the shared parameters in a parameter server.

`run_workers_ray` takes `parallel.run_workers`' arguments and gives its Outcome and errors. What
the shared-memory runtime keeps in shared memory, one actor keeps here: the `ParameterServer`
holds theta (with its buffers, the observation statistics of obs_norm), the optimizer (one per
worker when the statistics are not shared), T, and the news for the driver. It applies each
worker's gradient as it arrives, one at a time: the paper's asynchronous update, with the
arrival order standing for the interleaving of Hogwild! writes.

A worker's `RayWorkerContext` implements the `AsyncContext` contract. `apply_gradients` sends the
clipped gradient with the steps, episodes and sampled diagnostics since the last exchange, and
the reply carries theta after the update, T and the stop flag: one round trip per update. `sync`
copies that theta (pulled with the last update, so a worker pulls before each rollout without a
second message). The algorithm files do not change.

What differs from shared memory, and why:

* Staleness is counted on the server as on the shared-memory runtime: the updates of other
  workers applied between the read of theta that a gradient was computed from and its write.
* T as a worker knows it is the server's count at its last exchange plus its own steps since;
  the run may overshoot `total_steps` by up to a rollout per worker.
* The value methods' target network theta^- and ACER's average network theta_a stay per worker
  (each is a function of theta that a worker refreshes from the theta it holds); a checkpoint
  keeps worker 0's.
* With obs_norm each worker sends the moments of the observations it saw since its last
  exchange, and the server merges them into theta's statistics (`merge_moments`).

Lifecycle: `ray_session` starts a local Ray when none is given (in its own temporary directory,
with its own auth token, shut down and removed afterwards, by a reaper process even when the
parent is killed); Ctrl-C stops every actor and returns the partial run; SIGTERM stops it with
status "terminated"; a worker's exception is re-raised as `WorkerError` with its traceback; a
killed actor is reported as `WorkerDied` with its rank and not restarted (its rollout, its
exploration schedule and its target network would start again from nothing, silently).
"""
from __future__ import annotations

import contextlib
import copy
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import numpy as np
import torch

from .history import Episode
from .nets import Moments, merge_moments
from .parallel import (Outcome, WorkerDied, WorkerError, _Sampler,
                       _SigtermStopsTheRun, _stopped, worker_seeds)

_POLL_S = 0.2  # how often the driver asks the server for news (progress, early stop)
_NETWORKS_EVERY_S = 10.0  # how often worker 0 sends its target or average network
_GRACE_S = 5.0  # how long workers get to stop on their own before their actors are killed
_SESSION_VAR = "ASYNCRL_RAY_SESSION"  # marks the processes of a local Ray started here
# A local Ray's session directory is SESSION_PREFIX + 8 characters in `session_root()`; its Unix
# sockets lie below it, at session_<date>_<time>_<usec>_<pid>/sockets/plasma_store, and a
# socket's path may not exceed 107 bytes.
SESSION_PREFIX = "ray-"
_SOCKET_DEPTH = len(f"/{SESSION_PREFIX}12345678/session_2026-12-08_00-13-19_859806_1234567"
                    "/sockets/plasma_store")
# A local Ray's shared-memory object store. Ray's default, 30% of the machine's memory, is
# reserved as address space, so a process with a limit on it (the grader's 4 GB) could not start
# Ray; parameters and gradients are small (the paper's Atari network: 7 MB), so this is plenty.
_OBJECT_STORE_BYTES = 256 * 2**20
# The local clusters' auth token: one per process, since Ray reads it once and keeps it.
_LOCAL_TOKEN = secrets.token_hex(16)


# ----------------------------------------------------------------------------- pure functions

def moments_since(before: Moments, after: Moments) -> Moments:
    """The moments of the observations added to a sample between `before` and `after`:
    `merge_moments`' inverse, merge_moments(before, moments_since(before, after)) == after."""
    n = after.count - before.count
    if n <= 0:
        return Moments(0.0, np.zeros_like(after.mean), np.zeros_like(after.var))
    mean = (after.count * after.mean - before.count * before.mean) / n
    delta = mean - before.mean
    m2 = after.var * after.count - before.var * before.count - \
        delta ** 2 * before.count * n / after.count
    return Moments(n, mean, np.maximum(m2 / n, 0.0))


# ------------------------------------------------------------------------- the parameter server

def _flat(tensors) -> np.ndarray:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy()


def _normalizer(model):
    return getattr(model, "normalizer", None)


def _moments_of(norm) -> Moments:
    return Moments(float(norm.count), norm.mean.numpy().copy(), norm.var.numpy().copy())


def _set_moments(norm, m: Moments):
    norm.count.fill_(m.count)
    norm.mean.copy_(torch.as_tensor(m.mean))
    norm.var.copy_(torch.as_tensor(m.var))


class _Reply(NamedTuple):
    theta: np.ndarray  # the parameters after the update, flat
    moments: Moments | None  # theta's observation statistics (obs_norm)
    global_step: int  # T after the worker's steps were counted
    stop: bool


class ParameterServer:
    """theta, the optimizer, T, and the news for the driver; one call at a time (a Ray actor runs
    its methods in arrival order), so each gradient is applied whole before the next."""

    def __init__(self, shared: dict, config, start_step: int):
        self.shared, self.config = shared, config
        model = shared["model"]
        self.params = list(model.parameters())
        self.norm = _normalizer(model)
        optimizer = shared["optimizer"]
        if config.shared_optimizer_stats:
            self.optimizers = [optimizer] * config.workers
        else:  # per-worker statistics, as each worker process would keep them privately
            # a copy each, on the same parameters (deepcopy's memo maps them to themselves; a
            # memo kept across copies would return the first copy again)
            self.optimizers = [copy.deepcopy(optimizer, {id(p): p for p in self.params})
                               .reset_statistics() for _ in range(config.workers)]
        self.global_step, self.updates, self.stopping = start_step, 0, False
        self.read_at = {}  # rank -> updates applied when the worker last read theta
        self.networks = {}  # worker 0's other networks (target, average), as it last sent them
        self.news = self._no_news()

    @staticmethod
    def _no_news() -> dict:
        return {"episodes": [], "staleness": [], "diagnostics": [], "ready": []}

    def _reply(self, rank: int) -> _Reply:
        self.read_at[rank] = self.updates
        return _Reply(_flat(self.params), None if self.norm is None else _moments_of(self.norm),
                      self.global_step, self.stopping)

    def join(self, rank: int) -> _Reply:
        self.news["ready"].append(rank)
        return self._reply(rank)

    @torch.no_grad()
    def push(self, rank: int, grads: np.ndarray | None, lr: float, steps: int, episodes: list,
             diagnostics: list, moments: Moments | None, networks: dict | None) -> _Reply:
        """One worker's exchange: its gradient (None when it only reports), applied now."""
        if grads is not None:
            grads = [g.view_as(p) for g, p in zip(
                torch.as_tensor(grads).split([p.numel() for p in self.params]), self.params)]
            optimizer = self.optimizers[rank]
            optimizer.use_slot(rank if self.config.shared_optimizer_stats else 0)
            optimizer.step(grads, lr)
            self.news["staleness"].append(self.updates - self.read_at[rank])
            self.updates += 1
        if moments is not None and moments.count:
            _set_moments(self.norm, merge_moments(_moments_of(self.norm), moments))
        if networks is not None:
            self.networks = networks
        self.global_step += steps
        self.news["episodes"] += episodes
        self.news["diagnostics"] += diagnostics
        return self._reply(rank)

    def poll(self) -> tuple[int, int, dict]:
        news, self.news = self.news, self._no_news()
        return self.global_step, self.updates, news

    def stop(self):
        self.stopping = True

    def state(self) -> tuple[dict, dict, dict]:
        """theta's state dict, the optimizer's (the shared one's; untouched with per-worker
        statistics, as the shared-memory runtime leaves the parent's) and worker 0's networks."""
        return (self.shared["model"].state_dict(), self.shared["optimizer"].state_dict(),
                self.networks)


# ------------------------------------------------------------------------------ a worker's view

class RayWorkerContext:
    """`AsyncContext` for a worker in a Ray actor: its own copy of the shared dict (theta as of
    its last exchange in `model`, its own target or average network), the server a message away."""

    def __init__(self, rank, seed, config, shared, server, t0):
        import ray

        self._ray = ray
        self.rank, self.seed, self.config = rank, seed, config
        self.name = f"worker {rank}"
        self.shared, self.model, self.optimizer = shared, shared["model"], shared["optimizer"]
        self._server, self._t0 = server, t0
        self._params = list(self.model.parameters())
        self._norm = _normalizer(self.model)
        self._local = (None, [], [])
        self._steps = 0  # taken since the last exchange
        self._networks_sent = time.time()
        self._episodes, self._diagnostics = [], _Sampler(rank, t0)
        self._receive(ray.get(server.join.remote(rank)))

    @torch.no_grad()
    def _receive(self, reply: _Reply):
        for p, v in zip(self._params, torch.as_tensor(reply.theta).split(
                [p.numel() for p in self._params])):
            p.copy_(v.view_as(p))
        if reply.moments is not None:
            _set_moments(self._norm, reply.moments)
            self._moments = reply.moments
        self._known_step, self._stop = reply.global_step, reply.stop

    @property
    def global_step(self) -> int:
        return self._known_step + self._steps

    def running(self) -> bool:
        return not self._stop and self.global_step < self.config.total_steps

    def add_steps(self, n: int) -> int:
        self._steps += n
        return self.global_step

    def _params_of(self, local_model):
        if self._local[0] is not local_model:
            self._local = (local_model, list(local_model.parameters()),
                           list(local_model.buffers()))
        return self._local[1]

    @torch.no_grad()
    def sync(self, local_model: torch.nn.Module):
        """theta' <- theta, the theta of the last reply (and its observation statistics)."""
        torch._foreach_copy_(self._params_of(local_model), self._params)
        if self._local[2]:
            torch._foreach_copy_(self._local[2], list(self.model.buffers()))

    def apply_gradients(self, local_model: torch.nn.Module, lr: float) -> torch.Tensor:
        """Send the local gradients, their norm clipped to config.max_grad_norm, to the server,
        and take theta back; returns the norm before clipping."""
        params = self._params_of(local_model)
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self._exchange(_flat([p.grad for p in params]), lr)
        return norm

    def _exchange(self, grads, lr, last=False):
        moments = None
        if self._norm is not None:
            moments = moments_since(self._moments, _moments_of(self._norm))
        networks = None  # worker 0's target or average network, for checkpoints
        if self.rank == 0 and (last or time.time() - self._networks_sent > _NETWORKS_EVERY_S):
            networks = {name: module.state_dict() for name, module in self.shared.items()
                        if name != "model" and isinstance(module, torch.nn.Module)}
            self._networks_sent = time.time()
        reply = self._ray.get(self._server.push.remote(
            self.rank, grads, lr, self._steps, self._episodes, self._diagnostics.take(), moments,
            networks))
        self._steps, self._episodes = 0, []
        self._receive(reply)

    def flush(self):
        """Report the steps, episodes and diagnostics not sent yet."""
        self._exchange(None, 0.0, last=True)

    def diagnose(self, global_step: int, lr: float, grad_norm: torch.Tensor, terms: dict):
        self._diagnostics.offer(global_step, lr, grad_norm, terms)

    def episode(self, episode_return: float, length: int, actor: int | None = None):
        self._episodes.append(Episode(self.rank if actor is None else actor, self.global_step,
                                      time.time() - self._t0, float(episode_return), int(length)))


class RayWorker:
    """The actor a worker runs in: one env, one torch thread, deaf to Ctrl-C (the driver stops
    it, as a worker process is stopped)."""

    def __init__(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(1)

    def run(self, worker_fn, rank, seed, config, shared, server, t0):
        torch.manual_seed(seed)
        ctx = RayWorkerContext(rank, seed, config, shared, server, t0)
        worker_fn(ctx)
        ctx.flush()


# ------------------------------------------------------------------------------- the session

def _reaper_code() -> str:
    """A process that outlives nothing: it waits for its stdin to close (the parent closed it, or
    died), then kills every process marked with this session and removes its directory."""
    return f"""
import os, shutil, signal, sys, time
import psutil
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
session, directory = sys.argv[1], sys.argv[2]
sys.stdin.read()
def ours():
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get({_SESSION_VAR!r}) == session:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found
deadline = time.time() + 10
while (left := ours()) and time.time() < deadline:
    for proc in left:
        try:
            proc.send_signal(signal.SIGTERM if time.time() < deadline - 8 else signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=0.5)
shutil.rmtree(directory, ignore_errors=True)
"""


def session_root() -> str:
    """The temporary directory (where a grader's sandbox, say, is cleaned up), unless Ray's socket
    paths below it would be too long; then /tmp, Ray's own default root."""
    root = tempfile.gettempdir()
    return root if len(root) + _SOCKET_DEPTH <= 107 else "/tmp"


@contextlib.contextmanager
def ray_session(address: str = "", cpus: int = 2):
    """Ray for a run. A session already started (`ray.init`) is used as it is; with `address`
    ("HOST:PORT" of a running cluster) the driver connects and disconnects; with neither, a
    local Ray with `cpus` CPUs starts offline in a temporary directory and is shut down after,
    every one of its processes ended and the directory removed, even if this process is killed
    (a reaper process watches it)."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address:
        ray.init(address=address, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()
        return
    session = secrets.token_hex(8)
    directory = tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=session_root())
    reaper = subprocess.Popen([sys.executable, "-c", _reaper_code(), session, directory],
                              stdin=subprocess.PIPE, start_new_session=True)
    # Marks every process Ray starts for this run (they inherit the environment), and gives the
    # local cluster its own token: Ray 2.59+ otherwise writes one to ~/.ray/auth_token.
    saved = {name: os.environ.get(name) for name in (_SESSION_VAR, "RAY_AUTH_TOKEN")}
    os.environ[_SESSION_VAR] = session
    os.environ["RAY_AUTH_TOKEN"] = _LOCAL_TOKEN
    try:
        ray.init(address="local", num_cpus=cpus, _temp_dir=directory, include_dashboard=False,
                 log_to_driver=False, configure_logging=False,
                 object_store_memory=_OBJECT_STORE_BYTES)
        yield
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reaper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            reaper.wait(15)


# ------------------------------------------------------------------------------- the driver

def run_workers_ray(worker_fn, config, shared: dict, *, progress=None, start_step: int = 0,
                    stop_when=None) -> Outcome:
    """`parallel.run_workers` on Ray: `config.workers` actors (one CPU each) and a parameter
    server, on the cluster at `config.ray_address`, or on a local Ray started for the run. Same
    arguments, Outcome, status and errors. `outcome.refresh_shared()` copies the server's state
    into `shared` (theta, the optimizer's statistics, worker 0's other networks): `train` calls
    it before each checkpoint, and it is done once more at the end."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    outcome = Outcome()
    failure = None
    t0 = time.time()
    sigterm = _SigtermStopsTheRun()
    with contextlib.ExitStack() as stack:
        server, refs, actors = None, {}, []
        try:
            stack.enter_context(ray_session(config.ray_address, config.workers))
            # after ray.init, which installs a SIGTERM handler of its own that ends the process
            stack.enter_context(sigterm)
            sigterm.stopping = True  # raised inside Ray's waits, a signal breaks them: polled
            cpus = ray.cluster_resources().get("CPU", 0)
            if cpus < config.workers:  # the actors would wait for CPUs forever
                raise ValueError(f"workers={config.workers} needs a CPU each, and the Ray cluster "
                                 f"has {cpus:g}")
            server = ray.remote(ParameterServer).options(num_cpus=0).remote(
                shared, config, start_step)
            outcome.refresh_shared = lambda: _pull(server, shared)
            shared_ref = ray.put(shared)
            worker_actor = ray.remote(RayWorker).options(num_cpus=1)
            for rank, seed in enumerate(worker_seeds(config)):
                actor = worker_actor.remote()
                actors.append(actor)
                refs[actor.run.remote(worker_fn, rank, seed, config, shared_ref, server,
                                      t0)] = rank
            pending = dict(refs)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S)
                for ref in done:
                    rank = pending.pop(ref)
                    try:
                        ray.get(ref)
                    except RayTaskError as err:
                        failure = WorkerError(
                            f"worker {rank} raised an exception; the other workers were stopped."
                            f"\nWorker {rank}'s traceback:\n{err}", rank, str(err))
                    except RayActorError:
                        failure = WorkerDied(f"worker {rank} (a Ray actor) died without "
                                             "reporting; the other workers were stopped", rank, "")
                if failure is not None:
                    break
                _take_news(server, outcome, t0)
                if sigterm.received:
                    raise _TerminatedByPolling
                if progress is not None:
                    progress(outcome)
                if stop_when is not None and stop_when(outcome):
                    break
            outcome.status = "finished"
        except KeyboardInterrupt:
            _stopped(outcome, "interrupted")
        except _TerminatedByPolling:
            _stopped(outcome, "terminated")
        except RayActorError:  # the server died under a poll
            failure = WorkerDied(_SERVER_DIED, -1, "")
        finally:
            outcome.refresh_shared = None
            if server is not None:
                _shutdown(server, refs, actors, outcome, t0)
                try:
                    _pull(server, shared)
                except (RayActorError, ray.exceptions.GetTimeoutError):
                    failure = failure or WorkerDied(_SERVER_DIED, -1, "")
                with contextlib.suppress(Exception):
                    ray.kill(server)
    if sigterm.received and outcome.status == "finished":
        _stopped(outcome, "terminated")
    if failure is not None:
        outcome.status, outcome.message = "failed", str(failure)
        failure.outcome = outcome
        raise failure
    return outcome


_SERVER_DIED = ("the parameter server (a Ray actor) died: the workers were stopped, and the run "
                "keeps the parameters it last copied from the server")


class _TerminatedByPolling(Exception):
    """The driver saw the SIGTERM it had recorded."""


def _take_news(server, outcome: Outcome, t0: float):
    import ray

    global_step, updates, news = ray.get(server.poll.remote())
    for episode in news["episodes"]:
        outcome.episodes.append(episode)
    for row in news["diagnostics"]:
        outcome.diagnostics.append(row)
    if news["staleness"]:
        outcome.add_staleness(np.bincount(news["staleness"]))
    outcome.ready.update(news["ready"])
    outcome.global_step, outcome.updates = global_step, updates
    outcome.wall_time = time.time() - t0


def _shutdown(server, refs: dict, actors: list, outcome: Outcome, t0: float):
    """Ask the workers to stop, wait for them to send their last news, kill the ones left."""
    import ray

    with contextlib.suppress(Exception):
        ray.get(server.stop.remote(), timeout=_GRACE_S)
        ray.wait(list(refs), num_returns=len(refs), timeout=_GRACE_S)
        _take_news(server, outcome, t0)
    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)


def _pull(server, shared: dict):
    """Copy the server's theta, optimizer state and worker 0's other networks into `shared`."""
    import ray

    model_state, optimizer_state, networks = ray.get(server.state.remote(), timeout=60)
    shared["model"].load_state_dict(model_state)
    shared["optimizer"].load_state_dict(optimizer_state)
    for name, state in networks.items():
        shared[name].load_state_dict(state)
