"""Middleware around every job execution, Django style.

A middleware is a class built once per worker with the next callable in the
chain (``Middleware(run)``); calling the instance with the running job returns
the job's result::

    class RequestIdMiddleware:
        def __init__(self, run):
            self.run = run

        def __call__(self, job):
            with bind_request_id(job.data.get("request_id")):
                return self.run(job)

List them in ``KINETIK["MIDDLEWARE"]`` (outermost first) or attach one in code
with ``kinetik.use(Middleware)``; those come after the settings' ones. An
exception a middleware raises fails the job like one from the task's own code:
it is recorded on the job and the worker carries on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .worker.context import JobContext

Run = Callable[["JobContext"], Any]
MiddlewareFactory = Callable[[Run], Run]

_plugins: list[MiddlewareFactory] = []
_plugins_lock = threading.Lock()


def use(plugin: MiddlewareFactory) -> MiddlewareFactory:
    """Attach a middleware in code (Kinetik's ``.use``); returns it, so it can decorate."""
    if not callable(plugin):
        raise TypeError(f"kinetik.use() needs a middleware class or factory, not {plugin!r}")
    with _plugins_lock:
        if plugin not in _plugins:
            _plugins.append(plugin)
    return plugin


def unuse(plugin: MiddlewareFactory) -> None:
    """Detach a middleware attached with :func:`use`."""
    with _plugins_lock:
        if plugin in _plugins:
            _plugins.remove(plugin)


def middleware_factories(paths: tuple[str, ...]) -> list[MiddlewareFactory]:
    """Settings middleware (imported from dotted ``paths``) followed by plugins."""
    with _plugins_lock:
        attached = list(_plugins)
    return [import_string(path) for path in paths] + attached


def build_chain(innermost: Run, factories: list[MiddlewareFactory]) -> Run:
    """Wrap ``innermost`` so ``factories[0]`` is the outermost layer."""
    run = innermost
    for factory in reversed(factories):
        run = factory(run)
    return run


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
