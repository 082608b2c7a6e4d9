"""How a worker process ends: its exit status, one meaning each (the supervisor reads them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    #: stopped as asked (a signal, --burst with nothing left, the end of a test)
    OK = 0
    #: a second stop signal cut the graceful shutdown short; the leases bring the jobs back
    FORCED = 1
    #: a supervised child ended itself to kill a timed-out job's code
    REPLACE = 3
    #: a supervised child could not renew its leases and ended itself
    FENCED = 4
    #: a supervised child reached --max-jobs or --max-memory and asks to be replaced
    RECYCLE = 5

    @property
    def reason(self) -> str:
        """What the supervisor logs when a child exits with this status."""
        return _REASONS.get(self, f"exited with status {int(self)}")


_REASONS = {
    ExitCode.RECYCLE: "recycled (--max-jobs or --max-memory reached)",
    ExitCode.REPLACE: "ended itself to kill a timed-out job",
    ExitCode.FENCED: "could not renew its leases",
}
#: the statuses a supervised child exits with on purpose (anything else is a crash)
DELIBERATE = frozenset(_REASONS)
