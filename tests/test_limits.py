"""Concurrency and rate limits across workers: concurrency=, rate_limit=, limit_by=, enforced when claiming."""

import threading
import time
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.backends import get_backend
from django_kinetik.backends.limited import LimitedClaims
from django_kinetik.conf import read_settings
from django_kinetik.exceptions import TaskDefinitionError
from django_kinetik.models import Job, JobRun, LimitState, Status
from django_kinetik.registry import registry
from django_kinetik.values.limits import Rate, RateWindow, parse_rate_limit
from django_kinetik.worker import Worker
from django_kinetik.worker.serving import task_limits
from tests.conftest import wait_for

# Each test runs with both claim paths: from the database, and through the Redis fast path.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def max_overlap(intervals):
    """The most intervals (start, end) that overlap at any moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def runs_by_key(task):
    """Each run's (start, end) as the database recorded it, per limit key."""
    by_key = defaultdict(list)
    for run in JobRun.objects.filter(job__task=task).select_related("job"):
        by_key[run.job.limit_key].append((run.started_at, run.finished_at))
    return by_key


def run_workers(count, *, concurrency, seconds=30, tags=None):
    """``count`` burst workers in threads, each with ``concurrency`` slots, until they drain."""
    workers = [Worker(tags, concurrency=concurrency, burst=True, interval=0.01) for _ in range(count)]
    threads = [threading.Thread(target=worker.run) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds)
    assert not any(thread.is_alive() for thread in threads), "the workers did not drain the queue"
    return workers


# -- defining ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/s", Rate(10, 1.0)),
        ("100/m", Rate(100, 60.0)),
        ("1000/h", Rate(1000, 3600.0)),
        ("5/10s", Rate(5, 10.0)),
        (" 3 / 500ms ", Rate(3, 0.5)),
        ("2/d", Rate(2, 86400.0)),
    ],
)
def test_rate_limits_are_starts_per_period(text, rate):
    assert parse_rate_limit(text) == rate


def test_a_rate_reads_back_as_written():
    assert [str(parse_rate_limit(text)) for text in ("10/s", "100/m", "5/10s", "3/500ms")] == [
        "10/s",
        "100/m",
        "5/10s",
        "3/500ms",
    ]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": "2"}, "concurrency must be a whole number"),
        ({"concurrency": True}, "concurrency must be a whole number"),
        ({"rate_limit": 10}, "rate_limit must be text such as"),
        ({"rate_limit": "ten a second"}, "is not a rate"),
        ({"rate_limit": "10/fortnight"}, "has no period"),
        ({"rate_limit": "0/s"}, "allows no starts"),
        ({"rate_limit": "10/1ms"}, "at least 10ms"),
        ({"limit_by": ()}, "needs at least one data key"),
        ({"limit_by": 5}, "limit_by cannot be int"),
        ({"limit_by": ("customer", 3)}, "must be non-empty strings"),
    ],
)
def test_bad_limits_are_refused_where_the_task_is_defined(options, problem):
    with pytest.raises(TaskDefinitionError, match=r"task 'limits\.bad'") as error:
        kinetik.task("limits.bad", **options)(lambda job: None)
    assert problem in str(error.value)
    assert "limits.bad" not in registry


def test_bad_limits_in_settings_are_kinetik_e006():
    _, problems = read_settings({"TASKS": {"send sms": {"rate_limit": "fast"}}})
    assert [problem.id for problem in problems] == ["kinetik.E006"]
    assert "'fast' is not a rate" in problems[0].msg


def test_limits_are_task_options_not_job_options(temp_task):
    temp_task("limits.sms", rate_limit="10/s")
    with pytest.raises(TypeError, match="rate_limit cannot be set for one job"):
        kinetik.create("limits.sms", rate_limit="1/s")
    assert not Job.objects.exists()


def test_the_limit_key_comes_from_the_data(temp_task):
    temp_task("limits.feed", concurrency=2, limit_by="customer_id")
    temp_task("limits.pair", concurrency=1, limit_by=("region", "customer_id"))
    temp_task("limits.fn", concurrency=1, limit_by=lambda data: data.get("account"))
    temp_task("limits.whole", concurrency=1)
    assert kinetik.create("limits.feed", {"customer_id": "acme"}).limit_key == "acme"
    assert kinetik.create("limits.feed", {"customer_id": 42}).limit_key == "42"
    assert kinetik.create("limits.pair", {"region": "eu", "customer_id": 7}).limit_key == '["eu",7]'
    assert kinetik.create("limits.fn", {"account": "a-1"}).limit_key == "a-1"
    assert kinetik.create("limits.fn", {}).limit_key == ""
    assert kinetik.create("limits.whole", {"customer_id": 1}).limit_key == ""
    assert kinetik.create("limits.whole", {}, limit_key="explicit").limit_key == "explicit"
    # And in bulk, job by job.
    jobs = kinetik.create_many("limits.feed", [{"customer_id": "a"}, {"customer_id": "b"}])
    assert [Job.objects.get(pk=job.pk).limit_key for job in jobs] == ["a", "b"]


def test_a_job_without_the_key_the_task_is_limited_by_is_refused(temp_task):
    temp_task("limits.feed", concurrency=2, limit_by="customer_id")
    with pytest.raises(ValueError, match="the task's limits apply per customer_id, but the data has no 'customer_id'"):
        kinetik.create("limits.feed", {"customer": 1})
    with pytest.raises(ValueError, match="data has no 'customer_id'"):
        kinetik.create_many("limits.feed", [{"customer_id": 1}, {}])
    assert not Job.objects.exists()


# -- the rate window -----------------------------------------------------------


def test_no_window_of_one_period_sees_more_than_the_rate():
    rate = Rate(10, 1.0)
    window = RateWindow(rate)
    starts = []
    moment = 1_000_000.0
    while moment < 1_000_010.0:
        room = window.room(moment)
        if room:
            window.add(moment, room)
            starts += [moment] * room
        # What a worker does: come back when the window opens, or a little later.
        moment = max(window.opens_at(moment), moment + 0.003)
    for start in starts:
        assert sum(1 for other in starts if start <= other < start + rate.period) <= rate.count
    # ...and it is not much slower than the rate either (one slice late at most).
    assert 95 <= len(starts) <= 100


def test_the_window_survives_being_stored():
    window = RateWindow(Rate(2, 1.0))
    window.add(100.01, 2)
    again = RateWindow(Rate(2, 1.0), window.stored())
    assert again.room(100.5) == 0
    assert again.opens_at(100.5) == pytest.approx(101.02)
    assert again.room(101.05) == 2


# -- enforcing -----------------------------------------------------------------


def test_at_most_n_run_at_once_per_key_across_workers(temp_task):
    """Four workers with four slots each, three customers: never more than two per customer."""
    temp_task("limits.import", lambda job: time.sleep(0.05), tag="imports", concurrency=2, limit_by="customer_id")
    for customer in ("acme", "globex", "initech"):
        kinetik.create_many("limits.import", [{"customer_id": customer}] * 8)
    run_workers(4, concurrency=4, tags=["imports"])
    assert set(Job.objects.values_list("status", flat=True)) == {Status.COMPLETED}
    overlaps = {key: max_overlap(runs) for key, runs in runs_by_key("limits.import").items()}
    assert overlaps == {"acme": 2, "globex": 2, "initech": 2}


def test_workers_claiming_at_the_same_moment_never_pass_the_limit(temp_task, monkeypatch):
    """Each worker's first claim pauses after counting the running jobs, until all four have counted.

    Without the lock on the task's LimitState row, all four then take two jobs per
    customer one after the other (eight running each); with it, the others wait for
    the lock, the pause times out, and each counts what the one before it took.
    """
    temp_task("limits.race", lambda job: time.sleep(0.1), tag="race", concurrency=2, limit_by="customer_id")
    for customer in ("acme", "globex"):
        kinetik.create_many("limits.race", [{"customer_id": customer}] * 8)
    everyone_counted = threading.Barrier(4, timeout=0.5)
    count_running = LimitedClaims._running_by_key

    def counted_then_wait(self, task):
        running = count_running(self, task)
        if not getattr(self, "raced", False):
            self.raced = True
            try:
                # Then one after the other, each after the one before has claimed.
                time.sleep(0.05 * everyone_counted.wait())
            except threading.BrokenBarrierError:
                pass
        return running

    monkeypatch.setattr(LimitedClaims, "_running_by_key", counted_then_wait)
    workers = run_workers(4, concurrency=4, tags=["race"])
    assert all(getattr(worker._limited, "raced", False) for worker in workers)
    overlaps = {key: max_overlap(runs) for key, runs in runs_by_key("limits.race").items()}
    assert overlaps == {"acme": 2, "globex": 2}


def test_a_task_wide_limit_counts_every_job_of_the_task(temp_task):
    temp_task("limits.report", lambda job: time.sleep(0.05), tag="reports", concurrency=3)
    kinetik.create_many("limits.report", [{}] * 15)
    run_workers(3, concurrency=4, tags=["reports"])
    assert max_overlap(runs_by_key("limits.report")[""]) == 3
    assert Job.objects.filter(status=Status.COMPLETED).count() == 15


def test_a_full_key_does_not_hold_up_the_next_keys_jobs(temp_task):
    """The first customer's backlog is ahead in the queue; the second customer's job still runs at once."""
    started = {}
    release = threading.Event()

    def work(job):
        started[job.data["n"]] = time.monotonic()
        if job.data["customer_id"] == "big":
            release.wait(10)

    temp_task("limits.hol", work, tag="hol", concurrency=1, limit_by="customer_id")
    kinetik.create_many("limits.hol", [{"customer_id": "big", "n": n} for n in range(60)])
    kinetik.create("limits.hol", {"customer_id": "small", "n": "small"})
    worker = Worker(["hol"], concurrency=4, interval=0.01)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert wait_for(lambda: "small" in started, 5)
        assert Job.objects.filter(status=Status.ACTIVE, limit_key="big").count() == 1
    finally:
        release.set()
        worker.stop()
        thread.join(10)


def test_at_most_n_start_per_period_across_workers(temp_task):
    temp_task("limits.sms", tag="sms", rate_limit="10/500ms")
    kinetik.create_many("limits.sms", [{}] * 25)
    began = time.monotonic()
    run_workers(3, concurrency=4, tags=["sms"])
    took = time.monotonic() - began
    starts = sorted(started for started, _ in runs_by_key("limits.sms")[""])
    assert len(starts) == 25
    for start in starts:
        in_window = [other for other in starts if start <= other < start + timezone.timedelta(seconds=0.5)]
        assert len(in_window) <= 10
    # 25 jobs at 10 per half second: the last five cannot start before a second has passed.
    assert took >= 1.0
    assert took < 4.0


def test_a_rate_limit_per_key(temp_task):
    temp_task("limits.call", tag="calls", rate_limit="2/500ms", limit_by="number")
    kinetik.create_many("limits.call", [{"number": "+1"}] * 4 + [{"number": "+2"}] * 2)
    began = time.monotonic()
    run_workers(2, concurrency=4, tags=["calls"])
    assert time.monotonic() - began >= 0.5  # +1's last two had to wait half a second
    by_key = runs_by_key("limits.call")
    plus_two = sorted(start for start, _ in by_key["+2"])
    assert (plus_two[-1] - plus_two[0]).total_seconds() < 0.25  # +2 never waited on +1
    assert LimitState.objects.filter(task="limits.call", key="+1").exists()


def test_limited_and_unlimited_jobs_share_a_worker(temp_task):
    temp_task("limits.slow", lambda job: time.sleep(0.1), tag="mixed", concurrency=1)
    temp_task("limits.free", tag="mixed")
    kinetik.create_many("limits.slow", [{}] * 3)
    kinetik.create_many("limits.free", [{}] * 20)
    run_workers(1, concurrency=4, tags=["mixed"])
    assert Job.objects.filter(status=Status.COMPLETED).count() == 23
    assert max_overlap(runs_by_key("limits.slow")[""]) == 1


def test_limits_set_in_settings_apply(temp_task, settings):
    temp_task("limits.configured", lambda job: time.sleep(0.05), tag="configured")
    settings.KINETIK = {**settings.KINETIK, "TASKS": {"limits.configured": {"concurrency": 1}}}
    kinetik.create_many("limits.configured", [{}] * 6)
    run_workers(2, concurrency=3, tags=["configured"])
    assert max_overlap(runs_by_key("limits.configured")[""]) == 1


def test_kinetik_tasks_shows_the_limits(temp_task, capsys):
    temp_task("limits.shown", concurrency=2, rate_limit="10/s", limit_by="customer_id")
    call_command("kinetik_tasks")
    line = next(line for line in capsys.readouterr().out.splitlines() if "limits.shown" in line)
    assert "2 at once, 10/s per customer_id" in line


def test_jobs_created_before_the_limit_get_a_key_and_keep_to_it(temp_task, settings):
    temp_task("limits.later", lambda job: time.sleep(0.05), tag="later")
    jobs = kinetik.create_many("limits.later", [{}] * 4)
    assert {Job.objects.get(pk=job.pk).limit_key for job in jobs} == {None}  # no limit yet: not in the index
    settings.KINETIK = {**settings.KINETIK, "TASKS": {"limits.later": {"concurrency": 1}}}
    run_workers(2, concurrency=3, tags=["later"])
    assert set(Job.objects.values_list("limit_key", "status")) == {("", Status.COMPLETED)}
    assert max_overlap(runs_by_key("limits.later")[""]) == 1


def test_a_django_tasks_function_is_limited_by_its_module_path(settings):
    from tests.testapp import django_tasks

    path = "tests.testapp.django_tasks.sleep"
    settings.KINETIK = {**settings.KINETIK, "TASKS": {path: {"concurrency": 1}}}
    results = [django_tasks.sleep.enqueue(0.05) for _ in range(4)]
    run_workers(2, concurrency=3, tags=["default"])
    assert {Job.objects.get(pk=int(result.id)).status for result in results} == {Status.COMPLETED}
    assert max_overlap(runs_by_key(path)[""]) == 1


def test_limits_for_a_whole_django_tasks_backend_are_refused(settings):
    from django_kinetik.tasks_backend import KinetikTaskBackend

    # A check message (kinetik.E014), so manage.py check reports it; enqueue raises it (test_tasks_checks.py).
    (message,) = KinetikTaskBackend("default", {"OPTIONS": {"concurrency": 2}}).check()
    assert "cannot set concurrency: limits are per function" in message.msg
    assert 'KINETIK["TASKS"]' in message.hint


def test_workers_forget_rate_windows_that_have_emptied(temp_task):
    temp_task("limits.tidy", rate_limit="5/s", limit_by="number")
    stale = timezone.now() - timezone.timedelta(seconds=2)
    LimitState.objects.create(task="limits.tidy", key="", changed_at=stale)
    LimitState.objects.create(task="limits.tidy", key="+1", starts={"1": 5}, changed_at=stale)
    LimitState.objects.create(task="limits.tidy", key="+2", starts={"1": 5})
    claims = LimitedClaims(get_backend("default"), task_limits())
    assert claims.tidy() == 1
    assert set(LimitState.objects.filter(task="limits.tidy").values_list("key", flat=True)) == {"", "+2"}


def test_limited_jobs_stay_out_of_redis_and_still_run(temp_task, redis_fastpath):
    from django_kinetik.fastpath.connection import queue_key

    temp_task("limits.redis", lambda job: time.sleep(0.02), tag="fast", concurrency=1)
    temp_task("limits.unlimited", tag="fast")
    limited = [*kinetik.create_many("limits.redis", [{}] * 4), kinetik.create("limits.redis")]
    free = kinetik.create_many("limits.unlimited", [{}] * 4)
    in_redis = {int(member) for member in redis_fastpath.zrange(queue_key("fast"), 0, -1)}
    assert in_redis == {job.pk for job in free}
    run_workers(2, concurrency=3, tags=["fast"])
    assert Job.objects.filter(pk__in=[job.pk for job in limited + free], status=Status.COMPLETED).count() == 9
    assert max_overlap(runs_by_key("limits.redis")[""]) == 1


def test_a_job_lost_with_its_worker_holds_its_slot_until_its_lease_is_taken_back(temp_task):
    """The dead worker's job still counts as running; once recovered it runs again, one at a time."""
    from datetime import timedelta

    from django_kinetik.testing.factories import JobFactory, WorkerFactory

    temp_task("limits.lost", lambda job: time.sleep(0.02), tag="lost", concurrency=1)
    dead = WorkerFactory(last_heartbeat=timezone.now() - timedelta(minutes=5))
    orphan = JobFactory(
        task="limits.lost",
        tag="lost",
        limit_key="",
        status=Status.ACTIVE,
        attempts=1,
        worker=dead,
        started_at=timezone.now() - timedelta(minutes=5),
        lease_expires_at=timezone.now() - timedelta(minutes=4),
    )
    waiting = kinetik.create("limits.lost")
    run_workers(2, concurrency=2, tags=["lost"])
    orphan.refresh_from_db()
    assert (orphan.status, orphan.ghosts, Job.objects.get(pk=waiting.pk).status) == (
        Status.COMPLETED,
        1,
        Status.COMPLETED,
    )
    finished_runs = [
        (run.started_at, run.finished_at) for run in JobRun.objects.filter(job__task="limits.lost", outcome="completed")
    ]
    assert max_overlap(finished_runs) == 1
    # Nothing started while the dead worker's run still counted.
    taken_back = JobRun.objects.get(job=orphan, outcome="lost").finished_at
    assert min(started for started, _ in finished_runs) >= taken_back
