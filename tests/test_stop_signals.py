"""A stop signal stops a worker whatever its main thread was doing when it came.

Python runs the handler in the main thread between two bytecodes, possibly
while that thread holds the lock of an event the handler sets
(worker/stop_signals.py). The worst moments are made on purpose here: the
signal is raised while the main thread holds each such event's lock. Before
the fix the handler waited for its own thread forever, so each case runs in
a process of its own, with a deadline.
"""

import subprocess
import sys

import pytest

from tests.conftest import ROOT, worker_env

SCRIPT = """
import signal, django
django.setup()
from django_kinetik.worker import Worker
from django_kinetik.worker.supervisor import Supervisor

worker = Worker(["alpha"])
signal.signal(signal.SIGTERM, worker._on_signal)
for name in ("_wake", "_stopping", "_forced"):
    with getattr(worker, name)._cond:  # as inside its wait(), clear() or set()
        signal.raise_signal(signal.SIGTERM)
print("worker", worker._stopping.is_set(), worker._forced.is_set())

supervisor = Supervisor(1, ["true"])
signal.signal(signal.SIGTERM, supervisor._on_signal)
with supervisor._stopping._cond:
    signal.raise_signal(signal.SIGTERM)
print("supervisor", supervisor._stopping.is_set())
"""


def test_a_stop_signal_that_comes_while_the_main_thread_holds_an_events_lock_still_stops():
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the signal handler waited for a lock its own thread held: the worker would never stop")
    assert done.returncode == 0, done.stderr
    # The first signal stops it; the second (and third) force the stop.
    assert done.stdout.split("\n")[:2] == ["worker True True", "supervisor True"], done.stdout + done.stderr
