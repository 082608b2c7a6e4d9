"""Task definitions, the registry that holds them, and the two ways to define one.

``@kinetik.task(...)`` and Kinetik's chainable ``kinetik.define(name)...action(fn)``
both end in :meth:`Registry.register`, so they build exactly the same
:class:`Task`. Names are checked when the task is defined: a ``:`` (reserved
for namespacing) or a name already taken by different code is refused there,
not discovered later in a worker.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, overload

from . import services
from .conf import get_settings
from .exceptions import TaskDefinitionError, UnknownTask
from .values.options import TaskOptions, parse_options
from .values.schedules import Timing
from .values.text import check_task_name

if TYPE_CHECKING:
    from .models import Job
    from .worker.context import JobContext

Action = Callable[["JobContext"], Any]
#: finds the definition of a job no task of this process is registered for (None: not mine)
Resolver = Callable[["Job"], "Task | None"]


@dataclass(frozen=True)
class Task:
    """A named unit of work: the action and the defaults its jobs start from."""

    name: str
    action: Action
    options: TaskOptions
    desc: str = ""
    #: [the settings object, the options merged with them]: every job reads them, so they are kept
    _effective: list[Any] = field(default_factory=list, compare=False, repr=False)
    _effective_async: list[bool] = field(default_factory=list, compare=False, repr=False)

    @property
    def tag(self) -> str:
        return self.options.tag

    @property
    def is_async(self) -> bool:
        """Whether the action is a coroutine function (run to its end with ``async_to_sync``)."""
        cached = self._effective_async
        if not cached:
            cached.append(inspect.iscoroutinefunction(self.action))
        return bool(cached[0])

    def effective_options(self) -> TaskOptions:
        """Defaults overlaid with ``KINETIK["TASKS"][name]`` from settings."""
        settings = get_settings()
        cached = self._effective
        if cached and cached[0] is settings:
            return cached[1]  # type: ignore[no-any-return]
        options = self.options.merged(settings.tasks.get(self.name), where=f'KINETIK["TASKS"][{self.name!r}]')
        self._effective[:] = [settings, options]
        return options

    def create(self, data: Mapping[str, Any] | None = None, **options: Any) -> Job:
        """Create one job of this task; see :func:`django_kinetik.create`."""
        return services.bound().create(self, data, **options)

    def create_on_commit(self, data: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Create one job of this task when the transaction commits; see :func:`django_kinetik.create_on_commit`."""
        services.bound().create_on_commit(self, data, **options)

    def create_many(self, items: Iterable[Mapping[str, Any] | None], **options: Any) -> list[Job]:
        """Create many jobs of this task in one insert; see :func:`django_kinetik.create_many`."""
        return services.bound().create_many(self, items, **options)

    def __call__(self, job: JobContext) -> Any:
        return self.action(job)

    def __repr__(self) -> str:
        return f"<Task {self.name!r} tag={self.tag!r}>"


def _code_of(action: Action) -> tuple[str, str]:
    return getattr(action, "__module__", ""), getattr(action, "__qualname__", repr(action))


class Registry:
    """Every task defined in this process, by name, in definition order."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._resolvers: list[Resolver] = []

    def add_resolver(self, resolver: Resolver) -> None:
        """Let ``resolver`` find the definitions of jobs no registered task runs.

        The django.tasks backend adds one when the app is ready: its jobs name
        a function by module path, imported when a worker first meets one.
        """
        if resolver not in self._resolvers:
            self._resolvers.append(resolver)

    def register(self, task: Task) -> Task:
        with self._lock:
            existing = self._tasks.get(task.name)
            # Re-importing the same module (autoreload, a test importing a tasks
            # module under a second name) defines the same code again: not a clash.
            if existing is not None and _code_of(existing.action) != _code_of(task.action):
                module, qualname = _code_of(existing.action)
                raise TaskDefinitionError(
                    f"A task named {task.name!r} is already defined by {module}.{qualname}; "
                    f"task names must be unique, so give this one another name."
                )
            self._tasks[task.name] = task
        return task

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tasks.pop(name, None)

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise UnknownTask(name) from None

    def for_job(self, job: Job) -> Task:
        """The definition that runs ``job``: a registered task, or one a resolver finds.

        A job enqueued through the django.tasks backend names its function by
        module path; a process that has not imported it yet does so now.
        Raises :class:`UnknownTask` (:class:`TaskNotImportable` for such a job).
        """
        task = self._tasks.get(job.task)
        if task is not None:
            return task
        for resolver in self._resolvers:
            found = resolver(job)
            if found is not None:
                return found
        raise UnknownTask(job.task)

    def find(self, name: str) -> Task | None:
        """The task called ``name``, or None if this process does not have it."""
        return self._tasks.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return list(self._tasks)

    def tags(self) -> list[str]:
        """Tags of the registered tasks, in the order they were first defined."""
        return list(dict.fromkeys(task.effective_options().tag for task in self))

    def periodic(self) -> dict[str, tuple[Task, Timing]]:
        """The periodic tasks registered in this process (``schedule=`` or ``every=``), with their timing."""
        found = {}
        for task in self:
            timing = Timing.of(task.effective_options())
            if timing is not None:
                found[task.name] = (task, timing)
        return found


registry = Registry()


def validate_name(name: Any) -> str:
    """The rules of :func:`~.values.text.check_task_name`, which ``create()`` applies to names too."""
    if not isinstance(name, str) or not name.strip():
        raise TaskDefinitionError(f"A task name must be a non-empty string, not {name!r}.")
    try:
        return check_task_name(name, what="task name")
    except ValueError as error:
        raise TaskDefinitionError(f"{str(error)[:1].upper()}{str(error)[1:]}.") from None


def define_task(name: str | None, action: Action, desc: str = "", **options: Any) -> Task:
    """Validate and register a task; the shared end of both definition styles."""
    if not callable(action):
        raise TaskDefinitionError(f"A task's action must be callable, not {action!r}.")
    if name is None:
        module, qualname = _code_of(action)
        name = f"{module}.{qualname}"
    name = validate_name(name)
    _check_signature(name, action)
    try:
        parsed = parse_options(options, where=f"task {name!r}")
    except (TypeError, ValueError) as error:
        raise TaskDefinitionError(str(error)) from None
    for path in parsed.get("retry_on", ()):
        problem = retry_on_problem(path, defining=True) if isinstance(path, str) else None
        if problem:
            raise TaskDefinitionError(f"task {name!r}: retry_on entry {path!r} {problem}.")
    return registry.register(Task(name=name, action=action, options=TaskOptions(**parsed), desc=desc))


def _check_signature(name: str, action: Action) -> None:
    """Refuse an action that cannot be called with the job, its one argument, saying what it needs."""
    try:
        signature = inspect.signature(action)
    except (TypeError, ValueError):  # a builtin or the like, which says nothing about itself
        return
    try:
        signature.bind(None)
    except TypeError:
        function = getattr(action, "__name__", "action")
        raise TaskDefinitionError(
            f"task {name!r}: its action is {function}{signature}, but a task's action is called with one "
            f"argument, the running job: define it as def {function}(job): ... (read job.data for its input)."
        ) from None


def retry_on_problem(path: str, *, defining: bool = False) -> str | None:
    """Why the dotted path ``path`` is no exception class ``retry_on`` can match, or None.

    ``defining``: checked as the task is defined, when the path may name a
    class further down a module still being imported (the task's own module);
    that is left to ``manage.py check`` (kinetik.E012), which runs once
    everything is imported.
    """
    module_path, _, attribute = path.rpartition(".")
    try:
        module = import_module(module_path)
    except ImportError as error:
        return f"cannot be imported ({error})"
    if not hasattr(module, attribute):
        if defining and getattr(getattr(module, "__spec__", None), "_initializing", False):
            return None
        return f"cannot be imported (module {module_path!r} has no attribute {attribute!r})"
    found = getattr(module, attribute)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        return f"is not an exception class (it is {found!r})"
    return None


@overload
def task(name: Action, /) -> Task: ...
@overload
def task(name: str | None = None, /, **options: Any) -> Callable[[Action], Task]: ...


def task(name: Any = None, /, *, desc: str = "", **options: Any) -> Any:
    """Define a task from a function.

    ``@kinetik.task("send email", tag="notifications", retries=3, timeout="30s")``;
    the name defaults to ``"<module>.<function>"``, and a bare ``@kinetik.task``
    works too. Options: ``tag``, ``priority``, ``timeout``, ``retries``,
    ``retry_delay``, ``backoff``, ``schedule`` (cron, UTC) or ``every`` (a
    period) with ``missed`` for periodic tasks, and ``unique`` (one live job per key: ``True``
    for the whole data, a tuple of data keys, or a function ``data -> str | None``).
    """
    if callable(name):
        return define_task(None, name, desc)

    def decorator(action: Action) -> Task:
        return define_task(name, action, desc or (action.__doc__ or "").strip().split("\n")[0], **options)

    return decorator


class TaskBuilder:
    """Kinetik's chainable definition: ``define(name).tag(...).timeout(...).action(fn)``."""

    def __init__(self, name: str) -> None:
        self._name = validate_name(name)
        self._desc = ""
        self._options: dict[str, Any] = {}

    def _set(self, **options: Any) -> TaskBuilder:
        try:
            parse_options(options, where=f"task {self._name!r}")
        except (TypeError, ValueError) as error:
            raise TaskDefinitionError(str(error)) from None
        self._options.update(options)
        return self

    def tag(self, tag: str) -> TaskBuilder:
        return self._set(tag=tag)

    def desc(self, text: str) -> TaskBuilder:
        self._desc = text
        return self

    def priority(self, priority: int | str) -> TaskBuilder:
        return self._set(priority=priority)

    def timeout(self, timeout: Any) -> TaskBuilder:
        return self._set(timeout=timeout)

    def retry(self, retries: int, delay: Any = None, backoff: str | None = None) -> TaskBuilder:
        options: dict[str, Any] = {"retries": retries}
        if delay is not None:
            options["retry_delay"] = delay
        if backoff is not None:
            options["backoff"] = backoff
        return self._set(**options)

    def unique(self, unique: Any = True) -> TaskBuilder:
        """One live job per key: ``True`` (the whole data), data keys, or ``data -> str | None``."""
        return self._set(unique=unique)

    def schedule(self, cron: str, missed: str | None = None) -> TaskBuilder:
        """Run a job on this cron schedule, in UTC (``"0 * * * *"``); replaces an ``every``."""
        return self._set(schedule=cron, every=None, **({} if missed is None else {"missed": missed}))

    def every(self, period: Any, missed: str | None = None) -> TaskBuilder:
        """Run a job every ``period`` (``"10m"``); replaces a ``schedule``."""
        return self._set(every=period, schedule=None, **({} if missed is None else {"missed": missed}))

    def action(self, action: Action) -> Task:
        """Register the task with ``action`` as its code and return it."""
        return define_task(self._name, action, self._desc, **self._options)


def define(name: str) -> TaskBuilder:
    """Start a chainable task definition (Kinetik's ``kinetik.define``)."""
    return TaskBuilder(name)
