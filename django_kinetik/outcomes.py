"""How an attempt's end becomes the job's next state.

One place decides, for every way an attempt can end (returned, raised, ran
out of time, lost with its worker), whether the job is finished, retried
later, or failed for good, following the task's retry and ghost policies.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from .backends.base import Settlement
from .exceptions import JobLost, JobTimeout, RateLimited, Snooze
from .models import NOT_IMPORTABLE, Job, Outcome, Status
from .registry import Task
from .values.backoff import retries_on, retry_delay
from .values.durations import format_seconds, run_at_for
from .values.options import RUN_OPTION_NAMES, TaskOptions
from .values.text import storable

LOST_CODE = "lost"
TIMEOUT_CODE = "timeout"
INTERRUPTED_CODE = "interrupted"
SNOOZE_LIMIT_CODE = "snooze_limit"


def run_options(task: Task | None, job: Job) -> TaskOptions:
    """The options one job runs with: task defaults < settings < create() options."""
    base = task.effective_options() if task is not None else TaskOptions()
    if not job.options:
        return base
    overrides = {name: value for name, value in job.options.items() if name in RUN_OPTION_NAMES}
    return base.merged(overrides, where=f"job {job.pk} options")


def exception_path(error: BaseException) -> str:
    """The dotted path of ``error``'s class, or of its nearest base class that imports back.

    Recorded with each failed attempt, so whoever reads the run later
    (``django.tasks``' ``TaskError.exception_class``, the admin) can import it:
    a class defined in ``__main__`` or inside a function cannot be, so its
    nearest importable base stands in for it.
    """
    for cls in type(error).__mro__:
        path = f"{cls.__module__}.{cls.__qualname__}"
        if cls.__module__ == "builtins":
            return path
        try:
            if import_string(path) is cls:
                return path
        except ImportError:
            continue
    return "builtins.Exception"


def _path_of(cls: type[BaseException]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def completed(result: Any) -> Settlement:
    return Settlement(status=Status.COMPLETED, outcome=Outcome.COMPLETED, result=result, finished_at=timezone.now())


def failed(job: Job, options: TaskOptions, error: BaseException) -> Settlement:
    """The code raised ``error``: retry if the policy allows, else fail."""
    code = getattr(error, "code", None)
    return _retry_or_end(
        job,
        options,
        error,
        end_status=Status.FAILED,
        outcome=Outcome.FAILED,
        # The code's own text, which may hold anything: escaped, so the failure is always written.
        message=storable(str(error) or type(error).__name__),
        code="" if code is None else storable(str(code))[:100],
        exception=exception_path(error),
        details=storable("".join(traceback.format_exception(error))),
    )


def not_importable(message: str, exception: str) -> Settlement:
    """No worker has the job's code (one started after the job was created cannot import it): failed, no retry.

    Retrying would meet the same missing code; ``kinetik.retry()`` it once the code is deployed.
    """
    return Settlement(
        status=Status.FAILED,
        outcome=Outcome.FAILED,
        finished_at=timezone.now(),
        error=storable(message),
        error_code=NOT_IMPORTABLE,
        exception=exception,
    )


def timed_out(job: Job, options: TaskOptions) -> Settlement:
    """The run passed its timeout: retry if the policy allows, else ``timeout``."""
    limit = format_seconds(options.timeout)
    error = JobTimeout(f"timed out after {limit}")
    return _retry_or_end(
        job,
        options,
        error,
        end_status=Status.TIMEOUT,
        outcome=Outcome.TIMEOUT,
        message=str(error),
        code=TIMEOUT_CODE,
        exception=_path_of(JobTimeout),
        details="",
    )


def snoozed(job: Job, options: TaskOptions, snooze: Snooze) -> Settlement:
    """The code asked to run later: delayed (or queued) again without using an attempt, up to ``max_snoozes``."""
    now = timezone.now()
    if job.snoozes >= options.max_snoozes:
        return Settlement(
            status=Status.FAILED,
            outcome=Outcome.FAILED,
            finished_at=now,
            error=f"snoozed {job.snoozes} times, the most its task allows (max_snoozes={options.max_snoozes}); "
            "raise the limit or stop snoozing",
            error_code=SNOOZE_LIMIT_CODE,
            exception=_path_of(Snooze),
        )
    try:
        run_at = run_at_for(snooze.delay, now)
    except ValueError as error:  # a datetime too far ahead: the code's mistake, so the job fails with it
        return failed(job, options, error)
    return _put_back(Outcome.SNOOZED, now, run_at, error=f"snoozed until {run_at.isoformat()}", snoozed=True)


def rate_limited(error: RateLimited) -> Settlement:
    """A downstream said "later": the job waits for the hold, which the settle writes, without using an attempt."""
    now = timezone.now()
    until = max(error.until, now)
    return _put_back(
        Outcome.RATE_LIMITED,
        now,
        until,
        error=storable(str(error)),
        error_code="rate_limited",
        exception=_path_of(RateLimited),
        hold_until=until,
    )


def interrupted(error: BaseException) -> Settlement:
    """The database went away under the attempt (see ``outage.py``): put back, the attempt not used."""
    now = timezone.now()
    return _put_back(
        Outcome.INTERRUPTED,
        now,
        now,
        error=storable(
            f"the database went away while the job ran ({str(error).strip() or type(error).__name__}); "
            "put back without using an attempt"
        ),
        error_code=INTERRUPTED_CODE,
        exception=exception_path(error),
        traceback=storable("".join(traceback.format_exception(error))),
    )


def _put_back(outcome: Outcome, now: datetime, run_at: datetime, **fields: Any) -> Settlement:
    """An attempt that does not use one of the job's attempts: the job runs again at ``run_at``."""
    status = Status.DELAYED if run_at > now else Status.QUEUED
    return Settlement(status=status, outcome=outcome, finished_at=now, run_at=run_at, counted=False, **fields)


def lost(job: Job, options: TaskOptions, worker_name: str) -> Settlement:
    """The worker running ``job`` stopped renewing its lease.

    The run becomes a ghost and the job is queued again, without counting
    against its retries, until ``ghost_retries`` is spent; then it fails "lost".
    """
    now = timezone.now()
    message = (
        f"lost: worker {worker_name or '?'} stopped renewing its lease (killed, crashed or cut off from the database)"
    )
    if job.ghosts < options.ghost_retries:
        return Settlement(
            status=Status.QUEUED,
            outcome=Outcome.LOST,
            finished_at=now,
            run_at=now,
            error=message,
            error_code=LOST_CODE,
            exception=_path_of(JobLost),
            lost=True,
        )
    return Settlement(
        status=Status.FAILED,
        outcome=Outcome.LOST,
        finished_at=now,
        error=f"{message}; gave up after {job.ghosts} ghost retries",
        error_code=LOST_CODE,
        exception=_path_of(JobLost),
        lost=True,
    )


def _retry_or_end(
    job: Job,
    options: TaskOptions,
    error: BaseException,
    *,
    end_status: Status,
    outcome: Outcome,
    message: str,
    code: str,
    exception: str,
    details: str,
) -> Settlement:
    now = timezone.now()
    fields: dict[str, Any] = {
        "outcome": outcome,
        "finished_at": now,
        "error": message,
        "error_code": code,
        "exception": exception,
        "traceback": details,
    }
    if job.attempts < options.max_attempts and retries_on(options, error):
        delay = retry_delay(options, job.attempts)
        run_at: datetime = now + timedelta(seconds=delay)
        return Settlement(status=Status.DELAYED if delay > 0 else Status.QUEUED, run_at=run_at, **fields)
    return Settlement(status=end_status, **fields)
