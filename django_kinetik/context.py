"""The ``job`` argument a task's action receives."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .backends import get_backend
from .conf import get_settings
from .feed import publishing
from .joblogs import LogWriter, immediate
from .models import Job, JobLog
from .signals import emit, job_log, job_progress
from .values.jsondata import ensure_json
from .values.text import storable

if TYPE_CHECKING:
    from .registry import Task

logger = logging.getLogger("django_kinetik.jobs")


class JobContext:
    """The running job, as its action sees it.

    ``id``, ``data``, ``attempt`` (1 on the first run), ``task`` (the name),
    ``tag``, ``priority``, ``worker_name`` (the worker running it; "" outside
    one); :meth:`log` and :meth:`progress` report back while the job runs.
    ``model`` is the :class:`~django_kinetik.models.Job` row as it was claimed,
    for the rare action that needs more.
    """

    def __init__(
        self,
        job: Job,
        definition: Task | None,
        alias: str,
        logs: LogWriter | None = None,
        *,
        worker_name: str = "",
    ) -> None:
        self.model = job
        self.definition = definition
        self.id: int = job.id
        self.data: dict[str, Any] = job.data
        self.attempt: int = job.attempts
        self.task: str = job.task
        self.tag: str = job.tag
        self.priority: int = job.priority
        self.created_at: datetime = job.created_at
        self.worker_name = worker_name
        #: the database alias the job lives in
        self.alias = alias
        self._alias = alias
        self._logs = logs
        self._closed = False
        self._warned = False

    def close(self) -> None:
        """Called when the attempt is over: later log and progress calls are ignored."""
        self._closed = True

    @property
    def closed(self) -> bool:
        """True once the attempt is over (settled, timed out, cancelled or given up): time to return.

        Long-running code should look at it between steps (``while not
        job.closed: ...``): a cancel or a timeout sets it within about a second.
        """
        return self._closed

    def _ignored(self, what: str) -> bool:
        if self._closed and not self._warned:
            # Once per attempt: code that ignores ``closed`` may call this in a loop.
            self._warned = True
            logger.warning(
                "Job %s wrote %s after its attempt ended; this and later writes of the attempt are ignored.",
                self.id,
                what,
            )
        return self._closed

    @property
    def parents(self) -> list[Job]:
        """The jobs this one runs after (``create(after=[...])``), in that order, as they are now.

        ``[parent.result for parent in job.parents]`` reads what they returned.
        """
        return list(Job.objects.using(self._alias).filter(child_links__child_id=self.id).order_by("child_links__id"))

    def log(self, message: str, data: dict[str, Any] | None = None) -> None:
        """Add a line (and optional JSON data) to the job's log."""
        # A log line reports; it is escaped rather than refused, so no text can break the log's batch.
        message = storable(message if isinstance(message, str) else str(message))
        if data is not None:
            data = ensure_json(data, what="log data", max_bytes=get_settings().max_data_bytes)
        if self._ignored("a log line"):
            return
        line = JobLog(job_id=self.id, attempt=self.attempt, created_at=timezone.now(), message=message, data=data)
        # In a worker, lines are written in batches (see joblogs.py).
        (immediate(self._alias) if self._logs is None else self._logs).add(line, self)
        emit(job_log, Job, job=self.model, task=self.definition, message=message, data=data)

    def progress(self, current: float, total: float, data: dict[str, Any] | None = None) -> None:
        """Report progress: ``current`` out of ``total`` (and optional JSON data)."""
        for name, value in (("current", current), ("total", total)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"progress {name} must be a number, not {type(value).__name__}")
            if not _finite_count(value):
                raise ValueError(f"progress {name} must be a finite number up to 1e15, not {value!r}")
        if data is not None:
            data = ensure_json(data, what="progress data", max_bytes=get_settings().max_data_bytes)
        if self._ignored("progress"):
            return
        get_backend(self._alias).record_progress(self.id, self.attempt, current, total, data)
        self.model.progress_current, self.model.progress_total = current, total
        self.model.progress_data = data
        # After the log lines written before it, which the worker announces once they are in.
        in_turn = None if self._logs is None else partial(self._logs.in_turn, self.id)
        publishing.progress(self, self._alias, current, total, data, in_turn=in_turn)
        emit(job_progress, Job, job=self.model, task=self.definition, current=current, total=total, data=data)

    def __repr__(self) -> str:
        return f"<JobContext {self.task!r} #{self.id} attempt {self.attempt}>"


def _finite_count(value: float) -> bool:
    """Whether a progress figure can be stored (MariaDB refuses NaN; no real count passes 1e15)."""
    try:
        return math.isfinite(value) and abs(value) <= 1e15
    except OverflowError:  # an int too large for a float
        return False
