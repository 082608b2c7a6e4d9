"""A ``django.tasks`` function as a kinetik task: its definition, its call, its signals.

A Task enqueued through :class:`~django_kinetik.tasks_backend.KinetikTaskBackend`
becomes a kinetik task named by the function's module path
(``myapp.tasks.send_report``). It is registered when the function is defined
(the backend validates every Task it is given), or, in a worker that never
imported its module, when a job of it is claimed. From there it is a task like
any other: ``KINETIK["TASKS"]["myapp.tasks.send_report"]`` tunes its retries
and timeout, and its jobs run through the one execution path (middleware,
retries, timeouts, leases, logs, kinetik's signals). Django's own
``task_started`` is sent here, as the function is called; ``task_enqueued``
and ``task_finished`` follow kinetik's ``job_created`` and end signals
(see ``bridge.py``).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal
from django.utils.module_loading import import_string

from ..exceptions import TaskNotImportable
from ..registry import Task as KinetikTask
from ..registry import registry
from ..values.options import TaskOptions, parse_tag
from . import logfilter, results
from .framework import NAME as FRAMEWORK
from .framework import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskContext,
    TaskResult,
    normalize_json,
    task_backends,
    task_started,
)

if TYPE_CHECKING:
    from ..context import JobContext

logger = logging.getLogger("django_kinetik.tasks_backend")

#: job id -> the TaskResult its running attempt started with, so task_finished after a
#: completed attempt needs no query (taken by bridge.py at the job's next transition)
started_results: dict[int, TaskResult] = {}
#: job id -> the exception its running attempt raised, so task_finished for the failure is
#: sent while it is being handled, as Django's log receiver expects (taken the same way)
attempt_errors: dict[int, BaseException] = {}


class DjangoTaskAction:
    """The kinetik action of a ``django.tasks`` function: call it with the job's args and kwargs."""

    def __init__(self, task: Task) -> None:
        self.task = task
        # What the registry compares to tell a re-definition from a clash.
        self.__module__ = task.func.__module__
        self.__qualname__ = task.func.__qualname__

    def __call__(self, job: JobContext) -> Any:
        result = results.load(job.model, task=results.django_task(job.model), current_worker=job.worker_name)
        started_results[job.id] = result
        send(task_started, job.model.task_backend, result)
        data = job.data
        args, kwargs = data.get("args", []), data.get("kwargs", {})
        try:
            if self.task.takes_context:
                value = self.task.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = self.task.call(*args, **kwargs)
        except BaseException as error:
            if not job.closed:  # an attempt already ended (timed out, cancelled) has had its transition
                attempt_errors[job.id] = error
            raise
        return normalize_json(value)

    def __repr__(self) -> str:
        return f"<django.tasks function {self.task.module_path}>"


def register(task: Task, defaults: TaskOptions, *, again: bool = False) -> KinetikTask:
    """The kinetik definition of ``task``, registered on first sight; ``defaults`` are its backend's OPTIONS.

    ``again``: replace the one registered (its backend's OPTIONS changed).
    """
    existing = registry.find(task.module_path)
    if existing is not None and isinstance(existing.action, DjangoTaskAction) and not again:
        return existing
    try:
        tag = parse_tag(task.queue_name)
    except (TypeError, ValueError) as error:
        raise InvalidTask(f"queue_name {task.queue_name!r} cannot be a kinetik tag: {error}") from None
    doc = (task.func.__doc__ or "").strip().split("\n")[0]
    options = dataclasses.replace(defaults, tag=tag, priority=task.priority)
    return registry.register(
        KinetikTask(name=task.module_path, action=DjangoTaskAction(task), options=options, desc=doc)
    )


def import_definition(name: str, alias: str) -> KinetikTask:
    """The definition of a job's ``django.tasks`` function that this process has not registered yet.

    Imports its module (defining it registers it, if its backend is a kinetik
    one here); raises :class:`TaskNotImportable` if it is not there.
    """
    try:
        task = import_string(name)
    except ImportError as error:
        raise TaskNotImportable(name, str(error)) from None
    if not isinstance(task, Task):
        raise TaskNotImportable(name, f"it is a {type(task).__name__}, not a Task of {FRAMEWORK}")
    definition = registry.find(name)
    if definition is not None:
        return definition
    return register(task, defaults_of(backend_for(alias)))


def defaults_of(backend: Any) -> TaskOptions:
    """The kinetik options a backend gives its tasks (a backend of another kind: none)."""
    return backend.task_defaults if getattr(backend, "kinetik_backend", False) else TaskOptions()


def tasks_changed() -> None:
    """``TASKS`` changed (``setting_changed``): new OPTIONS apply to the tasks already registered too.

    The backends are built afresh from the new settings here, as Django's own
    receiver will (it may run after this one), and the definitions of the
    django.tasks functions this process has met are replaced with ones made
    from their backend's new OPTIONS.
    """
    fresh = task_backends.configure_settings(None)
    built: dict[str, Any] = {}
    for definition in registry:
        if not isinstance(definition.action, DjangoTaskAction):
            continue
        task = definition.action.task
        alias = task.backend
        if alias not in built:
            params = fresh.get(alias)
            try:
                built[alias] = import_string(params["BACKEND"])(alias, params) if params else None
            except (ImportError, ImproperlyConfigured, KeyError, TypeError):
                built[alias] = None  # a backend that cannot be built: Django's error where it is used
        register(task, defaults_of(built[alias]), again=True)


def backend_for(alias: str) -> Any:
    """The configured backend ``alias`` of this process (None if the settings here lack it)."""
    try:
        return task_backends[alias]
    except ImproperlyConfigured:
        return None


def send(signal: Signal, alias: str, result: TaskResult) -> None:
    """Send one of Django's task signals as the backend would; a receiver's error is logged, never raised."""
    backend = backend_for(alias)
    sender: type = type(backend) if backend is not None else BaseTaskBackend
    with logfilter.kinetik_sending():
        responses = signal.send_robust(sender, task_result=result)
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "Task signal receiver %s raised %r; the job is not affected.",
                getattr(receiver, "__qualname__", repr(receiver)),
                response,
                exc_info=(type(response), response, response.__traceback__),
            )
