"""``--processes N``: a supervisor that keeps N worker processes running.

Kue's cluster recipe, built in. Each child is an ordinary worker (its own
claim loop, threads and heartbeat) started as a fresh interpreter, never a
fork of a process that already holds threads and connections. The supervisor
only watches: a child that exits is replaced, whatever the reason (it ran
``--max-jobs``, passed ``--max-memory``, ended itself to kill a timed-out job,
or crashed); the jobs a crashed child held come back through their leases.

Children run in their own session, so a Ctrl-C in the terminal reaches only
the supervisor, which passes one SIGTERM on; a second signal is passed on as
well, and everything exits at once. A child whose supervisor disappears stops
on its own.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from .codes import DELIBERATE, ExitCode
from .stop_signals import SignalSafeEvent

logger = logging.getLogger("django_kinetik.worker")


@dataclass
class _Child:
    slot: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts ``processes`` copies of ``child_command`` and keeps them running."""

    def __init__(self, processes: int, child_command: Sequence[str], *, burst: bool = False) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.processes = processes
        self.child_command = list(child_command)
        self.burst = burst
        self.restarts = 0
        self._children: dict[int, _Child] = {}
        self._stopping = SignalSafeEvent()  # its signal handler sets it (worker/stop_signals.py)
        self._signals = 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._stopping.set()

    def _spawn(self, slot: int) -> None:
        # The supervisor's import path, so the child finds the project from any directory.
        path = os.pathsep.join(filter(None, [sys.path[0], os.environ.get("PYTHONPATH", "")]))
        env = dict(os.environ, KINETIK_SUPERVISOR_PID=str(os.getpid()), PYTHONPATH=path)
        process = subprocess.Popen(self.child_command, env=env, start_new_session=True)
        self._children[slot] = _Child(slot, process)
        logger.info("Supervisor started worker process %d (pid %d).", slot, process.pid)

    def _forward(self, signum: int) -> None:
        for child in self._children.values():
            if child.process.poll() is None:
                try:
                    child.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self) -> int:
        logger.info("Supervisor %d starting %d worker process(es).", os.getpid(), self.processes)
        for slot in range(self.processes):
            self._spawn(slot)
        forwarded = 0
        while True:
            if self._signals > forwarded:
                forwarded = self._signals
                logger.info(
                    "Supervisor passing the stop on to its workers (%s).", "graceful" if forwarded == 1 else "at once"
                )
                self._forward(signal.SIGTERM)
            for slot, child in list(self._children.items()):
                code = child.process.poll()
                if code is None:
                    continue
                del self._children[slot]
                if self._stopping.is_set() or (code == 0 and self.burst):
                    continue
                if code == 0:
                    continue  # stopped on its own after a signal sent to it directly
                self._replace(slot, child, code)
            if not self._children:
                return 1 if self._signals > 1 else 0
            time.sleep(0.1)

    def _replace(self, slot: int, child: _Child, code: int) -> None:
        deliberate = code in DELIBERATE
        if code < 0:
            reason = f"was killed by signal {-code}"
        else:
            reason = ExitCode(code).reason if deliberate else f"exited with status {code}"
        lived = time.monotonic() - child.started
        if not deliberate:
            logger.warning(
                "Worker process %d (pid %d) %s after %.1fs; its jobs come back through their leases. Starting another.",
                slot,
                child.process.pid,
                reason,
                lived,
            )
        else:
            logger.info("Worker process %d (pid %d) %s; starting another.", slot, child.process.pid, reason)
        if lived < 1.0 and not deliberate:
            # A child that dies at once (bad settings, import error) must not spin.
            self._stopping.wait(min(5.0, 0.5 * (self.restarts + 1)))
            if self._stopping.is_set():
                return
        self.restarts += 1
        self._spawn(slot)


def child_command(arguments: Sequence[str]) -> list[str]:
    """The command line that starts one supervised worker with ``arguments``.

    Through the same script the supervisor was started with (usually
    manage.py, which may prepare the environment), else ``python -m django``.
    """
    script = sys.argv[0] if sys.argv else ""
    if script.endswith(".py") and not script.endswith("__main__.py") and os.path.exists(script):
        command = [sys.executable, script]
    else:
        command = [sys.executable, "-m", "django"]
    command += ["kinetik_worker", *arguments, "--supervised"]
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    if settings_module:
        command += ["--settings", settings_module]
    return command


def supervisor_gone() -> bool:
    """In a supervised child: whether the supervisor that started it has died."""
    expected = os.environ.get("KINETIK_SUPERVISOR_PID")
    return bool(expected) and os.getppid() != int(expected)  # type: ignore[arg-type]
