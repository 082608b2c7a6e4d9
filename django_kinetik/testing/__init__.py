"""Helpers for your own test suite.

Three ways to test code that creates jobs:

- **Eager mode**: ``KINETIK = {..., "EAGER": True}`` in test settings (or the
  ``kinetik_eager`` pytest fixture) runs each job in the creating process
  before ``create()`` returns, through the worker's own execution path:
  middleware, signals, retries, logs.
- **Capture**: :func:`capture_jobs` (or the ``kinetik_jobs`` fixture) collects
  the jobs created inside it without running them, even in eager mode; assert
  on them, then :meth:`CapturedJobs.run` them when the test wants to::

      with capture_jobs() as jobs:
          signup(email="ada@example.com")
      assert jobs.tasks() == ["send email"]
      jobs.run()
      assert jobs[0].status == "completed"

- **Factories**: :mod:`django_kinetik.testing.factories` (factory-boy) builds
  Job, JobLog, JobRun and Worker rows in any state.

The pytest fixtures are registered by the ``django_kinetik.pytest_plugin`` module,
which pytest loads on its own once the package is installed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import overload

from .. import eager
from ..conf import get_settings
from ..creation import created_hooks
from ..models import Job, Status
from ..registry import Task

__all__ = ["CapturedJobs", "capture_jobs", "run_job"]


def run_job(job: Job) -> Job:
    """Run one queued or delayed job now, here, as a worker would (retries run at once); return it updated."""
    return eager.run(job)


class CapturedJobs(Sequence[Job]):
    """The jobs created inside :func:`capture_jobs`, in creation order."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._lock = threading.Lock()

    def _add(self, jobs: list[Job]) -> None:
        with self._lock:
            self._jobs += jobs

    @overload
    def __getitem__(self, index: int) -> Job: ...
    @overload
    def __getitem__(self, index: slice) -> list[Job]: ...
    def __getitem__(self, index: int | slice) -> Job | list[Job]:
        return self._jobs[index]

    def __len__(self) -> int:
        return len(self._jobs)

    def __repr__(self) -> str:
        return f"<CapturedJobs {[f'{job.task} #{job.pk}' for job in self._jobs]}>"

    def tasks(self) -> list[str]:
        """The task name of each captured job, in creation order."""
        return [job.task for job in self._jobs]

    def of(self, task: Task | str) -> list[Job]:
        """The captured jobs of one task (a Task, a task name, or a django.tasks function's module path)."""
        name = task if isinstance(task, str) else getattr(task, "name", None)
        if not isinstance(task, (str, Task)):
            name = getattr(task, "module_path", name)  # a django.tasks Task
        return [job for job in self._jobs if job.task == name]

    def run(self, task: Task | str | None = None) -> list[Job]:
        """Run every captured job that has not run yet (of ``task`` only, if given), in creation order.

        Jobs those jobs create are captured and run too. Returns the jobs run,
        updated with how they ended.
        """
        done: set[int] = set()
        ran: list[Job] = []
        while True:
            candidates = self._jobs if task is None else self.of(task)
            pending = [job for job in candidates if job.pk not in done]
            if not pending:
                return ran
            for job in pending:
                done.add(job.pk)
                job.refresh_from_db()
                if job.status in (Status.QUEUED, Status.DELAYED):
                    ran.append(eager.run(job))

    def pending(self) -> list[Job]:
        """Captured jobs still waiting to run (read from the database)."""
        ids = [job.pk for job in self._jobs]
        waiting = set(Job.objects.using(get_settings().database).live().filter(pk__in=ids).values_list("pk", flat=True))
        return [job for job in self._jobs if job.pk in waiting]

    def clear(self) -> None:
        """Forget the jobs captured so far (they stay in the database)."""
        with self._lock:
            self._jobs.clear()


@contextlib.contextmanager
def capture_jobs() -> Iterator[CapturedJobs]:
    """Collect the jobs created inside the block; none of them runs unless you call ``run()``."""
    captured = CapturedJobs()
    created_hooks.append(captured._add)
    try:
        with eager.held():
            yield captured
    finally:
        created_hooks.remove(captured._add)
