"""``django.tasks`` functions the suite enqueues through KinetikTaskBackend.

Not named tasks.py on purpose: kinetik never autodiscovers this module, so a
worker meets these functions only through their jobs and must import them.
"""

import asyncio
import time

import django

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task

#: what the functions saw, for tests running an in-process worker
calls: list[tuple[str, object]] = []


@task()
def add(a, b):
    calls.append(("add", (a, b)))
    return a + b


@task(queue_name="mail", priority=10)
def send_mail(to, subject=""):
    """Send one email."""
    calls.append(("send_mail", to))
    return {"to": to, "subject": subject}


@task()
def fail(message):
    raise ValueError(message)


@task(takes_context=True)
def flaky(context, fail_times):
    """Fails its first ``fail_times`` attempts."""
    calls.append(("flaky", context.attempt))
    if context.attempt <= fail_times:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return context.attempt


@task(takes_context=True)
def describe(context):
    result = context.task_result
    return {
        "id": result.id,
        "attempt": context.attempt,
        "status": str(result.status),
        "worker_ids": list(result.worker_ids),
        "args": result.args,
    }


@task()
async def multiply(a, b):
    await asyncio.sleep(0)
    return a * b


@task()
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@task()
def exit_now():
    raise SystemExit(3)


@task()
def not_json():
    return object()


@task(takes_context=True)
def own_run_after(context):
    """The run_after the running task sees in its own result, as ISO text."""
    run_after = context.task_result.task.run_after
    return None if run_after is None else run_after.isoformat()
