"""Hot jobs and the live feed: waits woken by the job's end, kinetik.events(), the SSE endpoint.

Each feed test runs on both transports: PostgreSQL NOTIFY (only where the test
database is PostgreSQL) and Redis pub/sub (on any database).
"""

import asyncio
import json
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik import feed, waiting
from django_kinetik.context import JobContext
from django_kinetik.exceptions import JobCancelled, JobFailed, WaitTimeout
from django_kinetik.feed import publishing, sse
from django_kinetik.feed.listener import listener
from django_kinetik.feed.transport import PostgresTransport, RedisTransport
from django_kinetik.joblogs import LogWriter
from django_kinetik.models import Job, JobLog, Status
from django_kinetik.testing import run_job
from django_kinetik.worker import Worker
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=[pytest.param("postgresql", marks=[pytest.mark.postgresql, pytest.mark.notify]), "redis"])
def transport(request):
    """The feed over PostgreSQL NOTIFY, then over Redis pub/sub."""
    if request.param == "redis":
        request.getfixturevalue("redis_fastpath")
    assert feed.available()
    return request.param


@pytest.fixture
def idle_worker(transport):
    """A worker in a thread that would poll only once a minute: only notifications make anything quick."""
    worker = Worker(["alpha"], interval=60.0)
    thread = threading.Thread(target=worker.run)
    thread.start()
    if transport == "postgresql":
        assert wait_for(lambda: worker.listener is not None and worker.listener.ready.is_set(), 10)
    else:
        assert wait_for(lambda: worker.feed is not None and worker.feed.hungry.is_set(), 10)
    assert wait_for(worker._idle.is_set, 10)  # asleep in its one-minute wait (or its blocking pop) now
    yield worker
    worker.stop()
    thread.join(timeout=10)


@pytest.fixture
def rare_rereads(monkeypatch):
    """Waits re-read the row only every 30 s while notifications arrive (not every second).

    Then a wait that ends within a few seconds (less than its 5 s poll too) was woken by the announcement.
    """
    monkeypatch.setattr(waiting, "REREAD", 30.0)


#: the loose bound for "woken by the announcement" (a busy machine), below any poll or re-read
WOKEN_WITHIN = 2.5


def seconds_after_it_finished(job, moment):
    job.refresh_from_db()
    return (moment - job.finished_at).total_seconds()


def collect(stream, done, timeout=15):
    """Events from ``stream`` until ``done(events)``; fails if that takes longer than ``timeout``."""
    seen = []
    deadline = time.monotonic() + timeout
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"gave up waiting; got {[(e.kind, e.job_id) for e in seen]}"
        event = stream.get(left)
        if event is not None:
            seen.append(event)
    return seen


def finished(*jobs):
    ids = {job.pk for job in jobs}
    return lambda seen: ids <= {event.job_id for event in seen if event.finished}


# -- hot jobs -------------------------------------------------------------------


def test_a_view_creates_a_job_and_its_wait_wakes_when_the_job_ends(idle_worker, rare_rereads):
    # A poll of 5 s, re-reads every 30 s: only the announcement of the job's end can make this quick.
    job = kinetik.create("test.sleep", {"seconds": 0.3})
    assert job.wait(timeout="10s", poll="5s") == "slept"
    assert seconds_after_it_finished(job, timezone.now()) < WOKEN_WITHIN
    # Every further wait in this process shares the same listener.
    again = kinetik.create("test.sleep", {"seconds": 0.2})
    assert again.wait(timeout="10s", poll="5s") == "slept"
    assert seconds_after_it_finished(again, timezone.now()) < WOKEN_WITHIN


def test_await_result_wakes_the_same_way_without_blocking_the_event_loop(idle_worker, rare_rereads):
    async def view():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            job = await sync_to_async(kinetik.create)("test.sleep", {"seconds": 0.3})
            result = await job.await_result(timeout="10s", poll="5s")
            return job, result, timezone.now(), ticks
        finally:
            ticker.cancel()
            await sync_to_async(connections.close_all)()

    job, result, returned, ticks = asyncio.run(view())
    assert result == "slept"
    assert seconds_after_it_finished(job, returned) < WOKEN_WITHIN
    assert ticks >= 15  # the loop kept running while it waited


def test_await_result_raises_what_wait_raises(run_worker):
    failing = kinetik.create("test.fail", {"message": "no funds"})
    pending = kinetik.create("test.echo", tag="nobody-serves-this")
    run_worker("alpha")

    async def outcome(job, timeout):
        try:
            return await job.await_result(timeout=timeout)
        finally:
            await sync_to_async(connections.close_all)()

    with pytest.raises(JobFailed, match=r"failed \[E_CARD\]: no funds") as error:
        asyncio.run(outcome(failing, "5s"))
    assert error.value.code == "E_CARD"
    with pytest.raises(WaitTimeout, match=r"did not finish within 0\.1s; it is queued"):
        asyncio.run(outcome(pending, "100ms"))


def test_cancelling_a_job_wakes_whoever_waits_on_it(transport, rare_rereads):
    job = kinetik.create("test.echo", tag="nobody-serves-this")
    outcome = {}

    def waiter():
        try:
            job.wait(timeout="10s", poll="5s")
        except JobCancelled as error:
            outcome["error"] = error
            outcome["at"] = time.monotonic()
        finally:
            connections.close_all()

    def waiting_on_it():
        shared = listener()
        return shared is not None and shared.ready.is_set() and job.pk in shared._watches

    thread = threading.Thread(target=waiter)
    thread.start()
    assert wait_for(waiting_on_it, 10)  # the waiter listens for the job's end
    cancelled_at = time.monotonic()
    kinetik.cancel(job)
    thread.join(timeout=10)
    assert isinstance(outcome["error"], JobCancelled)
    assert outcome["at"] - cancelled_at < WOKEN_WITHIN


def test_a_wait_still_ends_by_reading_the_row_when_publishing_is_broken(idle_worker, monkeypatch, caplog):
    def broken(self, messages):
        raise ConnectionError("the transport is down")

    monkeypatch.setattr(PostgresTransport, "publish", broken)
    monkeypatch.setattr(RedisTransport, "publish", broken)
    # On PostgreSQL the settle itself sends the "finished" message: make it leave that to the publisher.
    monkeypatch.setattr(publishing, "finished_by_database", lambda using: False)
    job = kinetik.create("test.sleep", {"seconds": 0.2})
    started = time.monotonic()
    # The job still runs and completes; the wait ends on its once-a-second re-read (not its 5 s poll).
    assert job.wait(timeout="10s", poll="5s") == "slept"
    assert time.monotonic() - started < 4
    assert "Could not publish" in caplog.text


@pytest.mark.without_feed
def test_without_redis_or_postgresql_there_is_no_feed_and_waits_poll(run_worker):
    assert not feed.available()
    with pytest.raises(ImproperlyConfigured, match=r'need PostgreSQL or the Redis fast path: set KINETIK\["REDIS"\]'):
        kinetik.events()
    job = kinetik.create("test.echo", {"n": 1})
    run_worker("alpha")
    assert job.wait(timeout="5s") == {"echo": {"n": 1}, "attempt": 1}


@pytest.mark.without_feed
@pytest.mark.django_db(transaction=True)
def test_a_job_that_ends_just_after_the_wait_read_its_row_still_wakes_the_wait(rare_rereads):
    """The moment between reading the row and watching for commits: a commit there is not missed.

    (On SQLite the wait watches the file's commit counter; it used to read the
    counter only after the row, so this commit went unseen until the next re-read.)
    """
    job = kinetik.create("test.echo", {"n": 1})
    original, reads = job.refresh_from_db, []

    def finish_elsewhere():
        run_job(Job.objects.get(pk=job.pk))
        connection.close()

    def read_then_the_job_ends(*args, **kwargs):
        original(*args, **kwargs)
        reads.append(job.status)
        if len(reads) == 2:  # the wait's loop found it unfinished; another connection ends it now
            elsewhere = threading.Thread(target=finish_elsewhere)
            elsewhere.start()
            elsewhere.join()

    job.refresh_from_db = read_then_the_job_ends
    started = time.monotonic()
    assert job.wait(timeout="10s") == {"echo": {"n": 1}, "attempt": 1}
    assert time.monotonic() - started < WOKEN_WITHIN


# -- kinetik.events() --------------------------------------------------------------


def test_events_follow_jobs_from_creation_to_their_end_in_order(transport, run_worker):
    with kinetik.events(tag="alpha", timeout="30s") as stream, kinetik.events(kinds="failed") as failures:
        report = kinetik.create("test.report")
        failing = kinetik.create("test.fail", {"message": "no funds"})
        run_worker("alpha")
        seen = collect(stream, finished(report, failing))
        only_failures = collect(failures, finished(failing))

    of_report = [event for event in seen if event.job_id == report.pk]
    # In the order the job's code made them: log lines are written in batches
    # and announced once written, and progress reported after a line waits for it.
    assert [event.kind for event in of_report] == [
        "created",
        "started",
        "log",
        "progress",
        "progress",
        "progress",
        "log",
        "completed",
    ]
    assert {(event.task, event.tag) for event in of_report} == {("test.report", "alpha")}
    assert [event.status for event in of_report] == ["queued", *["active"] * 6, "completed"]
    assert [event.attempt for event in of_report[1:]] == [1] * 7
    first_log, last_log = [event for event in of_report if event.kind == "log"]
    progress = [event for event in of_report if event.kind == "progress"]
    assert (first_log.message, first_log.data) == ("starting", {"rows": 3})
    assert (last_log.message, last_log.data) == ("done", None)
    assert [first_log.log_id, last_log.log_id] == list(
        JobLog.objects.filter(job_id=report.pk).order_by("id").values_list("id", flat=True)
    )
    assert [(p.current, p.total, p.data) for p in progress] == [(r, 3, {"row": r}) for r in (1, 2, 3)]
    assert of_report[-1].finished

    of_failing = [event for event in seen if event.job_id == failing.pk]
    assert [event.kind for event in of_failing] == ["created", "started", "failed"]
    end = of_failing[-1]
    assert (end.status, end.error, end.error_code) == ("failed", "no funds", "E_CARD")
    assert [(event.kind, event.job_id) for event in only_failures] == [("failed", failing.pk)]


def test_a_job_s_progress_is_announced_after_the_log_lines_written_before_it(transport):
    # A worker's job thread: lines wait in the worker's log writer, progress is stored at once.
    job = kinetik.create("test.report")
    publishing.publisher().flush()  # its "created" event is out before the stream starts
    Job.objects.filter(pk=job.pk).update(status=Status.ACTIVE, attempts=1)
    job.refresh_from_db()
    writer = LogWriter("default")
    context = JobContext(job, None, "default", writer)
    with kinetik.events(job=job, timeout="10s") as stream:
        context.log("first")
        context.progress(1, 2)
        context.log("second")
        context.progress(2, 2)
        assert writer.flush() == 2
        seen = collect(stream, lambda seen: len(seen) == 4)
    assert [(event.kind, event.message or event.current) for event in seen] == [
        ("log", "first"),
        ("progress", 1),
        ("log", "second"),
        ("progress", 2),
    ]
    assert [event.log_id for event in seen if event.kind == "log"] == list(
        JobLog.objects.filter(job_id=job.pk).order_by("id").values_list("id", flat=True)
    )


def test_a_stream_can_follow_one_job_and_iterates_until_its_timeout(transport, run_worker):
    first = kinetik.create("test.echo", {"n": 1})
    second = kinetik.create("test.echo", {"n": 2})
    publishing.publisher().flush()  # their created events are gone before the stream opens
    with kinetik.events(job=second, timeout="1s") as stream:
        run_worker("alpha")
        started = time.monotonic()
        kinds = [event.kind for event in stream]  # ends when its timeout runs out
    assert kinds == ["started", "completed"]
    assert time.monotonic() - started < 2
    assert first.pk != second.pk


def test_retries_and_cancellations_are_events_too(transport, run_worker):
    with kinetik.events(kinds=["retrying", "completed", "cancelled"], timeout="30s") as stream:
        flaky = kinetik.create("test.flaky", {"succeed_on": 2})
        run_worker("alpha")
        parked = kinetik.create("test.echo", tag="nobody-serves-this")
        kinetik.cancel(parked)
        seen = collect(stream, finished(flaky, parked))
    assert [(event.kind, event.job_id) for event in seen] == [
        ("retrying", flaky.pk),
        ("completed", flaky.pk),
        ("cancelled", parked.pk),
    ]
    assert seen[0].error == "attempt 1 failed" and seen[0].status == "queued"


def test_a_job_created_in_a_transaction_that_rolls_back_is_never_announced(transport):
    with kinetik.events(kinds="created", timeout="1s") as stream:
        try:
            with transaction.atomic():
                kinetik.create("test.echo", {"n": "rolled back"})
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        kept = kinetik.create("test.echo", {"n": "kept"})
        assert [event.job_id for event in stream] == [kept.pk]


def test_async_code_iterates_the_feed_with_async_for(transport, run_worker):
    async def follow():
        async with kinetik.events(tag="alpha", timeout="20s") as stream:
            job = await sync_to_async(kinetik.create)("test.echo", {"n": 1})
            await sync_to_async(run_worker)("alpha")
            stream_events = []
            async for event in stream:
                stream_events.append(event)
                if event.finished:
                    break
            await sync_to_async(connections.close_all)()
            return job, stream_events

    job, stream_events = asyncio.run(follow())
    assert [(event.kind, event.job_id) for event in stream_events] == [
        ("created", job.pk),
        ("started", job.pk),
        ("completed", job.pk),
    ]


# -- server-sent events ---------------------------------------------------------------


@pytest.fixture
def quick_sse(monkeypatch):
    monkeypatch.setattr(sse, "HEARTBEAT", 0.1)
    monkeypatch.setattr(sse, "LIFETIME", 20.0)


def test_the_sse_endpoint_streams_events_to_staff(transport, admin_client, run_worker, quick_sse):
    job = kinetik.create("test.report")
    publishing.publisher().flush()  # its "created" event is out before the stream starts
    response = admin_client.get(reverse("kinetik:events"), {"job": job.pk})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    chunks = iter(response.streaming_content)
    assert next(chunks).decode().startswith("retry: ")  # listening from here on
    run_worker("alpha")
    events, comments = [], []
    for chunk in chunks:
        text = chunk.decode()
        if text.startswith("data: "):
            events.append(json.loads(text[len("data: ") :]))
        else:
            comments.append(text)
        if events and events[-1]["kind"] == "completed":
            break
    kinds = [event["kind"] for event in events]
    # Log lines are announced once the settler has written them (see the test above).
    assert (kinds[0], kinds[-1]) == ("started", "completed")
    assert sorted(kinds[1:-1]) == ["log", "log", "progress", "progress", "progress"]
    assert {event["job_id"] for event in events} == {job.pk}
    logs = [event for event in events if event["kind"] == "log"]
    progress = [event for event in events if event["kind"] == "progress"]
    assert [event["message"] for event in logs] == ["starting", "done"]
    assert (progress[0]["current"], progress[0]["total"]) == (1, 3)
    # Idle, it keeps the connection open with comments.
    assert next(chunks) == b": keep-alive\n\n"
    response.close()


def test_the_sse_endpoint_filters_by_tag_and_kind(transport, admin_client, run_worker, quick_sse):
    response = admin_client.get(reverse("kinetik:events"), {"tag": "beta", "kind": "created,completed"})
    chunks = iter(response.streaming_content)
    next(chunks)
    kinetik.create("test.echo")
    beta = kinetik.create("test.beta")
    run_worker("alpha", "beta")
    events = []
    for chunk in chunks:
        if chunk.startswith(b"data: "):
            events.append(json.loads(chunk[len(b"data: ") :]))
        if len(events) == 2:
            break
    response.close()
    assert [(event["kind"], event["job_id"], event["tag"]) for event in events] == [
        ("created", beta.pk, "beta"),
        ("completed", beta.pk, "beta"),
    ]


def test_the_sse_endpoint_is_for_staff_only(client):
    url = reverse("kinetik:events")
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    user = User.objects.create_user("visitor", password="pw", is_staff=False)
    visitor = Client()
    visitor.force_login(user)
    assert visitor.get(url).status_code == 403


def test_the_sse_endpoint_refuses_bad_filters(admin_client):
    url = reverse("kinetik:events")
    assert admin_client.get(url, {"job": "seven"}).status_code == 400
    refused = admin_client.get(url, {"kind": "exploded"})
    assert refused.status_code == 400 and b"Unknown event kind(s) exploded" in refused.content


@pytest.mark.without_feed
def test_without_a_feed_the_endpoint_says_so_and_the_job_page_polls(admin_client):
    response = admin_client.get(reverse("kinetik:events"))
    assert response.status_code == 503
    assert b'KINETIK["REDIS"]' in response.content
    job = kinetik.create("test.echo")
    page = admin_client.get(reverse("admin:django_kinetik_job_change", args=[job.pk]))
    assert 'data-events-url=""' in page.content.decode()


def test_the_job_page_follows_the_job_s_own_stream(transport, admin_client, run_worker, quick_sse):
    job = kinetik.create("test.echo")
    page = admin_client.get(reverse("admin:django_kinetik_job_change", args=[job.pk]))
    stream_url = reverse("admin:django_kinetik_job_events", args=[job.pk])
    assert f'data-events-url="{stream_url}"' in page.content.decode()
    response = admin_client.get(stream_url)
    assert response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    next(chunks)
    kinetik.create("test.echo")  # another job: not on this page's stream
    run_worker("alpha")
    kinds = []
    for chunk in chunks:
        if chunk.startswith(b"data: "):
            event = json.loads(chunk[len(b"data: ") :])
            assert event["job_id"] == job.pk
            kinds.append(event["kind"])
            if event["kind"] == "completed":
                break
    response.close()
    assert kinds == ["started", "completed"]
    visitor = User.objects.create_user("visitor", password="pw", is_staff=True)
    client = Client()
    client.force_login(visitor)  # staff, but without permission to view jobs
    assert client.get(stream_url).status_code == 403


def test_under_asgi_the_stream_is_async_and_holds_no_thread(transport, quick_sse):
    from django.test import AsyncClient

    async def follow():
        user = await sync_to_async(User.objects.create_user)("ops", password="pw", is_staff=True)
        view_job = await Permission.objects.aget(codename="view_job")
        await user.user_permissions.aadd(view_job)
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get(reverse("kinetik:events"), {"kind": "created"})
        assert response["Content-Type"] == "text/event-stream"
        assert response.is_async  # an async iterator: no thread held per open stream
        chunks = aiter(response.streaming_content)
        assert (await anext(chunks)).startswith(b"retry: ")
        job = await sync_to_async(kinetik.create)("test.echo")
        async for chunk in chunks:
            if chunk.startswith(b"data: "):
                event = json.loads(chunk[len(b"data: ") :])
                break
        await chunks.aclose()
        await sync_to_async(connections.close_all)()
        return job, event

    job, event = asyncio.run(follow())
    assert (event["kind"], event["job_id"]) == ("created", job.pk)
