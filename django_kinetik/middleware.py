"""Middleware: around every job execution, Django style, and hooks on every job transition.

A middleware is a class built once per process with the next callable in the
chain (``Middleware(run)``); calling the instance with the running job returns
the job's result::

    class RequestIdMiddleware:
        def __init__(self, run):
            self.run = run

        def __call__(self, job):
            with bind_request_id(job.data.get("request_id")):
                return self.run(job)

It may also define ``before_transition(transition)`` and
``after_transition(transition)``: called before a job changes state (a job
created, queued, started, retried, ended...) and once the change is
committed, with a :class:`~django_kinetik.lifecycle.Transition` (see
docs/architecture.md). Hooks observe; one that raises is logged and never
changes an outcome.

List them in ``KINETIK["MIDDLEWARE"]`` (outermost first) or attach one in code
with ``kinetik.use(Middleware)``; those come after the settings' ones. An
exception a middleware's ``__call__`` raises fails the job like one from the
task's own code: it is recorded on the job and the worker carries on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.utils.module_loading import import_string

from .conf import KinetikSettings, get_settings

if TYPE_CHECKING:
    from .context import JobContext

Run = Callable[["JobContext"], Any]
MiddlewareFactory = Callable[[Run], Run]
Hook = Callable[[Any], None]

_plugins: list[MiddlewareFactory] = []
_plugins_lock = threading.Lock()
#: bumped by use() and unuse(): the installed chain is rebuilt
_plugins_version = 0


def use(plugin: MiddlewareFactory) -> MiddlewareFactory:
    """Attach a middleware in code (Kinetik's ``.use``); returns it, so it can decorate."""
    global _plugins_version
    if not callable(plugin):
        raise TypeError(f"kinetik.use() needs a middleware class or factory, not {plugin!r}")
    with _plugins_lock:
        if plugin not in _plugins:
            _plugins.append(plugin)
            _plugins_version += 1
    return plugin


def unuse(plugin: MiddlewareFactory) -> None:
    """Detach a middleware attached with :func:`use`."""
    global _plugins_version
    with _plugins_lock:
        if plugin in _plugins:
            _plugins.remove(plugin)
            _plugins_version += 1


def middleware_factories(paths: tuple[str, ...]) -> list[MiddlewareFactory]:
    """Settings middleware (imported from dotted ``paths``) followed by plugins."""
    with _plugins_lock:
        attached = list(_plugins)
    return [import_string(path) for path in paths] + attached


def call_action(job: JobContext) -> Any:
    """The innermost layer: the task's own code (a coroutine function runs to its end here)."""
    definition = job.definition
    if definition.is_async:  # type: ignore[union-attr]
        return async_to_sync(definition.action)(job)  # type: ignore[union-attr]
    return definition.action(job)  # type: ignore[union-attr]


def build_chain(innermost: Run, factories: list[MiddlewareFactory]) -> tuple[Run, list[Any]]:
    """Wrap ``innermost`` so ``factories[0]`` is the outermost layer; also return the instances."""
    run = innermost
    instances = []
    for factory in reversed(factories):
        run = factory(run)
        instances.append(run)
    instances.reverse()
    return run, instances


@dataclass(frozen=True)
class Installed:
    """This process's middleware: the chain a job runs through, and the transition hooks."""

    run: Run
    before: tuple[Hook, ...]
    after: tuple[Hook, ...]


_installed: tuple[KinetikSettings | None, int, Installed | None] = (None, -1, None)
_installed_lock = threading.Lock()


def installed() -> Installed:
    """The chain and hooks for the current settings and plugins, built once and kept."""
    global _installed
    settings = get_settings()
    for_settings, version, chain = _installed
    if chain is not None and for_settings is settings and version == _plugins_version:
        return chain
    with _installed_lock:
        version = _plugins_version
        run, instances = build_chain(call_action, middleware_factories(settings.middleware))
        chain = Installed(
            run=run,
            before=tuple(m.before_transition for m in instances if callable(getattr(m, "before_transition", None))),
            after=tuple(m.after_transition for m in instances if callable(getattr(m, "after_transition", None))),
        )
        _installed = (settings, version, chain)
    return chain


class TimingMiddleware:
    """Writes how long each execution took into the job's log."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def __call__(self, job: JobContext) -> Any:
        started = time.perf_counter()
        try:
            return self.run(job)
        finally:
            elapsed = time.perf_counter() - started
            job.log(f"took {elapsed * 1000:.1f} ms", {"seconds": round(elapsed, 6)})
