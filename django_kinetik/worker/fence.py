"""The fence: no attempt of this worker runs past its lease, even when the database link hangs.

Another worker takes a job back once its lease has expired (lease recovery,
``duties.py``), so an attempt still running here after that would run twice.
The heartbeat renews the leases; when its beats stop getting through, this
thread, which never touches the database (a dropped link leaves every database
call blocked in its socket, without an error), acts on the time since the last
beat that got through:

- from half a lease (:func:`stop_claiming_after`), the loop takes no new job;
- at three quarters of a lease (:func:`end_attempts_after`), with attempts
  still running, the process ends itself: Python cannot stop a thread, and
  only ending the process stops their code for sure. A supervised child is
  replaced by its supervisor; a single worker process by whatever runs it
  (systemd, Kubernetes, a process manager). Their jobs are taken back by
  another worker once their leases expire: that is the other quarter of the
  lease, the margin, which also covers clock skew between hosts.

A worker with nothing running only stops claiming, and claims again once a
beat gets through. The times are measured from when the last successful beat
was *sent*, never later than the database stamped its lease.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .codes import ExitCode
from .threads import BackgroundThread

logger = logging.getLogger("django_kinetik.worker")

#: how often the fence looks at the clock at most (seconds)
LOOK_EVERY = 0.1


def stop_claiming_after(lease: float) -> float:
    """Seconds without a renewed lease after which a worker takes no new job."""
    return lease * 0.5


def end_attempts_after(lease: float) -> float:
    """Seconds without a renewed lease after which a worker's running attempts are ended."""
    return lease * 0.75


def end_process(silent: float, running: int) -> None:
    """The default breach: log why, then end this process at once."""
    logger.critical(
        "Leases not renewed for %.1fs (the database cannot be reached); ending this process so that its %d "
        "running job(s) cannot run past their leases. Another worker takes them back when the leases expire.",
        silent,
        running,
    )
    for handler in logging.getLogger("django_kinetik").handlers:
        handler.flush()
    os._exit(ExitCode.FENCED)


class Fence(BackgroundThread):
    """Watches ``silent_for()`` and calls ``breach(silent, running)`` before the leases can expire."""

    name = "kinetik-fence"

    def __init__(
        self,
        lease: float,
        silent_for: Callable[[], float],
        running: Callable[[], int],
        breach: Callable[[float, int], None] = end_process,
    ) -> None:
        super().__init__()
        self.lease = lease
        self.silent_for = silent_for
        self.running = running
        self.breach = breach
        self.claiming = True

    def look(self) -> None:
        """One look at the clock, and what it calls for."""
        silent = self.silent_for()
        claiming = silent < stop_claiming_after(self.lease)
        if claiming != self.claiming:
            if claiming:
                logger.warning("Leases are renewed again; the worker claims again.")
            else:
                logger.error("Leases not renewed for %.1fs; the worker stops claiming until they are.", silent)
            self.claiming = claiming
        if silent >= end_attempts_after(self.lease):
            running = self.running()
            if running:
                self.breach(silent, running)

    def run(self) -> None:
        # Ten looks a second cost nothing, and keep the margin's share of it small.
        while not self.stopping.wait(LOOK_EVERY):
            self.look()


__all__ = ["Fence", "end_attempts_after", "end_process", "stop_claiming_after"]
