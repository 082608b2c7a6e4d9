"""``KinetikTaskBackend``: Django's Tasks framework with kinetik workers behind it.

    TASKS = {
        "default": {
            "BACKEND": "django_kinetik.tasks_backend.KinetikTaskBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"retries": 3, "timeout": "5m"},
        }
    }

Enqueuing a ``@task`` function creates a Job: ``queue_name`` is its tag,
``priority`` its priority, ``run_after`` its run time, the arguments its data
(``{"args": [...], "kwargs": {...}}``) and the function's module path its task.
``OPTIONS`` are kinetik task options (``timeout``, ``retries``, ``retry_delay``,
``backoff``, ...) for every task of this backend; ``KINETIK["TASKS"][path]``
overrides them per task. Results are read back from the job and its runs.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from .. import eager
from ..conf import get_settings
from ..jobs import create
from ..models import MAX_JOB_ID
from ..values.jsondata import MAX_DEPTH
from ..values.options import TaskOptions
from . import checks, results, running
from .framework import (
    TASK_REFRESH_ATTRS,
    BaseTaskBackend,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    normalize_json,
    task_enqueued,
)


class KinetikTaskBackend(BaseTaskBackend):
    #: how kinetik tells its own backends (and subclasses) in settings.TASKS without importing them
    kinetik_backend = True
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # Bad OPTIONS are reported by check() (kinetik.E014) and raised at enqueue, not here:
        # a Task is validated when it is defined, so raising would break importing its module.
        defaults, self.problems = checks.read_options(alias, self.options)
        #: the kinetik options every task of this backend starts from
        self.task_defaults: TaskOptions = defaults

    def validate_task(self, task: Task) -> None:
        """Django's checks, then the kinetik definition of the function is registered (once)."""
        super().validate_task(task)
        running.register(task, self.task_defaults)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        if self.problems:
            raise checks.as_error(self.problems[0])
        self.validate_task(task)
        try:
            data = {"args": normalize_json(args), "kwargs": normalize_json(kwargs)}
        except RecursionError:
            # Django's normalize_json recurses; kinetik's own check (create()) names the depth it allows.
            raise ValueError(
                f"the arguments of {task.module_path} are nested too deeply to store; "
                f"job data may nest at most {MAX_DEPTH} levels"
            ) from None
        # Eager mode runs the job here, after task_enqueued, not inside create().
        with eager.held():
            job = create(
                task.module_path,
                data,
                tag=task.queue_name,
                priority=task.priority,
                delay=task.run_after,
                task_backend=self.alias,
            )
        result = results.task_result(job, [], task=task)
        # Like kinetik's job_created: only once the job is committed (at once outside a transaction).
        transaction.on_commit(lambda: running.send(task_enqueued, self.alias, result), using=job._state.db)
        if eager.enabled():
            eager.run(job)
            fresh = results.load(job, task=task)
            for name in TASK_REFRESH_ATTRS:
                object.__setattr__(result, name, getattr(fresh, name))
        return result

    def get_result(self, result_id: str) -> TaskResult:
        try:
            pk = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        if not 1 <= pk <= MAX_JOB_ID:  # no row has it, and the database could not even look for it
            raise TaskResultDoesNotExist(result_id)
        result = results.read(get_settings().database, pk, self.alias)
        if result is None:
            raise TaskResultDoesNotExist(result_id)
        return result

    async def aget_result(self, result_id: str) -> TaskResult:
        return await sync_to_async(self.get_result, thread_sensitive=True)(result_id)

    def check(self, **kwargs: Any) -> list[Any]:
        """kinetik.E014 for bad OPTIONS; kinetik.W002 for unapplied migrations, when ``databases`` asks."""
        return [*self.problems, *checks.unapplied_migrations(kwargs.get("databases"))]
