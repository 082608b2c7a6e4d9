"""What a worker's SIGTERM/SIGINT handler may touch: events it can set whatever the main thread is doing.

Python runs a signal handler in the main thread, between two of its
bytecodes, so it can interrupt that thread while it holds a lock. An
``threading.Event`` guards its flag with a plain ``Lock``, which the main
thread holds for a moment inside every ``wait()``, ``clear()`` and ``set()``
of it: a handler that sets that event then waits for its own thread, forever,
and the worker never stops (``tests/test_stop_signals.py`` makes that moment;
the fault runs once saw a worker still there 30 s after its SIGTERM).

:class:`SignalSafeEvent` guards its flag with a re-entrant lock, so the
handler's ``set()`` goes through. When it interrupts a ``clear()`` just
before the flag is lowered, that wake-up is lost; the handler also sets the
stop flag, which the loop reads after every wait (each has a timeout), so
the stop comes at the next look at the latest.
"""

from __future__ import annotations

import threading


class SignalSafeEvent(threading.Event):
    """A ``threading.Event`` that a signal handler running in the main thread may set."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition(threading.RLock())
