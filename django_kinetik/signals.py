"""Signals sent on every job event.

Each job signal is sent with ``sender=Job`` and the keyword arguments ``job``
(the :class:`~django_kinetik.models.Job` row) and ``task`` (the
:class:`~django_kinetik.registry.Task` definition, or ``None`` when this process
does not have it). Receivers run in the process where the event happened: in
the worker for ``job_started`` ... ``job_retrying``. A receiver that raises is
logged and never changes a job's outcome.

Extra keyword arguments: ``job_progress`` gets ``current``, ``total`` and
``data``; ``job_log`` gets ``message`` and ``data``; ``job_failed``,
``job_timeout`` and ``job_retrying`` get ``error``; ``job_retrying`` also gets
``run_at``; ``queue_empty`` is sent by a worker (``sender`` is the worker) when
every tag it serves has run dry, with ``tags``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_kinetik.signals")

job_created = Signal()
job_started = Signal()
job_progress = Signal()
job_log = Signal()
job_completed = Signal()
job_failed = Signal()
job_timeout = Signal()
job_cancelled = Signal()
job_retrying = Signal()
queue_empty = Signal()


def emit(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; log, never raise, a receiver's error."""
    if not signal.has_listeners(sender):
        return
    for receiver, response in signal.send_robust(sender, **kwargs):
        if isinstance(response, Exception):
            name = getattr(receiver, "__qualname__", repr(receiver))
            logger.error(
                "Signal receiver %s raised %r; the job is not affected.",
                name,
                response,
                exc_info=(type(response), response, response.__traceback__),
            )
