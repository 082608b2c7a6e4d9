"""Jobs that run after other jobs: create(after=[...]), chains, fan-in, failure policies."""

import io
import threading

import pytest
from django.core.management import CommandError
from django.db import transaction

import django_kinetik as kinetik
from django_kinetik import dependencies, lifecycle
from django_kinetik.exceptions import JobCancelled
from django_kinetik.models import Job, JobDependency, Status
from django_kinetik.testing import capture_jobs
from django_kinetik.worker import Worker
from tests.conftest import session_params, wait_for

# Each test runs with both claim paths: from the database, and through the Redis fast path.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("claim_path")]


def fresh(job):
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def steps(temp_task):
    """Tasks that record the order they ran in; 'dep.fail' raises, 'dep.sum' adds up its parents' results."""
    order = []
    lock = threading.Lock()

    def step(job):
        with lock:
            order.append(job.data.get("name", job.id))
        return job.data.get("value", 0)

    def fail(job):
        with lock:
            order.append(job.data.get("name", job.id))
        raise RuntimeError("broken")

    def add_up(job):
        with lock:
            order.append(job.data.get("name", job.id))
        return sum(parent.result for parent in job.parents)

    temp_task("dep.step", step, tag="deps")
    temp_task("dep.fail", fail, tag="deps")
    temp_task("dep.sum", add_up, tag="deps")
    return order


def drain(run_worker):
    run_worker("deps", concurrency=4)


# -- creating ------------------------------------------------------------------


def test_a_job_created_after_live_jobs_waits_for_them(steps):
    first = kinetik.create("dep.step")
    second = kinetik.create("dep.step", after=[first])
    assert second.status == Status.WAITING
    assert list(second.parents.all()) == [first]
    assert list(first.children.all()) == [second]


def test_after_takes_jobs_or_ids_and_ignores_repeats(steps):
    a, b = kinetik.create("dep.step"), kinetik.create("dep.step")
    child = kinetik.create("dep.sum", after=[a, b.pk, a])
    assert sorted(child.parents.values_list("pk", flat=True)) == sorted([a.pk, b.pk])


@pytest.mark.parametrize(
    ("after", "error", "message"),
    [
        ([123456789], ValueError, "after: there is no job with id 123456789"),
        (5, TypeError, "after must be a list of jobs or job ids, not int"),
        (["5"], TypeError, "after must hold jobs or job ids, not str"),
        ([Job(task="x")], ValueError, "never saved"),
    ],
)
def test_bad_parents_are_refused_and_nothing_is_written(steps, after, error, message):
    with pytest.raises(error, match=message):
        kinetik.create("dep.step", after=after)
    with pytest.raises(error, match=message):
        kinetik.create_many("dep.step", [{}, {}], after=after)
    assert not Job.objects.exists()
    assert not JobDependency.objects.exists()


def test_a_bad_failure_policy_is_refused(steps):
    parent = kinetik.create("dep.step")
    with pytest.raises(ValueError, match="on_parent_failure 'ignore' is not one of cancel, run"):
        kinetik.create("dep.step", after=[parent], on_parent_failure="ignore")
    assert Job.objects.count() == 1


def test_after_jobs_that_already_completed_the_job_is_queued_at_once(steps, run_worker):
    parent = kinetik.create("dep.step", {"value": 2})
    drain(run_worker)
    child = kinetik.create("dep.sum", after=[parent])
    assert child.status == Status.QUEUED
    drain(run_worker)
    assert fresh(child).result == 2


def test_after_a_job_that_already_failed_the_job_is_cancelled_at_once(steps, run_worker):
    parent = kinetik.create("dep.fail")
    drain(run_worker)
    child = kinetik.create("dep.step", after=[parent])
    assert child.status == Status.CANCELLED
    assert child.error == f"Job #{parent.pk}, which this job runs after, failed."
    assert child.error_code == "parent_failed"
    with pytest.raises(JobCancelled):
        child.wait(timeout="1s")


def test_a_rolled_back_child_leaves_no_arrows(steps):
    parent = kinetik.create("dep.step")
    with pytest.raises(RuntimeError), transaction.atomic():
        kinetik.create("dep.step", after=[parent])
        raise RuntimeError("the view failed")
    assert Job.objects.count() == 1
    assert not JobDependency.objects.exists()


# -- running -------------------------------------------------------------------


def test_a_chain_runs_in_order(steps, run_worker):
    a = kinetik.create("dep.step", {"name": "a"})
    b = kinetik.create("dep.step", {"name": "b"}, after=[a])
    c = kinetik.create("dep.step", {"name": "c"}, after=[b])
    # Created last, queued first: it runs before the chain's later steps.
    kinetik.create("dep.step", {"name": "free"})
    drain(run_worker)
    assert steps.index("a") < steps.index("b") < steps.index("c")
    assert {fresh(job).status for job in (a, b, c)} == {Status.COMPLETED}


def test_fan_in_runs_once_every_parent_completed_and_reads_their_results(steps, run_worker):
    parents = kinetik.create_many("dep.step", [{"value": n, "name": f"p{n}"} for n in range(1, 11)])
    total = kinetik.create("dep.sum", {"name": "sum"}, after=parents)
    drain(run_worker)
    assert steps[-1] == "sum"
    assert fresh(total).result == 55


def test_fan_out_with_create_many(steps, run_worker):
    setup = kinetik.create("dep.step", {"name": "setup"})
    children = kinetik.create_many("dep.step", [{"name": f"c{n}"} for n in range(5)], after=[setup])
    assert {job.status for job in children} == {Status.WAITING}
    drain(run_worker)
    assert steps[0] == "setup"
    assert sorted(steps[1:]) == [f"c{n}" for n in range(5)]


def test_when_a_parent_fails_its_descendants_are_cancelled(steps, run_worker, received):
    a = kinetik.create("dep.fail", {"name": "a"})
    b = kinetik.create("dep.step", {"name": "b"}, after=[a])
    c = kinetik.create("dep.step", {"name": "c"}, after=[b])
    other = kinetik.create("dep.step", {"name": "other"})
    drain(run_worker)
    assert steps.count("b") == 0 and steps.count("c") == 0
    assert (fresh(b).status, fresh(c).status, fresh(other).status) == (
        Status.CANCELLED,
        Status.CANCELLED,
        Status.COMPLETED,
    )
    assert fresh(b).error == f"Job #{a.pk}, which this job runs after, failed."
    assert fresh(c).error == f"Job #{b.pk}, which this job runs after, was cancelled."
    cancelled = [kwargs["job"].pk for name, kwargs in received if name == "job_cancelled"]
    # Once each. Not necessarily b first: the settle that cancels b and the loop's look for
    # stuck children may both move on, and the second may cancel c before the first tells of b.
    assert sorted(cancelled) == [b.pk, c.pk]


def test_run_anyway_waits_for_every_parent_however_it_ended(steps, run_worker):
    broken = kinetik.create("dep.fail", {"name": "broken"})
    fine = kinetik.create("dep.step", {"name": "fine", "value": 1})
    report = kinetik.create("dep.step", {"name": "report"}, after=[broken, fine], on_parent_failure="run")
    drain(run_worker)
    assert fresh(report).status == Status.COMPLETED
    assert steps[-1] == "report"
    assert sorted(parent.status for parent in fresh(report).parents.all()) == [Status.COMPLETED, Status.FAILED]


def test_run_anyway_as_a_task_default(temp_task, steps, run_worker):
    temp_task("dep.cleanup", tag="deps", on_parent_failure="run")
    broken = kinetik.create("dep.fail")
    cleanup = kinetik.create("dep.cleanup", after=[broken])
    assert cleanup.options == {"on_parent_failure": "run"}  # kept with the job for whoever moves it on
    drain(run_worker)
    assert fresh(cleanup).status == Status.COMPLETED


def test_cancelling_a_parent_cancels_the_waiting_children(steps):
    parent = kinetik.create("dep.step")
    child = kinetik.create("dep.step", after=[parent])
    kinetik.cancel(parent)
    assert fresh(child).status == Status.CANCELLED
    assert fresh(child).error == f"Job #{parent.pk}, which this job runs after, was cancelled."


def test_deleting_a_parent_that_never_ran_cancels_the_child(steps, admin_client):
    from django_kinetik import bulk

    parent = kinetik.create("dep.step")
    child = kinetik.create("dep.step", after=[parent])
    bulk.delete_all(Job.objects.filter(pk=parent.pk))
    assert fresh(child).status == Status.CANCELLED
    assert "was deleted" in fresh(child).error
    assert not JobDependency.objects.exists()


def test_a_parent_purged_after_it_completed_does_not_hold_the_child(steps, run_worker):
    a = kinetik.create("dep.step")
    b = kinetik.create("dep.step")
    drain(run_worker)
    child = kinetik.create("dep.step", after=[a, b])
    assert child.status == Status.QUEUED
    kinetik.clean()
    assert fresh(child).status == Status.QUEUED


def test_a_waiting_job_can_be_cancelled_and_run_now(steps, run_worker):
    from django_kinetik import bulk

    parent = kinetik.create("dep.step", delay="1h")
    waiting = kinetik.create("dep.step", after=[parent])
    kept = kinetik.create("dep.step", after=[parent])
    kinetik.cancel(waiting)
    assert fresh(waiting).status == Status.CANCELLED
    assert bulk.run_now_all(Job.objects.filter(pk=kept.pk)).changed == 1
    drain(run_worker)
    assert fresh(kept).status == Status.COMPLETED  # it stopped waiting
    assert fresh(parent).status == Status.DELAYED


def test_a_child_with_its_own_delay_is_delayed_once_its_parents_complete(steps, run_worker):
    parent = kinetik.create("dep.step")
    child = kinetik.create("dep.step", after=[parent], delay="1h")
    drain(run_worker)
    assert fresh(child).status == Status.DELAYED


def test_the_sweep_moves_on_a_job_whose_look_was_missed(steps, run_worker, monkeypatch):
    """The worker that settled the parent died before it looked for the parent's children."""
    parent = kinetik.create("dep.step")
    child = kinetik.create("dep.step", after=[parent])
    sweep = lifecycle.sweep
    monkeypatch.setattr(lifecycle, "_move_dependants", lambda using, parents: None)
    monkeypatch.setattr(lifecycle, "sweep", lambda using: 0)  # not yet
    drain(run_worker)
    assert (fresh(parent).status, fresh(child).status) == (Status.COMPLETED, Status.WAITING)
    assert sweep("default") == 1
    drain(run_worker)
    assert fresh(child).status == Status.COMPLETED


def test_fan_in_over_four_workers_runs_the_child_once_after_every_parent(steps):
    """Parents end on four workers at once; each worker's look may see others still running."""
    parents = kinetik.create_many("dep.step", [{"name": f"p{n}"} for n in range(40)])
    total = kinetik.create("dep.step", {"name": "total"}, after=parents)
    workers = [Worker(["deps"], concurrency=4, burst=True, interval=0.01) for _ in range(4)]
    threads = [threading.Thread(target=worker.run) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert steps.count("total") == 1
    assert steps[-1] == "total"
    assert fresh(total).status == Status.COMPLETED


def test_a_parent_that_ends_while_the_child_is_being_created(steps):
    """The parent's look runs before the child commits and finds nothing; the child's own look catches it."""
    parent = kinetik.create("dep.step")
    with transaction.atomic():
        child = kinetik.create("dep.step", after=[parent])
        Job.objects.filter(pk=parent.pk).update(status=Status.COMPLETED)
        dependencies.parents_ended("default", [parent.pk])  # as the settling worker would: sees no arrow yet...
    assert fresh(child).status == Status.QUEUED  # ...but the child's look after its commit did


@pytest.mark.postgresql
def test_a_child_created_while_its_parent_is_being_settled_is_not_forgotten(steps):
    """The batch settle asks inside its statement whether a job is waited for, so it misses an arrow made
    while it runs; the creator's look then waits for that settle to commit, and sees the parent's end."""
    import psycopg

    parent = kinetik.create("dep.step")
    params = session_params()
    blocked = []

    def commit_once_the_creator_waits():
        # The creator is the only other session of the test database (behind a pooler its
        # server connection is not known in advance): wait until some session waits for a lock.
        with psycopg.connect(**{**params, "autocommit": True}) as watcher:
            blocked.append(
                wait_for(
                    lambda: watcher.execute(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks JOIN pg_stat_activity USING (pid)"
                        " WHERE NOT granted AND datname = current_database())"
                    ).fetchone()[0],
                    10,
                )
            )
        settling.commit()

    with psycopg.connect(**{**params, "autocommit": False}) as settling:
        settling.execute("UPDATE django_kinetik_job SET status = 'completed' WHERE id = %s", [parent.pk])
        committer = threading.Thread(target=commit_once_the_creator_waits)
        committer.start()
        child = kinetik.create("dep.step", after=[parent])  # its look waits for the commit above
        committer.join()
    assert blocked == [True]  # the look did wait for the settle's lock
    assert child.status == Status.WAITING  # as created...
    assert fresh(child).status == Status.QUEUED  # ...and moved on by its own look


# -- tests, eager mode, django.tasks --------------------------------------------


def test_eager_mode_runs_a_chain_in_order(steps, settings):
    settings.KINETIK = {**settings.KINETIK, "EAGER": True}
    a = kinetik.create("dep.step", {"name": "a", "value": 3})
    b = kinetik.create("dep.sum", {"name": "b"}, after=[a])
    assert (a.status, b.status) == (Status.COMPLETED, Status.COMPLETED)
    assert b.result == 3


def test_captured_jobs_run_their_children_too(steps):
    with capture_jobs() as jobs:
        a = kinetik.create("dep.step", {"name": "a", "value": 4})
        kinetik.create("dep.sum", {"name": "b"}, after=[a])
    assert [job.status for job in jobs.pending()] == [Status.QUEUED, Status.WAITING]
    jobs.run()
    assert steps == ["a", "b"]
    assert fresh(jobs[1]).result == 4


def test_the_api_creates_a_job_after_others_and_shows_its_parents(steps, admin_client):
    parent = kinetik.create("dep.step")
    response = admin_client.post(
        "/kinetik/api/jobs",
        {"task": "dep.step", "after": [parent.pk], "on_parent_failure": "run"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "waiting"
    assert body["after"] == [parent.pk]
    bad = admin_client.post(
        "/kinetik/api/jobs", {"task": "dep.step", "after": [999999]}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "after: there is no job with id 999999."}
    waiting = admin_client.get("/kinetik/api/jobs?status=waiting").json()
    assert [job["id"] for job in waiting["jobs"]] == [body["id"]]


def test_kinetik_create_after_and_limit_key(steps):
    from django.core.management import call_command

    parent = kinetik.create("dep.step")
    call_command("kinetik_create", "dep.step", "--after", str(parent.pk), "--limit-key", "k", stdout=io.StringIO())
    child = Job.objects.latest("id")
    assert (child.status, child.limit_key, list(child.parents.all())) == (Status.WAITING, "k", [parent])
    with pytest.raises(CommandError, match="after: there is no job with id 999999"):
        call_command("kinetik_create", "dep.step", "--after", "999999")
    with pytest.raises(CommandError, match="is not a job id"):
        call_command("kinetik_create", "dep.step", "--after", "first")


def test_the_admin_page_shows_parents_and_children(steps, admin_client):
    parent = kinetik.create("dep.step")
    child = kinetik.create("dep.step", after=[parent])
    page = admin_client.get(f"/admin/django_kinetik/job/{child.pk}/change/").content.decode()
    assert "Runs after" in page and f"/admin/django_kinetik/job/{parent.pk}/change/" in page
    page = admin_client.get(f"/admin/django_kinetik/job/{parent.pk}/change/").content.decode()
    assert "Then" in page and f"/admin/django_kinetik/job/{child.pk}/change/" in page
    assert "kinetik-waiting" in page


def test_retrying_a_failed_parent_lets_its_cancelled_descendants_run(temp_task, steps, run_worker):
    attempts = []

    def fails_once(job):
        attempts.append(job.id)
        if len(attempts) == 1:
            raise RuntimeError("the first time")

    temp_task("dep.once", fails_once, tag="deps")
    a = kinetik.create("dep.once")
    b = kinetik.create("dep.step", {"name": "b"}, after=[a])
    c = kinetik.create("dep.step", {"name": "c"}, after=[b])
    by_hand = kinetik.create("dep.step", {"name": "by hand"}, after=[a])
    kinetik.cancel(by_hand)
    drain(run_worker)
    assert {fresh(job).status for job in (b, c)} == {Status.CANCELLED}
    kinetik.retry(a)
    assert (fresh(b).status, fresh(c).status, fresh(b).error) == (Status.WAITING, Status.WAITING, "")
    drain(run_worker)
    assert steps == ["b", "c"]
    assert fresh(by_hand).status == Status.CANCELLED  # cancelled by a person, not by the failure


def test_a_retried_parent_does_not_revive_a_child_another_parent_still_fails(steps, run_worker):
    broken = kinetik.create("dep.fail")
    flaky = kinetik.create("dep.fail")
    child = kinetik.create("dep.step", after=[broken, flaky])
    drain(run_worker)
    kinetik.retry(flaky)
    assert fresh(child).status == Status.CANCELLED
