"""Where a result came from: the commit and whether the tree was dirty, package versions, the
command, the machine, the date and the wall time. Studies, long runs and benchmarks record it."""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("asyncrl_lab", "torch", "numpy", "gymnasium", "ale-py", "ray")


def _git(*args) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance(command: str | None = None, *, wall_time: float | None = None,
               device: str = "cpu") -> dict:
    """This process's provenance: pass the command that reproduces the result (default: this
    process's own command line) and, once known, the wall time it took."""
    commit = _git("rev-parse", "HEAD")
    # results/ holds outputs, and the book's pages and the tests are no input of any result: a
    # study that rewrites its earlier runs, or runs while a chapter is edited, is not dirty
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results",
                  ":!book", ":!tests")
    return {
        "commit": commit,
        "dirty": None if status is None else status != "",
        "versions": {"python": platform.python_version(),
                     **{p: _version(p) for p in PACKAGES}},
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "device": device,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_time": wall_time,
    }


def describe(record: dict) -> str:
    """One line for under a figure, as plain text (a glued value shows markup as it is): the
    commit, the date, the machine, the wall time, the command, and a `note` where the record
    has one (set by hand where a run's conditions need saying)."""
    commit = (record.get("commit") or "no commit")[:10] + (" (dirty)" if record.get("dirty") else "")
    wall = f", {record['wall_time'] / 60:.1f} min" if record.get("wall_time") else ""
    note = f" ({record['note']})" if record.get("note") else ""
    return (f"commit {commit}, {record.get('date', '?')[:10]}, {record.get('cores')} cores "
            f"({record.get('cpu')}){wall}: {record.get('command')}{note}")


def describe_run(run_dir) -> str:
    """Every training command of a run directory (the segments of its provenance.json, which the
    command line appends to), each as `describe` gives it, joined by '; '."""
    segments = json.loads((Path(run_dir) / "provenance.json").read_text())["segments"]
    return "; ".join(describe(segment) for segment in segments)
