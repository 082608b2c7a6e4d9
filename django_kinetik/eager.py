"""Eager mode: ``KINETIK["EAGER"] = True`` runs each job in the process that creates it.

For test suites and scripts (Kue's test mode, Celery's ``task_always_eager``).
``create()`` saves the job as usual, then claims and runs it here before
returning, through the same :mod:`.execution` path a worker uses:
middleware, kinetik's signals, job logs, the outcome rules. A failing attempt
with retries left runs again at once (its retry delay is skipped: a test should
not sleep), and a delayed job runs now. A run that overstays its timeout is
recorded as timed out once it returns (nothing can stop code in the caller's
own thread). The returned job shows how it ended.

:func:`held` suspends eager running for jobs created inside it: the test
helpers' capture uses it, and so does the ``django.tasks`` backend, which sends
``task_enqueued`` before it runs the job.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator

from . import execution, lifecycle, outcomes
from .backends import get_backend
from .backends.base import Runnable
from .conf import get_settings
from .joblogs import immediate
from .models import Job, Status
from .values.options import TaskOptions

_state = threading.local()


def worker_name() -> str:
    """What an eager job sees as its worker's name (no Worker row runs it)."""
    return f"eager:{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Within this block (on this thread), creating a job never runs it, even in eager mode."""
    depth = getattr(_state, "held", 0)
    _state.held = depth + 1
    try:
        yield
    finally:
        _state.held = depth


def enabled() -> bool:
    """Whether a job created now should run at once: eager mode on, and not held."""
    return get_settings().eager and not getattr(_state, "held", 0)


def run(job: Job) -> Job:
    """Run ``job`` here until it completes or fails for good; update ``job`` in place and return it."""
    settings = get_settings()
    alias = job._state.db or settings.database
    backend = get_backend(alias)
    logs = immediate(alias)
    runnable = Runnable((job.task,), django_tasks=bool(job.task_backend))
    while True:
        # A delayed job, or a retry waiting out its delay, runs now. Not announced as queued
        # (a worker would be invited to take it): this very call claims it next.
        backend.run_now([job.pk], statuses=(Status.DELAYED,))
        claimed = backend.claim_ids(None, [job.pk], runnable, settings.lease)  # type: ignore[arg-type]
        if not claimed:
            break  # cancelled, or taken by a worker after all
        current = claimed[0]
        try:
            attempt = execution.prepare(current, alias=alias, logs=logs, worker_name=worker_name())
        except Exception as error:
            lifecycle.settle(backend, [execution.Ending(current, outcomes.failed(current, TaskOptions(), error))])
            break
        settlement = execution.perform(attempt)
        if settlement is not None and attempt.deadline is not None and time.monotonic() > attempt.deadline:
            attempt.settlement = outcomes.timed_out(current, attempt.options)  # type: ignore[arg-type]
        if attempt.settlement is not None:
            lifecycle.settle(backend, [attempt])
        if current.status not in (Status.QUEUED, Status.DELAYED):
            break
    job.refresh_from_db(using=alias)
    return job
