"""Fixtures shared by the test modules."""
import signal

import pytest


@pytest.fixture
def sigint_raises_keyboard_interrupt():
    """Python's own SIGINT handler, as in a terminal or a kernel. A process started in the
    background of a non-interactive shell (as CI may run us) inherits SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
