"""Fixtures shared by the test modules."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from helpers import subprocess_env

JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
BUILDS = ("quick_book", "student_edition")  # session fixtures that build the whole book
# The first test to use one of them pays for the build (up to its subprocess's 900 s) inside
# its own time limit, on top of its own work (a grader run: up to 600 s). pytest.ini's 300 s
# would end it mid-build: a whole quick build took 293 s in CI before the 11th chapter.
BUILD_TIMEOUT_S = 900 + 600


def pytest_collection_modifyitems(items):
    for item in items:
        if set(BUILDS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT_S))


@pytest.fixture
def sigint_raises_keyboard_interrupt():
    """Python's own SIGINT handler, as in a terminal or a kernel. A process started in the
    background of a non-interactive shell (as CI may run us) inherits SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory):
    """The whole book built once in quick mode (ASYNCRL_QUICK=1), for the tests that read it."""
    out = tmp_path_factory.mktemp("book")
    env = {**subprocess_env(), "ASYNCRL_QUICK": "1"}
    proc = subprocess.run([str(JUPYTER_BOOK), "build", str(helpers.ROOT), "--path-output", str(out),
                           "--warningiserror", "--keep-going"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return out / "_build"


@pytest.fixture(scope="session")
def student_edition(tmp_path_factory):
    """`make student` run once in quick mode, for the tests that read the student edition."""
    out = tmp_path_factory.mktemp("student") / "edition"
    env = {**subprocess_env(), "ASYNCRL_QUICK": "1"}
    proc = subprocess.run(["make", "-C", str(helpers.ROOT), "student", f"STUDENT={out}"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return out
