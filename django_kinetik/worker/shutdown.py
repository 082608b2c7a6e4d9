"""How a worker's attempts end without their code's say: timeouts, a graceful stop, an exit at once.

Shutdown order (SIGTERM/SIGINT, or ``Worker.stop()``): stop claiming; keep the
heartbeat going and the ends written while running jobs get
``shutdown_timeout`` to finish; mark the unfinished attempts over; write what
ended; mark the worker offline; put the unfinished jobs back in the queue
(last, so the process can end right after: their code still runs in it). A
second signal skips the wait: the running jobs are put back at once if the
database answers within :data:`FORCED_PUT_BACK` seconds, else their leases
bring them back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.db import connections

from .. import lifecycle, outcomes
from ..backends.base import DATABASE_ERRORS
from ..execution import Ending
from ..lifecycle import Ended
from .codes import ExitCode

if TYPE_CHECKING:
    from ..models import Job
    from .loop import Worker

logger = logging.getLogger("django_kinetik.worker")

#: after a second signal, how long the database gets to take the running jobs back
FORCED_PUT_BACK = 1.0


def time_out(worker: Worker, now: float) -> int:
    """Stop the attempts past their deadline; how many (the caller replaces a supervised child to kill them).

    A timed-out attempt is settled as ``timeout``; one whose job was cancelled
    while it ran (its grace is over) was recorded when the cancel was seen.
    With threads, each one's thread is abandoned and a fresh one takes the slot.
    """
    expired = worker._slots.expired(now)
    if not expired:
        return 0
    ends: list[Ended] = []
    for attempt in expired:
        attempt.context.close()  # its late logs and result are ignored
        if not worker.supervised:
            worker._executor.abandon(attempt)  # type: ignore[union-attr]  # a new thread takes the slot
        with worker._done_lock:
            worker.jobs_done += 1
        if worker._limited is not None:
            worker._limited.job_ended(attempt.job.task)
        if attempt.stopping_since is not None:
            logger.warning(
                "Job %s (%s) did not return %.1fs after it was cancelled; stopping it.",
                attempt.job.id,
                attempt.job.task,
                now - attempt.stopping_since,
            )
            continue
        settlement = outcomes.timed_out(attempt.job, attempt.options)  # type: ignore[arg-type]
        ends.append(Ending(attempt.job, settlement, attempt.task, attempt.options))
    lifecycle.settle(worker.backend, ends, patience=worker.lease)
    if not worker.supervised:
        logger.warning(
            "Worker %s: %d job(s) stopped; %d thread(s) still run their code (use --processes for a hard kill).",
            worker.name,
            len(expired),
            worker._executor.runaways if worker._executor else 0,
        )
    return len(expired)


def _stop_renewing(worker: Worker) -> None:
    """The heartbeat and its fence stop: what still runs here is about to be put back."""
    if worker._fence is not None:
        worker._fence.stop()
    if worker._heartbeat is not None:
        worker._heartbeat.stop()


def exit_now(worker: Worker, status: int, reason: str) -> None:
    """End a supervised child at once: write what ended, put other jobs back, then exit (it is replaced)."""
    logger.warning("Worker %s exiting: %s.", worker.name, reason)
    worker._settler.stop(timeout=5)
    _stop_renewing(worker)
    try:
        lifecycle.put_back_unfinished(worker.backend, worker.worker_id)
        worker.backend.retire_worker(worker.worker_id, worker._stats())
    except DATABASE_ERRORS:
        pass  # the leases bring the jobs back
    for handler in logging.getLogger("django_kinetik").handlers:
        handler.flush()
    os._exit(status)


def shut_down(worker: Worker) -> int:
    """The graceful stop, once the loop has stopped claiming; the exit status."""
    slots = worker._slots
    deadline = time.monotonic() + worker.shutdown_timeout
    if worker._busy:
        logger.info(
            "Worker %s waiting up to %gs for %d running job(s).", worker.name, worker.shutdown_timeout, len(slots)
        )
    while not worker._forced.is_set():
        slots.take_returned()
        left = deadline - time.monotonic()
        if not len(slots) or left <= 0:
            break
        worker._wake.wait(min(left, 0.5))
        worker._wake.clear()
    if worker._forced.is_set():
        _put_back_at_once(worker)
        return ExitCode.FORCED
    _stop_renewing(worker)
    # Threads still inside a job exit (closing their connections) once it
    # returns; its outcome will be discarded, since the job is put back.
    unfinished = slots.close_all()
    executor = worker._executor
    if executor is not None:
        executor.stop(timeout=0 if unfinished else 5)
    worker._settler.stop(timeout=worker.lease)  # write the ends that are still waiting
    worker.code_still_running = unfinished or (executor is not None and executor.runaways > 0)
    logger.info("Worker %s stopped after %d job(s).", worker.name, worker.jobs_done)
    for tries in range(5):
        try:
            worker.backend.retire_worker(worker.worker_id, worker._stats())
            if unfinished:
                requeued = lifecycle.put_back_unfinished(worker.backend, worker.worker_id)
                logger.warning(
                    "Worker %s put %d unfinished job(s) back in the queue: %s",
                    worker.name,
                    len(requeued),
                    [job.id for job in requeued],
                )
            break
        except DATABASE_ERRORS as error:
            logger.warning("Worker %s could not say goodbye to the database (%s); retrying.", worker.name, error)
            connections.close_all()
            time.sleep(0.5 * (tries + 1))
    return ExitCode.OK


def _put_back_at_once(worker: Worker) -> None:
    """The second signal: write what ended and put the running jobs back, if the database answers at once.

    In a thread of its own, waited for :data:`FORCED_PUT_BACK` seconds: a
    database that does not answer (a network cut) must not hold up a stop the
    user asked to be immediate. Its put-back is one transaction, so it either
    happens or leaves the jobs to their leases; nothing is half-written.
    """
    _stop_renewing(worker)
    worker._slots.close_all()  # what their code still returns is discarded: the jobs go back
    put_back: list[Job] = []

    def put_back_now() -> None:
        try:
            worker._settler.stop(timeout=FORCED_PUT_BACK / 2)  # the rest is for the put-back
            put_back.extend(lifecycle.put_back_unfinished(worker.backend, worker.worker_id))
            worker.backend.retire_worker(worker.worker_id, worker._stats())
        except DATABASE_ERRORS as error:
            logger.warning("Worker %s could not put its jobs back (%s).", worker.name, error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=put_back_now, name="kinetik-forced-stop", daemon=True)
    thread.start()
    thread.join(FORCED_PUT_BACK)
    worker.code_still_running = True  # the process must end now: job code may still run in it
    if thread.is_alive():
        logger.warning(
            "Worker %s stopping at once; the database did not answer within %gs, so leases will bring back "
            "its running jobs.",
            worker.name,
            FORCED_PUT_BACK,
        )
    else:
        logger.warning(
            "Worker %s stopping at once; put %d running job(s) back in the queue: %s",
            worker.name,
            len(put_back),
            [job.id for job in put_back],
        )
