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

job_created = Signal(use_caching=True)
job_started = Signal(use_caching=True)
job_progress = Signal(use_caching=True)
job_log = Signal(use_caching=True)
job_completed = Signal(use_caching=True)
job_failed = Signal(use_caching=True)
job_timeout = Signal(use_caching=True)
job_cancelled = Signal(use_caching=True)
job_retrying = Signal(use_caching=True)
queue_empty = Signal(use_caching=True)


# use_caching: a worker asks "does anyone listen?" for every job; the answer is
# kept per sender until a receiver connects or disconnects (as Django's model signals do).


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
