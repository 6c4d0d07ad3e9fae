"""Grading a class: `python -m asyncrl_lab grade SUBMISSION.ipynb ...` runs each submission in a
fresh kernel and reports what the checks of `asyncrl_lab.book.checks` found in it.

Each submission is contained:

* it runs in a temporary working directory holding a copy of the notebook (the kernel's cwd,
  HOME and TMPDIR), removed afterwards;
* a wall-clock limit covers the whole notebook (kernel start included), and the kernel's address
  space is limited (RLIMIT_AS, set before it starts and inherited by every process it starts), so
  that an allocation past the limit fails with MemoryError or kills only the kernel;
* when it ends, however it ends, every process it started is killed: the kernel's descendants,
  its session (orphans keep it) and any process carrying the sandbox's environment marker (one
  that left the session keeps it);
* as root, the kernel runs as an unprivileged user (`nobody` unless told otherwise) that owns
  only the temporary directory, through setpriv with no_new_privs (no setuid program can give
  it root back): the project and everything else owned by root is read-only to it, and it
  cannot signal the grader. Where that user cannot reach this Python (an interpreter under
  /root, as pyenv installs it), it also gets CAP_DAC_READ_SEARCH: it may then read and list
  every file, still write none but its own. Not as root, the kernel runs as the grader's own
  user and can change whatever that user can (the limits and the clean-up still hold): grade as
  root, in a container or a throwaway account.

The grader reads each check's record (checks.CHECK_MIME) from the executed notebook, and adds
what went wrong around the checks: a time-out, a kernel that died, a cell that raised outside a
check, a check the notebook calls that never ran. POSIX; grading as root takes Linux (setpriv).
"""
from __future__ import annotations

import asyncio
import csv
import functools
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import nbformat
import psutil
import zmq.asyncio
from jupyter_client import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .checks import CHECK_CALL, CHECK_MIME, CHECKS, STATUSES

SUBMISSION = "(submission)"  # the check column of what went wrong outside any check
MARKER = "ASYNCRL_GRADE_SANDBOX"  # in the environment of every process a submission starts
TIMEOUT_S, MEMORY_MB = 600.0, 4096  # each submission's limits unless told otherwise
OUTPUT_LIMIT = 2_000_000  # characters of output kept per submission; a print loop stops there
# nbclient and jupyter_client log a dying kernel as an error; the grader reports it in its table
_QUIET = logging.getLogger(__name__ + ".kernels")
_QUIET.setLevel(logging.CRITICAL)


@dataclass
class Row:
    check: str
    status: str  # "pass", "fail" or "error"
    message: str


@dataclass
class Graded:
    path: Path
    rows: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.status == "pass" for row in self.rows)


class Identity(NamedTuple):
    """Whom a submission runs as, grading as root: the owner of its sandbox, and the command
    that starts its kernel as that user."""

    uid: int
    gid: int
    prefix: tuple


# Lowers its own address-space limit, then runs the rest of its command line: the kernel
# inherits the limit. (Setting it from outside, with prlimit(2), takes CAP_SYS_RESOURCE, which
# root may lack in a container.)
_LIMIT_MEMORY = ("import os, resource, sys; n = int(sys.argv[1]); "
                 "resource.setrlimit(resource.RLIMIT_AS, (n, n)); "
                 "os.execvp(sys.argv[2], sys.argv[2:])")


class _KernelManager(AsyncKernelManager):
    """Starts the kernel through `prefix` (the memory limit, the sandbox's user), with a
    connection file that user can read."""

    prefix = ()
    identity = None  # an Identity, or None: the grader's own user

    def format_kernel_cmd(self, extra_arguments=None):
        return list(self.prefix) + super().format_kernel_cmd(extra_arguments)

    def write_connection_file(self, **kwargs):
        super().write_connection_file(**kwargs)
        if self.identity is not None:
            os.chown(self.connection_file, self.identity.uid, self.identity.gid)


class _Client(NotebookClient):
    """Keeps at most OUTPUT_LIMIT characters of output, so a submission that prints without end
    cannot fill the grader's memory; the checks' records and the errors are always kept."""

    def __init__(self, nb, **kwargs):
        super().__init__(nb, **kwargs)
        self.output_size = 0

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] != "error" and CHECK_MIME not in msg["content"].get("data", {}):
            self.output_size += len(json.dumps(msg["content"]))
            if self.output_size > OUTPUT_LIMIT:
                return None
        return super().output(outs, msg, display_id, cell_index)


# what a kernel needs, and which interpreter answers: run as another user, a Python whose own
# files it cannot read may fall back on another installation's standard library
_PROBE = "import sys, ipykernel, asyncrl_lab; print(sys.version, sys.prefix)"


def _runs_this_python(prefix: list) -> bool:
    try:
        probe = subprocess.run([*prefix, sys.executable, "-c", _PROBE], cwd="/", timeout=300,
                               capture_output=True, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == f"{sys.version} {sys.prefix}"


@functools.lru_cache(maxsize=None)
def sandbox_identity(user: str):
    """Whom submissions run as: None when not grading as root (ourselves); as root, `user`
    through setpriv, with CAP_DAC_READ_SEARCH only if it cannot run this Python without it."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no user {user!r} to run the submissions as") from None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ValueError("grading as root runs each submission as an unprivileged user through "
                         "setpriv (util-linux), which is not installed")
    prefix = [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
              "--no-new-privs"]
    for extra in ([], ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]):
        if _runs_this_python(prefix + extra + ["--"]):
            return Identity(entry.pw_uid, entry.pw_gid, tuple(prefix + extra + ["--"]))
    raise ValueError(f"user {user!r} cannot run {sys.executable} with ipykernel and asyncrl_lab,"
                     " even allowed to read every file")


class Sandbox:
    """A submission's temporary directory and the processes it starts; leaving the `with`
    kills them all and removes the directory."""

    def __init__(self, notebook: Path, identity):
        self.identity = identity
        self.marker = secrets.token_hex(8)
        self.kernel_pid = None
        self.dir = Path(tempfile.mkdtemp(prefix="asyncrl-grade-"))
        self.notebook = self.dir / notebook.name
        shutil.copyfile(notebook, self.notebook)
        # the kernel's own stdout and stderr: a file without a name, so that the submission
        # cannot swap it for a link to a file it may not read, which the grader would then print
        self.log = tempfile.TemporaryFile()
        if identity is not None:
            for path in (self.dir, self.notebook):
                os.chown(path, identity.uid, identity.gid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        kill_processes(self.kernel_pid, self.marker)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def popen_options(self) -> dict:
        """How the kernel is launched: in the sandbox, marked, its output to the log."""
        env = {**os.environ, "HOME": str(self.dir), "TMPDIR": str(self.dir), MARKER: self.marker}
        return dict(cwd=str(self.dir), env=env, stdout=self.log, stderr=self.log)

    def log_tail(self, lines: int = 8) -> str:
        self.log.seek(max(0, os.fstat(self.log.fileno()).st_size - 4096))
        text = self.log.read().decode(errors="replace").strip().splitlines()[-lines:]
        return ("\n  the kernel's last output:\n    " + "\n    ".join(text)) if text else ""


def sandbox_processes(kernel_pid, marker: str) -> list:
    """The live processes a submission started (see the module's docstring)."""
    found = {}
    if kernel_pid is not None:
        try:
            kernel = psutil.Process(kernel_pid)
            found = {p.pid: p for p in [kernel, *kernel.children(recursive=True)]}
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter():
        try:
            if (kernel_pid is not None and os.getsid(proc.pid) == kernel_pid) or \
                    proc.environ().get(MARKER) == marker:
                found[proc.pid] = proc
        except (psutil.Error, OSError):  # gone, a zombie, or not ours to read
            pass
    alive = []
    for proc in found.values():
        try:
            if proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def kill_processes(kernel_pid, marker: str, rounds: int = 5):
    """SIGKILL everything the submission started, again while it keeps forking."""
    for _ in range(rounds):
        procs = sandbox_processes(kernel_pid, marker)
        if not procs:
            return
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=5)  # reaps the kernel, the grader's child
    left = sandbox_processes(kernel_pid, marker)
    if left:
        print(f"warning: processes of a submission still alive: {[p.pid for p in left]}",
              file=sys.stderr)


def _signal_name(returncode) -> str:
    if returncode is None:
        return "the kernel died"
    if returncode < 0:
        return f"the kernel was killed by {signal.Signals(-returncode).name}"
    return f"the kernel exited with status {returncode}"


async def _execute(nb, sandbox: Sandbox, timeout: float, memory_mb: int, state: dict):
    """Start the sandboxed kernel and run every code cell in order, errors allowed;
    `state["cell"]` follows the cell running.

    The time limit kills the sandbox's processes rather than cancelling this coroutine: nbclient
    then finds the kernel dead and unwinds its own tasks (a cancelled cell would be reported as a
    dead kernel anyway, and leave nbclient's polling tasks behind)."""
    def time_up():
        state["timed_out"] = True
        kill_processes(sandbox.kernel_pid, sandbox.marker)

    watchdog = asyncio.get_running_loop().call_later(timeout, time_up)
    context = zmq.asyncio.Context()
    km = _KernelManager(context=context, connection_file=str(sandbox.dir / ".kernel.json"),
                        log=_QUIET)
    km.identity = sandbox.identity
    km.prefix = [sys.executable, "-c", _LIMIT_MEMORY, str(memory_mb * 2**20),
                 *(sandbox.identity.prefix if sandbox.identity is not None else ())]
    client = None
    try:
        # the kernel's log: its errors only (its start-up warnings would bury them in the report)
        await km.start_kernel(extra_arguments=["--HistoryManager.hist_file=:memory:",
                                               "--IPKernelApp.log_level=ERROR"],
                              **sandbox.popen_options())
        sandbox.kernel_pid = km.provisioner.pid
        client = _Client(nb, km=km, allow_errors=True, timeout=None, startup_timeout=timeout,
                         resources={"metadata": {"path": str(sandbox.dir)}}, log=_QUIET)
        await client.async_start_new_kernel_client()
        client.reset_execution_trackers()
        for index, cell in enumerate(nb.cells):
            state["cell"] = index
            await client.async_execute_cell(cell, index,
                                            execution_count=client.code_cells_executed + 1)
    finally:
        watchdog.cancel()
        if km.has_kernel:
            state["returncode"] = km.provisioner.process.poll()  # before the kill: how it ended
        kill_processes(sandbox.kernel_pid, sandbox.marker)
        if client is not None and client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        context.destroy(linger=0)


def _describe(nb, index) -> str:
    if index is None:
        return "the kernel's start-up"
    first = nb.cells[index].source.strip().splitlines()[0] if nb.cells[index].source.strip() else ""
    return f"cell {index + 1} ({first[:60]!r})"


def read_results(nb, memory_mb: int) -> tuple[list, list]:
    """The checks' rows, in the order the notebook calls them, and the rows of cells that
    raised outside a check. A check the notebook calls but whose record is missing is an error."""
    records, raised = {}, []
    expected = [m.group(1) for cell in nb.cells if cell.cell_type == "code"
                for m in CHECK_CALL.finditer(cell.source)]
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            record = out.get("data", {}).get(CHECK_MIME)
            if isinstance(record, dict) and record.get("status") in STATUSES:
                records[str(record.get("check"))] = Row(str(record.get("check")),
                                                        record["status"],
                                                        str(record.get("message", "")))
            elif out.get("output_type") == "error" and out.get("ename") != "CheckFailed":
                error = ": ".join(filter(None, (out.get("ename"), out.get("evalue"))))
                if out.get("ename") == "MemoryError":
                    error += f" (the memory limit is {memory_mb} MB)"
                raised.append(Row(SUBMISSION, "error", f"{_describe(nb, index)} raised {error}"))
    names = list(dict.fromkeys(expected + list(records)))
    rows = [records.get(name) or Row(name, "error", "never ran: the notebook calls "
                                                    f"check_{name} but it produced no result")
            for name in names]
    return rows, raised


def grade_notebook(path, timeout: float = TIMEOUT_S, memory_mb: int = MEMORY_MB,
                   user: str = "nobody") -> Graded:
    """Run one submission, contained (see the module's docstring), and return its rows."""
    path = Path(path)
    graded, start = Graded(path), time.monotonic()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several types for a file that is no notebook
        graded.rows = [Row(SUBMISSION, "error", f"not a notebook: {type(err).__name__}: {err}")]
        return graded
    trouble, state = [], {"cell": None, "returncode": None, "timed_out": False}
    with Sandbox(path, sandbox_identity(user)) as sandbox:
        try:
            run_sync(_with_backstop)(nb, sandbox, timeout, memory_mb, state)
        except Exception as err:  # a kernel that did not start, died or was stopped, and whatever
            # else went wrong: one submission's trouble must not end the grading of the class
            where = _describe(nb, state["cell"])
            if state["timed_out"] or isinstance(err, asyncio.TimeoutError):
                trouble.append(f"timed out: stopped after {timeout:g} s, during {where}")
            elif isinstance(err, DeadKernelError):
                trouble.append(f"{_signal_name(state['returncode'])} during {where} "
                               f"(out of memory? the limit is {memory_mb} MB){sandbox.log_tail()}")
            else:
                trouble.append(f"the kernel failed during {where}: {type(err).__name__}: {err}"
                               f"{sandbox.log_tail()}")
    rows, raised = read_results(nb, memory_mb)
    graded.rows = rows + raised + [Row(SUBMISSION, "error", t) for t in trouble]
    if not rows and not trouble:
        graded.rows.append(Row(SUBMISSION, "error", "no check ran: the notebook calls none of "
                                                    f"{', '.join('check_' + c for c in CHECKS)}"))
    graded.seconds = time.monotonic() - start
    return graded


async def _with_backstop(nb, sandbox, timeout, memory_mb, state):
    """_execute, cancelled should it ever outlive its own time limit by a minute."""
    await asyncio.wait_for(_execute(nb, sandbox, timeout, memory_mb, state), timeout + 60)


def print_table(graded: Graded, out=None):
    out = out or sys.stdout
    passed = sum(row.status == "pass" for row in graded.rows)
    print(f"{graded.path}: {passed} of {len(graded.rows)} passed ({graded.seconds:.1f} s)",
          file=out)
    width = max(len(row.check) for row in graded.rows)
    for row in graded.rows:
        first, *more = row.message.splitlines() or [""]
        print(f"  {row.status:<5}  {row.check:<{width}}  {first}", file=out)
        for line in more:
            print(f"  {'':<5}  {'':<{width}}  {line}", file=out)
    print(file=out)


def submissions(paths) -> list:
    """The notebooks to grade: each file given, and each folder's *.ipynb files."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            notebooks = sorted(path.glob("*.ipynb"))
            if not notebooks:
                raise ValueError(f"no .ipynb file in the folder {str(path)!r}")
            found += notebooks
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"no such submission: {str(path)!r}")
    return found


def grade(paths, timeout: float = TIMEOUT_S, memory_mb: int = MEMORY_MB, csv_path=None,
          user: str = "nobody", out=None) -> list:
    """Grade each submission in turn, printing its table as it finishes and, with `csv_path`,
    writing one CSV row per (submission, check). Returns the Graded submissions."""
    if not (timeout > 0 and timeout != float("inf")):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if memory_mb < 256:
        raise ValueError(f"memory must be at least 256 MB (a kernel needs that), got {memory_mb}")
    notebooks = submissions(paths)
    identity = sandbox_identity(user)  # a user who cannot run kernels: an error before any runs
    if identity is None:
        print(f"note: not grading as root, so each submission runs as "
              f"{pwd.getpwuid(os.getuid())[0]} and can change any file that user can (time and "
              "memory limits still apply)", file=sys.stderr)
    elif "--ambient-caps=+dac_read_search" in identity.prefix:
        print(f"note: {user} cannot reach {sys.executable} on its own, so submissions may read "
              "every file (and change none but their own)", file=sys.stderr)
    results = []
    # without a CSV file, the rows go to devnull: one code path
    with open(csv_path, "w", newline="") if csv_path else open(os.devnull, "w") as sheet:
        writer = csv.writer(sheet)
        writer.writerow(["submission", "check", "status", "message"])
        for path in notebooks:
            graded = grade_notebook(path, timeout, memory_mb, user)
            print_table(graded, out)
            writer.writerows([str(path), row.check, row.status, row.message]
                             for row in graded.rows)
            sheet.flush()
            results.append(graded)
    return results
