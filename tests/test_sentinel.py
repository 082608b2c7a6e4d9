"""Redis behind Sentinel: the fast path and the event feed follow the master through a failover.

One topology (tests/redis_sentinel.py: a master, a replica, three Sentinels)
serves the module; the drains fail it over twice, planned (SENTINEL FAILOVER)
and by killing the master, with worker processes draining meanwhile. What a
user would notice: every job runs exactly once, none is lost, and afterwards
the workers are back on the new master's blocking pop (not stuck on the old
one, not left polling). ``-s`` prints each failover's gap: the longest time
no job finished.
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid

import pytest
from django.db.models import Count, Max

import django_kinetik as kinetik
from django_kinetik.conf import get_settings
from django_kinetik.fastpath.connection import forget_clients, redis_client
from django_kinetik.models import Job, JobRun, Status, Worker
from tests import redis_sentinel
from tests.conftest import IN_CI, wait_for

pytestmark = [pytest.mark.sentinel, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def topology():
    if not redis_sentinel.available():
        if IN_CI:
            pytest.fail("redis-server and redis-sentinel must be installed in CI (apt-get install redis-sentinel)")
        pytest.skip("redis-sentinel is not installed")
    topology = redis_sentinel.Topology("test_sentinel").start()
    yield topology
    topology.stop()


@pytest.fixture
def through_sentinel(topology, settings, monkeypatch):
    """KINETIK["REDIS"] is the Sentinel URL, for this process and the workers it starts."""
    prefix = f"kinetik-sentinel-{uuid.uuid4().hex[:8]}"
    settings.KINETIK = {**settings.KINETIK, "REDIS": topology.url, "REDIS_PREFIX": prefix}
    monkeypatch.setenv("KINETIK_TEST_REDIS", topology.url)
    monkeypatch.setenv("KINETIK_TEST_REDIS_PREFIX", prefix)
    forget_clients()
    yield topology
    forget_clients()


def _master(topology):
    return topology.client(topology.master_address()[1])


def test_jobs_go_through_the_master_the_sentinels_name(through_sentinel, run_worker):
    master = _master(through_sentinel)
    job = kinetik.create("test.echo", {"n": 1})
    # Pushed to the master's queue of its tag, under this test's prefix.
    assert master.zcard(f"{get_settings().redis_prefix}:queue:alpha") == 1
    run_worker("alpha")
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert redis_client().connection_pool.service_name == redis_sentinel.SERVICE


def test_a_django_redis_alias_with_sentinels_works_too(topology, settings):
    settings.CACHES = {
        **settings.CACHES,
        "sentinel": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{redis_sentinel.SERVICE}/0",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "SENTINELS": [("127.0.0.1", port) for port in topology.sentinel_ports],
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            },
        },
    }
    prefix = f"kinetik-alias-{uuid.uuid4().hex[:8]}"
    settings.KINETIK = {**settings.KINETIK, "REDIS": "sentinel", "REDIS_PREFIX": prefix}
    forget_clients()
    try:
        kinetik.create("test.echo")
        assert _master(topology).zcard(f"{prefix}:queue:alpha") == 1
    finally:
        forget_clients()


def test_the_event_feed_goes_through_the_sentinels_master(through_sentinel, run_worker):
    with kinetik.events(tag="alpha", timeout="20s") as stream:
        job = kinetik.create("test.echo")
        run_worker("alpha")
        kinds = []
        for event in stream:
            if event.job_id == job.pk:
                kinds.append(event.kind)
            if event.finished:
                break
    assert kinds == ["created", "started", "completed"]


def _drain_through(topology, start_worker, switch, *, back_within, jobs=1500):
    """Two worker processes drain while jobs keep coming; ``switch()`` runs a third of the way in.

    ``back_within``: seconds from the switch by which both workers must block on the new master.

    Returns the longest time (seconds) in which no job finished around the switch.
    """
    before = topology.master_address()
    workers = [start_worker("alpha", "beta", "-v", "0", "--concurrency", "4") for _ in range(2)]
    assert wait_for(lambda: Worker.objects.filter(stopped_at=None).count() == 2, 20)
    batches = jobs // 25
    switched_at = None
    for batch in range(batches):
        kinetik.create_many("test.echo", [{"n": batch * 25 + i} for i in range(25)])
        if batch == batches // 3:
            switched_at = time.time()
            switch()
        time.sleep(0.02)
    assert wait_for(lambda: Job.objects.filter(status=Status.COMPLETED).count() == jobs, 90), Job.objects.values(
        "status"
    ).annotate(n=Count("id"))
    # Exactly once: one run each, none retried, nothing left.
    assert Job.objects.count() == jobs
    assert not JobRun.objects.values("job_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Job.objects.aggregate(most=Max("attempts"))["most"] == 1
    stamps = [stamp.timestamp() for stamp in Job.objects.values_list("finished_at", flat=True)]
    finished = [switched_at, *sorted(stamp for stamp in stamps if stamp > switched_at)]
    gap = max((b - a for a, b in itertools.pairwise(finished)), default=0.0)
    # Not stuck: soon after the switch both workers block on the new master for their next ids.
    assert wait_for(lambda: topology.master_address() != before, 20)
    new_master = _master(topology)
    assert wait_for(lambda: _blocked_pops(new_master) >= 2, max(1.0, switched_at + back_within - time.time())), (
        "\n".join(f"{entry['cmd']} {entry['flags']} age {entry['age']}s" for entry in new_master.client_list())
    )
    for process in workers:
        assert process.poll() is None, process.communicate()[0]
    return gap


def _blocked_pops(client):
    return sum(1 for entry in client.client_list() if entry.get("cmd") == "bzpopmin" and "b" in entry.get("flags", ""))


@pytest.mark.slow
def test_a_planned_failover_during_a_drain_loses_no_job(through_sentinel, start_worker):
    before = through_sentinel.master_address()
    # Opened before the failover, on a tag the drain does not use: its listener must follow the master.
    with kinetik.events(tag="beta", timeout="600s") as stream:
        # Without following the master, a worker stayed on the old one for some ten seconds.
        gap = _drain_through(through_sentinel, start_worker, through_sentinel.failover, back_within=5.0)
        assert through_sentinel.master_address() != before
        # Events are best-effort, and the first job after the switch loses some or all of its
        # events (not understood yet: docs/redis.md). But the stream must not stay deaf: soon
        # after the switch, a job's events arrive whole, from the creating process and the worker.
        deadline = time.monotonic() + 30.0
        probes = 0
        while True:
            probe = kinetik.create("test.echo", tag="beta")
            probes += 1
            # From two processes: the creating one's "created" may come after the worker's "started".
            kinds = _kinds_of(stream, probe.pk, {"created", "started", "completed"}, within=5.0)
            if sorted(kinds) == ["completed", "created", "started"]:
                break
            print(f"\nprobe job {probes}: the stream got only {kinds}")
            assert time.monotonic() < deadline, _where_the_feed_is(through_sentinel, probe, kinds)
    print(f"\nSENTINEL FAILOVER during a drain: 0 jobs lost, longest gap {gap * 1000:.0f} ms;", end=" ")
    print(f"the stream had a job's events whole at probe job {probes}")
    through_sentinel.wait_until_settled(through_sentinel.master_address()[1])


def _kinds_of(stream, job_id, wanted, *, within):
    """The kinds of ``job_id``'s events that ``stream`` gets within ``within`` seconds, until all ``wanted`` came."""
    kinds = []
    deadline = time.monotonic() + within
    while not wanted <= set(kinds) and (left := deadline - time.monotonic()) > 0:
        event = stream.get(timeout=left)
        if event is not None and event.job_id == job_id:
            kinds.append(event.kind)
    return kinds


def _where_the_feed_is(topology, probe, kinds):
    """What a failed feed check needs: did the probe run, and which server has the stream and the publishers."""
    probe.refresh_from_db()
    channel = f"{get_settings().redis_prefix}:events"
    lines = [f"got {kinds}; the probe is {probe.status}; Sentinel names {topology.master_address()}"]
    for port in (topology.master_port, topology.replica_port):
        try:
            server = topology.client(port)
            ((_, listeners),) = server.pubsub_numsub(channel)
            role = server.info("replication")["role"]
            publishers = [entry["addr"] for entry in server.client_list() if entry.get("cmd") == "publish"]
            lines.append(f"{port} ({role}): {listeners} listener(s) of the feed; last published from {publishers}")
        except Exception as error:  # a killed server: say so and go on
            lines.append(f"{port}: {error}")
    return "\n".join(lines)


@pytest.mark.slow
def test_a_killed_master_during_a_drain_loses_no_job(through_sentinel, start_worker):
    through_sentinel.wait_until_settled(through_sentinel.master_address()[1])
    before = through_sentinel.master_address()
    # Redis gone: a worker's feed retries at growing pauses, up to 5 s (worker/redisfeed.py).
    kill = functools.partial(through_sentinel.kill, before[1])
    gap = _drain_through(through_sentinel, start_worker, kill, back_within=15.0)
    assert through_sentinel.master_address() != before
    print(f"\nmaster killed during a drain: 0 jobs lost, longest gap {gap * 1000:.0f} ms")
