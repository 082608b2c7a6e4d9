"""The limited claim: jobs of tasks with concurrency or rate limits, one task at a time.

The plain claim (``database.py``) takes the next queued jobs of a tag in one
statement. A limited task is left out of it (the worker's ``Runnable`` does not
name the task) and its jobs are taken here, for each tag the worker serves:

1. A look, outside any lock, through the index ``kinetik_job_limited`` (it
   holds only jobs with a limit key): does the tag hold queued jobs of the
   task at all? Skipped right after a claim that met some; after a look that
   found none, a busy worker looks again only 0.1 s later (an idle one as soon
   as it wakes), so limits cost workers nothing while there is no limited work.
2. One short transaction that starts by writing the task's ``LimitState`` row
   (key ``""``). That write is the lock every worker's limited claim of the task
   waits on: a row lock on PostgreSQL and MySQL, the write lock on SQLite.
   Under it, the claim counts the task's running jobs per limit key, reads the
   rate windows of the keys it meets, walks the queued jobs in claim order
   taking what the limits allow (keys that are full are skipped, so one
   customer's backlog never holds up the next customer's jobs), claims those by
   id like the Redis path does (``status = 'queued'`` re-checked), and counts
   their starts in the rate windows.

Why this cannot pass a limit: claims of one task are serialised, and while one
holds the lock the running count can only fall (jobs end; only limited claims
start them), so what it read plus what it takes is at most the limit. A job that
is recovered, put back or cancelled stops counting as soon as it stops being
``active``; a run that timed out in a thread that cannot be killed does too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Max

from ..models import LIVE_STATUSES, Job, LimitState, Status
from ..values.limits import Limit, RateWindow
from .base import Runnable

if TYPE_CHECKING:
    from .orm import OrmBackend

logger = logging.getLogger("django_kinetik.worker")

#: queued jobs read per look under the lock, besides twice the free slots; more looks
#: follow while keys turn out full
PEEK = 10
#: looks per claim: each one skips every key found full by the ones before
LOOKS = 8
#: at most this many full keys are named in a look's NOT IN (the rest cost extra looks)
MAX_SKIPPED = 500
#: a task whose jobs were held back is looked at again after at most this (sooner when one
#: of its jobs ends in this worker, or a rate window opens): another worker's job may end any
#: time, and a job of a new key may arrive
HELD_BACK_RETRY = 0.25
#: a busy worker that found no queued job of a limited task in a tag looks again after this
#: (one that waits for work looks as soon as it wakes)
QUIET = 0.1


@dataclass
class LimitedClaim:
    """What one round of limited claims took, and when to look again."""

    jobs: list[Job] = field(default_factory=list)
    #: time.monotonic() at which a job held back by a limit may be startable (None: none held back)
    retry_at: float | None = None

    def hold_until(self, moment: float) -> None:
        self.retry_at = moment if self.retry_at is None else min(self.retry_at, moment)


class LimitedClaims:
    """One worker's claims of its limited tasks (``limits``: task name -> Limit)."""

    def __init__(self, backend: OrmBackend, limits: Mapping[str, Limit]) -> None:
        self.backend = backend
        self.alias = backend.alias
        self.limits = {task: limit for task, limit in limits.items() if limit}
        #: task -> time.monotonic() before which it is not looked at (its jobs were held back)
        self._not_before: dict[str, float] = {}
        #: task -> key -> epoch seconds until which its rate window is full (it can only fill further)
        self._rate_full: dict[str, dict[str, float]] = {}
        self._have_lock_rows = False
        #: (task, tag) -> time.monotonic() before which a busy worker does not look again (none were queued)
        self._empty_until: dict[tuple[str, str], float] = {}
        #: (task, tag) whose last claim met queued jobs: the next one skips the look before it
        self._queued_in: set[tuple[str, str]] = set()
        #: the highest job ids seen by the last two adopt() calls
        self._adopted_up_to: list[int] = []

    def tidy(self) -> int:
        """Adopt keyless jobs; delete per-key rate windows with no start for a whole period (they are empty)."""
        self.adopt()
        deleted = 0
        for task, limit in self.limits.items():
            if limit.rate is None:
                continue
            cutoff = datetime.fromtimestamp(time.time() - limit.rate.period, tz=UTC)
            deleted += (
                LimitState.objects.using(self.alias)
                .filter(task=task, changed_at__lt=cutoff)
                .exclude(key="")
                .delete()[0]
            )
        return deleted

    def hold(self, task: str, key: str, until: float) -> None:
        """A fleet-wide hold (kinetik.RateLimited): no job of ``task``'s ``key`` starts before ``until`` (epoch s).

        Kept with the full rate windows, which the claim already leaves out.
        """
        if task in self.limits:
            full = self._rate_full.setdefault(task, {})
            full[key] = max(full.get(key, 0.0), until)

    def job_ended(self, task: str) -> None:
        """A job of ``task`` ended here: its slot may be free, look again at once."""
        self._not_before.pop(task, None)

    def idle(self) -> None:
        """The worker has nothing to do and waits for work: when it wakes, it looks at once."""
        self._empty_until.clear()

    def claim(
        self, tags: Iterable[str], free: int, worker_id: int, lease: float, ending: Collection[str] = ()
    ) -> LimitedClaim:
        """Take up to ``free`` jobs of the limited tasks, tag by tag, as their limits allow.

        ``ending``: tasks with a job whose end this worker is writing; a
        concurrency-limited one waits for that (it wakes the worker) rather
        than count the job as still running.
        """
        outcome = LimitedClaim()
        if free <= 0 or not self.limits:
            return outcome
        self._ensure_lock_rows()
        now = time.monotonic()
        for task, limit in self.limits.items():
            if now < self._not_before.get(task, 0.0):
                outcome.hold_until(self._not_before[task])
                continue
            if task in ending and limit.concurrency is not None:
                continue
            for tag in tags:
                left = free - len(outcome.jobs)
                if left <= 0:
                    return outcome
                if self._worth_a_claim(task, tag, now, outcome):
                    self.backend.retrying_locks(
                        lambda: self._claim_task(task, limit, tag, left, worker_id, lease, outcome)  # noqa: B023
                    )
        return outcome

    def _worth_a_claim(self, task: str, tag: str, now: float, outcome: LimitedClaim) -> bool:
        """Whether ``tag`` may hold queued jobs of ``task`` that could start now.

        After a claim that met queued jobs, yes (its transaction looks). Else one
        look, and after a look that found none, no until QUIET has passed or the
        worker was idle. Jobs held back only by full rate windows make
        ``outcome`` wait until the first one opens.
        """
        if (task, tag) in self._queued_in:
            return True
        if now < self._empty_until.get((task, tag), 0.0):
            return False
        queued = self._queued_jobs(task, [tag])
        epoch = time.time()
        full = {key: until for key, until in self._rate_full.get(task, {}).items() if until > epoch}
        if _first(queued.exclude(limit_key__in=list(full)[:MAX_SKIPPED]) if full else queued):
            return True
        if full and _first(queued):
            outcome.hold_until(time.monotonic() + min(full.values()) - epoch)
        else:
            self._empty_until[(task, tag)] = now + QUIET
        return False

    # -- one task in one tag ------------------------------------------------

    def _claim_task(
        self, task: str, limit: Limit, tag: str, free: int, worker_id: int, lease: float, outcome: LimitedClaim
    ) -> None:
        with transaction.atomic(using=self.alias):
            states = LimitState.objects.using(self.alias)
            # The lock: every limited claim of this task waits here for the one before.
            if not states.filter(task=task, key="").update(changed_at=datetime.now(UTC)):
                self._have_lock_rows = False  # deleted under us; recreated next round
                return
            # Read after the lock is ours: a claim that waited for it must not count
            # the room of the moment it started waiting.
            epoch = time.time()
            room = _Room(task, limit, self._running_by_key(task), self._rate_full.setdefault(task, {}), epoch)
            picked: list[int] = []
            for _ in range(LOOKS):
                rows = self._queued(task, tag, room.full_keys(), PEEK + 2 * free)
                if limit.rate is not None:
                    room.read_windows(states, {key for _, key in rows})
                for job_id, key in rows:
                    if room.take(key):
                        picked.append(job_id)
                        if len(picked) == free:
                            break
                if len(picked) == free or len(rows) < PEEK + 2 * free:
                    break
            jobs = self.backend.claim_ids(worker_id, picked, Runnable((task,)), lease) if picked else []
            if limit.rate is not None and jobs:
                # Counted at a moment no earlier than the claim's started_at, so a
                # start never leaves the window before a period has passed.
                room.record_starts(states, [job.limit_key or "" for job in jobs], time.time())
        outcome.jobs += jobs
        if rows or picked:
            self._queued_in.add((task, tag))
        else:
            self._queued_in.discard((task, tag))
        if room.held_back or (len(picked) < free and room.full_keys()):
            wait = HELD_BACK_RETRY
            if room.rate_opens_at is not None:
                wait = min(wait, max(0.0, room.rate_opens_at - time.time()))
            self._not_before[task] = time.monotonic() + wait
            outcome.hold_until(self._not_before[task])

    def _jobs(self) -> Any:
        return Job.objects.using(self.alias)

    def _running_by_key(self, task: str) -> dict[str, int]:
        """Running jobs of ``task`` per limit key, through the index ``kinetik_job_limited_running``.

        That index holds only running jobs with a limit key, so the churn of
        other jobs (their dead index entries) never slows this count down; the
        leases index, which every running job passes through, took 10 ms here.
        """
        rows = (
            self._jobs()
            .filter(status=Status.ACTIVE, task=task, limit_key__isnull=False)
            .order_by()
            .values_list("limit_key")
            .annotate(running=Count("id"))
        )
        return dict(rows)

    def _queued_jobs(self, task: str, tags: list[str]) -> Any:
        """The task's queued jobs in ``tags``, in claim order: the order of the index ``kinetik_job_limited``.

        The order keeps the planner on that index (it holds keyed jobs only)
        even when statistics say most rows match, as after a burst of inserts.
        """
        return (
            self._jobs()
            .filter(status=Status.QUEUED, task=task, tag__in=tags, limit_key__isnull=False)
            .order_by("-priority", "run_at", "id")
        )

    def _queued(self, task: str, tag: str, skipped: Sequence[str], count: int) -> list[tuple[int, str]]:
        """The next queued jobs of ``task`` in ``tag`` whose key is not ``skipped``, in claim order."""
        queued = self._queued_jobs(task, [tag])
        if skipped:
            queued = queued.exclude(limit_key__in=list(skipped)[:MAX_SKIPPED])
        return list(queued.values_list("id", "limit_key")[:count])

    def adopt(self) -> int:
        """Give a limit key to live jobs of the limited tasks that have none; return how many.

        Such jobs were created before the limit was set, or by a process that
        does not have the task. The first call looks at all of them, later ones
        at jobs with ids above the highest id seen two calls before (a job
        commits within a minute of taking its id, or waits for the next worker start).
        """
        jobs = self._jobs()
        highest = jobs.aggregate(highest=Max("id"))["highest"] or 0
        keyless = jobs.filter(task__in=list(self.limits), status__in=LIVE_STATUSES, limit_key__isnull=True)
        if self._adopted_up_to:
            keyless = keyless.filter(id__gt=self._adopted_up_to[0])
        self._adopted_up_to = [*self._adopted_up_to, highest][-2:]
        adopted = 0
        for task, limit in self.limits.items():
            if limit.by is None:
                adopted += keyless.filter(task=task).update(limit_key="")
                continue
            for job_id, data in keyless.filter(task=task).values_list("id", "data").iterator():
                try:
                    key = limit.key_for(task, data)
                except (TypeError, ValueError):
                    key = ""  # data the key cannot be read from: the task-wide bucket
                adopted += keyless.filter(id=job_id).update(limit_key=key)
        if adopted:
            logger.info("%d job(s) of limited tasks had no limit key (created without the limit); given one.", adopted)
        return adopted

    def _ensure_lock_rows(self) -> None:
        """Every limited task has its LimitState row with key "" (the lock); made once per worker."""
        if self._have_lock_rows:
            return
        if not self._adopted_up_to:
            self.adopt()
        states = LimitState.objects.using(self.alias)
        existing = set(states.filter(task__in=list(self.limits), key="").values_list("task", flat=True))
        for task in self.limits.keys() - existing:
            try:
                with transaction.atomic(using=self.alias):
                    states.create(task=task, key="")
            except IntegrityError:
                pass  # another worker made it first
        self._have_lock_rows = True


def _first(queryset: Any) -> bool:
    """Whether ``queryset`` has a row (read in its order, so the planner keeps to its index)."""
    return bool(queryset.values_list("id", flat=True)[:1])


class _Room:
    """Under the lock: how many more jobs of each key the limits let start now."""

    def __init__(
        self, task: str, limit: Limit, running: dict[str, int], rate_full: dict[str, float], epoch: float
    ) -> None:
        self.task = task
        self.limit = limit
        self.running = running
        self.epoch = epoch
        self.windows: dict[str, RateWindow] = {}
        self._known: set[str] = set()
        #: the worker's memory of keys whose rate window is full, and until when
        self.rate_full = rate_full
        for key, until in list(rate_full.items()):
            if until <= epoch:
                del rate_full[key]
        self.left: dict[str, int] = {}
        #: some job was skipped because a limit was reached
        self.held_back = False
        #: epoch seconds at which the earliest rate-limited key has room again
        self.rate_opens_at: float | None = None

    def full_keys(self) -> list[str]:
        keys = [key for key, left in self.left.items() if left <= 0]
        if self.limit.concurrency is not None:
            keys += [key for key, n in self.running.items() if n >= self.limit.concurrency and key not in self.left]
        keys += [key for key in self.rate_full if key not in self.left]
        return keys

    def read_windows(self, states, keys: set[str]) -> None:  # type: ignore[no-untyped-def]
        new = keys - self._known
        if not new:
            return
        self._known |= new
        for key, starts in states.filter(task=self.task, key__in=list(new)).values_list("key", "starts"):
            self.windows[key] = RateWindow(self.limit.rate, starts)  # type: ignore[arg-type]

    def take(self, key: str) -> bool:
        """Count one more start of ``key`` if the limits allow it."""
        if key not in self.left:
            self.left[key] = self._allowed(key)
        if self.left[key] <= 0:
            self.held_back = True
            return False
        self.left[key] -= 1
        return True

    def _allowed(self, key: str) -> int:
        allowed = 2**31
        if self.limit.concurrency is not None:
            allowed = self.limit.concurrency - self.running.get(key, 0)
        if self.limit.rate is not None:
            if key in self.rate_full:
                self._rate_held(self.rate_full[key])
                return 0
            window = self.windows.setdefault(key, RateWindow(self.limit.rate))
            room = window.room(self.epoch)
            if room <= 0:
                opens = window.opens_at(self.epoch)
                self.rate_full[key] = opens
                self._rate_held(opens)
            allowed = min(allowed, room)
        return allowed

    def _rate_held(self, opens: float) -> None:
        self.rate_opens_at = opens if self.rate_opens_at is None else min(self.rate_opens_at, opens)

    def record_starts(self, states, keys: list[str], epoch: float) -> None:  # type: ignore[no-untyped-def]
        """Count the jobs just claimed in their keys' rate windows at ``epoch`` (rows made as needed)."""
        counts: dict[str, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        now = datetime.fromtimestamp(epoch, tz=UTC)
        for key, count in counts.items():
            window = self.windows.setdefault(key, RateWindow(self.limit.rate))  # type: ignore[arg-type]
            window.add(epoch, count)
            if window.room(epoch) <= 0:
                self.rate_full[key] = window.opens_at(epoch)
            stored = window.stored()
            if not states.filter(task=self.task, key=key).update(starts=stored, changed_at=now):
                states.create(task=self.task, key=key, starts=stored, changed_at=now)
