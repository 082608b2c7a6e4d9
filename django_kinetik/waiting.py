"""``job.wait()``: block until a job finishes (Kickq's hot jobs).

This polls the job's row with a gently growing pause, capped at ``poll``
times eight; a cheap primary-key read, so even a busy view waiting on a job
costs the database little.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .durations import parse_duration
from .exceptions import JobCancelled, JobFailed, WaitTimeout

if TYPE_CHECKING:
    from .models import Job


def wait_for(job: Job, timeout: Any, poll: float) -> Any:
    from .models import Status

    limit = None if timeout is None else parse_duration(timeout, what="timeout")
    deadline = None if limit is None else time.monotonic() + limit
    pause = poll
    while True:
        job.refresh_from_db(fields=["status", "result", "error", "error_code", "finished_at"])
        if job.status == Status.COMPLETED:
            return job.result
        if job.status in (Status.FAILED, Status.TIMEOUT):
            raise JobFailed(job)
        if job.status == Status.CANCELLED:
            raise JobCancelled(job)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(job, limit or 0.0, job.status)
            pause = min(pause, left)
        time.sleep(pause)
        pause = min(pause * 1.5, poll * 8)
