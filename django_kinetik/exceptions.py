"""Exceptions raised by django_kinetik.

Every exception is rooted at :class:`KinetikError`, so ``except KinetikError``
catches anything the queue raises on purpose. Configuration mistakes raise
Django's ``ImproperlyConfigured`` instead, like the rest of Django.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .values.durations import parse_duration

if TYPE_CHECKING:
    from .models import Job


class KinetikError(Exception):
    """Root of every error django_kinetik raises on purpose."""


class Snooze(KinetikError):
    """Raised by a task's action: "not now, try me again in ``delay``".

    The job goes back as delayed for ``delay`` (milliseconds as an int,
    ``"30s"``-style text, a ``timedelta``, or a datetime to run at), its
    attempt recorded as ``snoozed``; a snooze does not use one of the job's
    attempts. After the task's ``max_snoozes`` (default 100) a snooze fails
    the job instead, so a job cannot snooze for ever.
    """

    def __init__(self, delay: Any) -> None:
        if not isinstance(delay, datetime):
            parse_duration(delay, what="Snooze delay")  # a bad delay is the caller's error, raised here
        self.delay = delay
        super().__init__(f"snoozed for {delay}")


class RateLimited(KinetikError):
    """Raised by a task's action when a downstream says "too many, come back later" (an HTTP 429).

    ``retry_after`` is the ``Retry-After`` header's text as it came (digits
    are seconds there, as HTTP says; or an HTTP date), a ``timedelta``, a
    datetime, ``"30s"``-style text, or a number of milliseconds like every
    duration in Python. Every worker then holds the job's limit key (the
    whole task when it has no ``limit_by``) until then: no job of it starts
    before, jobs of other keys go on. This job is put back to run then, without
    using an attempt.
    """

    def __init__(self, retry_after: Any, reason: str = "") -> None:
        self.until = _moment_after(retry_after)
        self.reason = reason
        super().__init__(f"rate limited until {self.until.isoformat()}" + (f": {reason}" if reason else ""))


def _moment_after(retry_after: Any) -> datetime:
    now = timezone.now()
    if isinstance(retry_after, datetime):
        return retry_after if timezone.is_aware(retry_after) else timezone.make_aware(retry_after)
    if isinstance(retry_after, timedelta):
        return now + retry_after
    if isinstance(retry_after, str):
        text = retry_after.strip()
        if text.isascii() and text.isdigit():
            # The header's text: Retry-After counts seconds (a number given in Python is milliseconds).
            return now + timedelta(seconds=parse_duration(f"{text}s", what="RateLimited retry_after"))
        try:
            return parsedate_to_datetime(text)  # an HTTP date: "Wed, 21 Oct 2026 07:28:00 GMT"
        except (TypeError, ValueError, IndexError):
            pass
    return now + timedelta(seconds=parse_duration(retry_after, what="RateLimited retry_after"))


class TaskDefinitionError(KinetikError, ValueError):
    """A task definition is invalid (bad name, duplicate name, bad option)."""


class UnknownTask(KinetikError, LookupError, ValueError):
    """No task with this name is registered in this process.

    A ``LookupError``, and a ``ValueError`` too: given to ``create()`` it is a
    refused input like any other, caught by ``except ValueError``.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"No task named {name!r} is registered. Define it with "
            f"@kinetik.task({name!r}) in an installed app's tasks.py, or pass "
            f"tag=... to create the job for a worker that has the task."
        )


class TaskNotImportable(UnknownTask):
    """A ``django.tasks`` job's function cannot be imported in this process (its code is not here)."""

    def __init__(self, name: str, reason: str, *, message: str = "") -> None:
        self.reason = reason
        KinetikError.__init__(self, message or f"The django.tasks function {name!r} cannot be imported here: {reason}")
        self.name = name


class JobNotFound(KinetikError, LookupError):
    """No job with this id exists."""


#: past participles the message needs ("retried", not "retryed")
_PAST = {"retry": "retried"}


class InvalidTransition(KinetikError):
    """The job is in a state where the requested change makes no sense."""

    def __init__(self, job: Job, action: str, allowed: tuple[str, ...]) -> None:
        self.job = job
        done = _PAST.get(action, f"{action}ed")
        super().__init__(
            f"Cannot {action} job {job.pk}: it is {job.status}; only {' or '.join(allowed)} jobs can be {done}."
            if action != "cancel"
            else f"Cannot cancel job {job.pk}: it is already {job.status}."
        )


class JobTimeout(KinetikError):
    """A run took longer than its timeout (recorded on the job; used by ``retry_on``)."""


class JobLost(KinetikError):
    """A run's worker vanished (its lease ran out); recorded as the attempt's exception."""


class JobError(KinetikError):
    """Base of the outcomes :meth:`Job.wait` raises for a job that did not complete."""

    def __init__(self, job: Job, message: str) -> None:
        self.job = job
        super().__init__(message)


class JobFailed(JobError):
    """The job failed (or timed out) and has no retries left."""

    def __init__(self, job: Job) -> None:
        code = f" [{job.error_code}]" if job.error_code else ""
        super().__init__(job, f"Job {job.pk} ({job.task}) {job.status}{code}: {job.error}")
        self.error = job.error
        self.code = job.error_code


class JobCancelled(JobError):
    """The job was cancelled before it completed."""

    def __init__(self, job: Job) -> None:
        super().__init__(job, f"Job {job.pk} ({job.task}) was cancelled.")


class WaitTimeout(KinetikError, TimeoutError):
    """``job.wait(timeout=...)`` gave up before the job finished."""

    def __init__(self, job: Job, timeout: float, status: Any) -> None:
        self.job = job
        super().__init__(f"Job {job.pk} ({job.task}) did not finish within {timeout:g}s; it is {status}.")
