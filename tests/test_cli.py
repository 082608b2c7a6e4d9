"""The management commands as an operator uses them: output, exit codes, errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command, load_command_class
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import django_kinetik as kinetik
from django_kinetik.fastpath.connection import forget_clients
from django_kinetik.models import Job, JobLog, Status, Worker
from tests.conftest import ROOT, worker_env
from tests.factories import FinishedJobFactory, JobFactory, JobLogFactory, WorkerFactory
from tests.testapp import django_tasks

pytestmark = pytest.mark.django_db

COMMANDS = [
    "kinetik_worker",
    "kinetik_tasks",
    "kinetik_jobs",
    "kinetik_clean",
    "kinetik_create",
    "kinetik_retry",
    "kinetik_cancel",
    "kinetik_workers",
    "kinetik_health",
]


class Terminal(StringIO):
    """Output that says it is a terminal, as a person's shell would."""

    def isatty(self):
        return True


def run(*args, stdout=None, stderr=None):
    """Run a command; return what it printed on stdout and stderr."""
    out, err = stdout or StringIO(), stderr or StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failing(*args, match):
    """Run a command that must fail with a CommandError; return its stdout."""
    out = StringIO()
    with pytest.raises(CommandError, match=match):
        call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def rows_of(table):
    """A rendered table as dicts keyed by its header."""
    lines = table.strip().splitlines()
    header = lines[0].split()
    starts = [lines[0].index(name) for name in header]
    rows = []
    for line in lines[2:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


# -- help --------------------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_ends_with_examples_of_itself(name):
    text = load_command_class("django_kinetik", name).create_parser("manage.py", name).format_help()
    examples = text.split("Examples:\n", 1)[1]
    assert f"manage.py {name}" in examples
    # Examples keep their own lines (not re-wrapped into one paragraph).
    assert all(line.startswith("  ") for line in examples.strip("\n").splitlines() if line)


# -- kinetik_create ----------------------------------------------------------


def test_create_prints_the_new_jobs_id():
    out, _ = run("kinetik_create", "test.echo", '{"to": "ada@example.com"}')
    job = Job.objects.get()
    assert out == f"{job.pk}\n"
    assert (job.task, job.tag, job.status, job.data) == ("test.echo", "alpha", Status.QUEUED, {"to": "ada@example.com"})


def test_create_with_delay_priority_tag_and_options():
    before = timezone.now()
    out, _ = run(
        "kinetik_create",
        "test.echo",
        "--delay",
        "30s",
        "--priority",
        "high",
        "--tag",
        "beta",
        "--option",
        "retries=3",
        "--option",
        "timeout=2m",
    )
    job = Job.objects.get(pk=int(out))
    assert (job.status, job.priority, job.tag, job.data) == (Status.DELAYED, 10, "beta", {})
    assert timedelta(seconds=29) < job.run_at - before < timedelta(seconds=31)
    assert job.options == {"retries": 3, "timeout": 120_000}  # stored in the Python API's milliseconds


def test_create_takes_an_integer_priority_and_a_bare_delay_in_seconds():
    before = timezone.now()
    out, _ = run("kinetik_create", "test.echo", "--priority", "-7", "--delay", "60")
    job = Job.objects.get(pk=int(out))
    assert job.priority == -7
    assert job.run_at - before >= timedelta(seconds=59)


def test_create_as_json():
    out, _ = run("kinetik_create", "test.echo", '{"n": 1}', "--format", "json")
    data = json.loads(out)
    job = Job.objects.get()
    assert data["id"] == job.pk
    assert (data["task"], data["tag"], data["status"], data["data"]) == ("test.echo", "alpha", "queued", {"n": 1})
    assert data["run_at"].endswith("Z") and data["worker"] is None


def test_create_reads_data_from_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", StringIO('{"from": "stdin"}'))
    run("kinetik_create", "test.echo", "-")
    assert Job.objects.get().data == {"from": "stdin"}


def test_create_with_a_unique_key_prints_the_live_job_instead():
    first, _ = run("kinetik_create", "test.echo", "--unique-key", "nightly")
    second, _ = run("kinetik_create", "test.echo", "--unique-key", "nightly")
    assert first == second and Job.objects.count() == 1


def test_create_for_a_task_defined_elsewhere_needs_a_tag():
    failing("kinetik_create", "remote.only", match=r"No task named 'remote.only'.*pass --tag")
    out, _ = run("kinetik_create", "remote.only", "--tag", "gpu")
    assert Job.objects.get(pk=int(out)).tag == "gpu"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["test.echo", "{to: ada}"], r"JSON_DATA is not valid JSON .*e\.g\. '\{\"to\""),
        (["test.echo", "[1, 2]"], "must be a JSON object"),
        (["test.echo", "--option", "retries"], "must be NAME=VALUE"),
        (["test.echo", "--option", "colour=red"], "unknown option 'colour'"),
        (["test.echo", "--option", "retries=-1"], "retries cannot be negative"),
        (["test.echo", "--priority", "urgent"], "not a level; use one of low, normal"),
        (["test.echo", "--priority", "1000"], "out of range"),
        (["test.echo", "--delay", "soon"], "--delay.*not a duration"),
        (["test.echo", "--tag", "two words"], "tag 'two words' is not valid"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(args, message):
    failing("kinetik_create", *args, match=message)
    assert not Job.objects.exists()


# -- kinetik_cancel / kinetik_retry -------------------------------------------


def test_cancel_by_ids_reports_what_could_not_be_cancelled_and_why(received):
    queued, delayed = JobFactory(), JobFactory(delayed=True)
    done = FinishedJobFactory()
    out = failing(
        "kinetik_cancel", str(queued.pk), str(delayed.pk), str(done.pk), "999999", match=r"2 of 4 job\(s\) could not"
    )
    assert out.startswith("Cancelled 2 job(s).\nCould not cancel 2 job(s):\n")
    reasons = {row["ID"]: row["REASON"] for row in rows_of(out.split(":\n", 1)[1])}
    assert reasons == {str(done.pk): "already completed", "999999": "no such job"}
    assert set(Job.objects.values_list("status", flat=True)) == {Status.CANCELLED, Status.COMPLETED}
    assert sorted(kwargs["job"].pk for name, kwargs in received if name == "job_cancelled") == [queued.pk, delayed.pk]


def test_cancel_by_ids_that_all_apply_succeeds():
    jobs = JobFactory.create_batch(2)
    out, _ = run("kinetik_cancel", *(str(job.pk) for job in jobs), str(jobs[0].pk))
    assert out == "Cancelled 2 job(s).\n"
    assert not Job.objects.exclude(status=Status.CANCELLED).exists()


def test_cancel_by_filters_changes_only_matching_live_jobs():
    mail = JobFactory.create_batch(3, task="mail.send", tag="mail")
    JobFactory(task="mail.send", tag="mail", delayed=True)
    other_task = JobFactory(task="report.build", tag="mail")
    other_tag = JobFactory(task="mail.send", tag="bulk")
    done = FinishedJobFactory(task="mail.send", tag="mail")
    out, _ = run("kinetik_cancel", "--task", "mail.send", "--tag", "mail", "--status", "queued")
    assert out == "Cancelled 3 job(s).\n"
    assert set(Job.objects.filter(status=Status.CANCELLED).values_list("pk", flat=True)) == {job.pk for job in mail}
    for job in (other_task, other_tag, done):
        job.refresh_from_db()
        assert job.status != Status.CANCELLED


def test_cancel_older_than_uses_when_the_job_was_created():
    old = JobFactory(created_at=timezone.now() - timedelta(days=8))
    recent = JobFactory(created_at=timezone.now() - timedelta(days=6))
    run("kinetik_cancel", "--older-than", "7d")
    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.status, recent.status) == (Status.CANCELLED, Status.QUEUED)


def test_cancel_dry_run_counts_and_changes_nothing():
    JobFactory.create_batch(3)
    FinishedJobFactory()
    out, _ = run("kinetik_cancel", "--tag", "alpha", "--dry-run")
    assert out == "Would cancel 3 job(s) (dry run: nothing changed).\n"
    assert Job.objects.filter(status=Status.QUEUED).count() == 3


def test_cancel_dry_run_by_ids_lists_those_it_would_leave():
    queued, done = JobFactory(), FinishedJobFactory(status=Status.FAILED)
    out, _ = run("kinetik_cancel", str(queued.pk), str(done.pk), "--dry-run")
    assert out.splitlines()[:2] == ["Would cancel 1 job(s) (dry run: nothing changed).", "Would not cancel 1 job(s):"]
    assert "already failed" in out
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED


def test_cancel_and_retry_need_ids_or_filters():
    failing("kinetik_cancel", match="Say which jobs to cancel: give their ids, or filters")
    failing("kinetik_retry", match="Say which jobs to retry")
    failing("kinetik_retry", "1", "--status", "failed", match="ids or filters, not both")
    failing("kinetik_retry", "first", match="'first' is not a job id")
    failing("kinetik_retry", "--status", "queued", match="invalid choice: 'queued'")


def test_retry_by_filters_works_in_batches_and_shows_progress_on_a_terminal():
    failed = JobFactory.create_batch(25, status=Status.FAILED, attempts=2, error="boom")
    JobFactory(status=Status.FAILED, task="test.beta", tag="beta")
    terminal = Terminal()
    with CaptureQueriesContext(connection) as queries:
        out, _ = run("kinetik_retry", "--status", "failed", "--tag", "alpha", "--batch-size", "10", stderr=terminal)
    assert out == "Retried 25 job(s).\n"
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # 10 + 10 + 5
    assert "25/25" in terminal.getvalue() and "100%" in terminal.getvalue()
    retried = Job.objects.filter(pk__in=[job.pk for job in failed])
    assert set(retried.values_list("status", "attempts", "error")) == {(Status.QUEUED, 0, "")}
    assert Job.objects.get(task="test.beta").status == Status.FAILED


def test_retry_without_a_terminal_prints_no_progress():
    JobFactory.create_batch(3, status=Status.TIMEOUT)
    out, err = run("kinetik_retry", "--status", "timeout")
    assert (out, err) == ("Retried 3 job(s).\n", "")


def test_retry_by_id_explains_a_job_that_is_not_finished():
    failed, queued = JobFactory(status=Status.FAILED), JobFactory()
    out = failing("kinetik_retry", str(failed.pk), str(queued.pk), match=r"1 of 2 job\(s\) could not be retried")
    assert "it is queued; only failed, timeout or cancelled jobs can be retried" in out
    failed.refresh_from_db()
    assert failed.status == Status.QUEUED


def test_retry_as_json():
    failed, active = JobFactory(status=Status.CANCELLED), JobFactory(active=True)
    out = failing("kinetik_retry", str(failed.pk), str(active.pk), "--format", "json", match="could not be retried")
    assert json.loads(out) == {
        "action": "retry",
        "dry_run": False,
        "changed": 1,
        "changed_meanwhile": 0,
        "not_changed": [
            {"id": active.pk, "reason": "it is active; only failed, timeout or cancelled jobs can be retried"}
        ],
    }


# -- kinetik_jobs --------------------------------------------------------------


def test_jobs_as_json_is_kinetik_stats():
    JobFactory.create_batch(2, task="mail.send", tag="mail")
    FinishedJobFactory(task="report.build")
    out, _ = run("kinetik_jobs", "--format", "json")
    assert json.loads(out) == kinetik.stats()
    assert json.loads(out)["tasks"]["mail.send"] == {"queued": 2}


def test_jobs_by_tag():
    JobFactory.create_batch(2, tag="mail")
    JobFactory(tag="bulk", status=Status.FAILED)
    out, _ = run("kinetik_jobs", "--by", "tag")
    rows = {row["TAG"]: row for row in rows_of(out)}
    assert (rows["mail"]["QUEUED"], rows["bulk"]["FAILED"], rows["(all)"]["TOTAL"]) == ("2", "1", "3")


def test_jobs_watch_piped_prints_one_plain_table_per_refresh():
    JobFactory()
    out, _ = run("kinetik_jobs", "--watch", "0.01", "--iterations", "3")
    assert "\033[" not in out
    tables = [block for block in out.split("\n\n") if "TASK" in block]
    assert len(tables) == 3
    assert all("Ctrl-C to stop" in table and "test.echo" in table for table in tables)


def test_jobs_watch_on_a_terminal_redraws_in_place():
    terminal = Terminal()
    run("kinetik_jobs", "--watch", "0.01", "--iterations", "2", stdout=terminal)
    screens = terminal.getvalue().split("\033[H\033[2J")
    assert screens[0] == "" and len(screens) == 3
    assert all("(all)" in screen for screen in screens[1:])


def test_jobs_watch_as_json_prints_one_document_per_line():
    JobFactory()
    out, _ = run("kinetik_jobs", "--watch", "0.01", "--iterations", "2", "--format", "json")
    documents = [json.loads(line) for line in out.splitlines()]
    assert len(documents) == 2 and all(doc["status"]["queued"] == 1 and "at" in doc for doc in documents)


def test_jobs_watch_ends_cleanly_on_ctrl_c():
    # Python's own Ctrl-C handler, as in a terminal: a run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and the watch would never end.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        out, _ = run("kinetik_jobs", "--watch", "0.1")  # runs until the SIGINT
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert out.count("(all)") >= 1
    assert out.endswith("\n")


def test_jobs_watch_refuses_a_bad_interval():
    failing("kinetik_jobs", "--watch", "often", match="not a duration")


# -- kinetik_workers -----------------------------------------------------------


def test_workers_lists_live_workers_with_their_running_jobs():
    now = timezone.now()
    busy = WorkerFactory(name="web-1:100:aa", host="web-1", pid=100, tags=["alpha", "beta"], concurrency=4, jobs_done=7)
    JobFactory.create_batch(2, active=True, worker=busy)
    WorkerFactory(name="web-2:200:bb", state=Worker.State.STOPPING)
    WorkerFactory(name="gone", state=Worker.State.OFFLINE, stopped_at=now)
    WorkerFactory(name="silent", last_heartbeat=now - timedelta(minutes=5))
    out, _ = run("kinetik_workers")
    rows = {row["NAME"]: row for row in rows_of(out)}
    assert set(rows) == {"web-1:100:aa", "web-2:200:bb"}
    web1 = rows["web-1:100:aa"]
    assert (web1["HOST"], web1["PID"], web1["TAGS"], web1["THREADS"]) == ("web-1", "100", "alpha,beta", "4")
    assert (web1["STATE"], web1["DONE"], web1["RUNNING"]) == ("online", "7", "2")
    assert web1["HEARTBEAT"].endswith("s ago")
    assert rows["web-2:200:bb"]["STATE"] == "stopping"


def test_workers_all_includes_stopped_and_silent_ones():
    WorkerFactory(name="live")
    WorkerFactory(name="gone", state=Worker.State.OFFLINE)
    WorkerFactory(name="lost", state=Worker.State.LOST)
    WorkerFactory(name="silent", last_heartbeat=timezone.now() - timedelta(minutes=5))
    out, _ = run("kinetik_workers", "--all")
    states = {row["NAME"]: row["STATE"] for row in rows_of(out)}
    assert states == {"live": "online", "gone": "offline", "lost": "lost", "silent": "online (silent)"}
    assert {row["NAME"]: row["HEARTBEAT"] for row in rows_of(out)}["silent"] == "5m ago"


def test_workers_by_tag_and_as_json():
    WorkerFactory(name="a", tags=["alpha"])
    mail = WorkerFactory(name="m", tags=["mail", "alpha"])
    JobFactory(active=True, worker=mail)
    out, _ = run("kinetik_workers", "--tag", "mail", "--format", "json")
    (worker,) = json.loads(out)
    assert (worker["name"], worker["tags"], worker["live"], worker["running_jobs"]) == ("m", ["mail", "alpha"], True, 1)
    assert worker["state"] == "online" and worker["heartbeat_age"] < 5


def test_workers_says_how_to_start_one_when_there_is_none():
    out, _ = run("kinetik_workers")
    assert out.startswith("No live worker (none online or stopping with a heartbeat within 10s). Start one with")
    WorkerFactory(tags=["alpha"])
    out, _ = run("kinetik_workers", "--all", "--tag", "mail")
    assert out == "No worker serving 'mail' has registered. Start one with manage.py kinetik_worker.\n"


# -- kinetik_clean -------------------------------------------------------------


def test_clean_deletes_in_batches_of_its_own_transaction_with_progress():
    jobs = FinishedJobFactory.create_batch(35)
    JobLogFactory(job=jobs[0])
    kept = JobFactory()
    terminal = Terminal()
    with CaptureQueriesContext(connection) as queries:
        out, _ = run("kinetik_clean", "--batch-size", "10", stderr=terminal)
    assert out == "Deleted 35 job(s).\n"
    table = connection.ops.quote_name(Job._meta.db_table)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f"DELETE FROM {table}")]
    assert len(deletes) == 4
    # Each batch commits on its own (here, in the test's transaction: a savepoint each).
    assert sum(q["sql"].startswith("SAVEPOINT") for q in queries.captured_queries) == 4
    # The progress bar is sized by a COUNT, never by reading every id.
    assert any("COUNT(" in q["sql"] for q in queries.captured_queries)
    progress = terminal.getvalue()
    assert progress.count("\r") == 4 and "10/35" in progress and "35/35" in progress
    assert list(Job.objects.all()) == [kept] and not JobLog.objects.exists()


def test_clean_without_a_terminal_prints_only_the_count():
    FinishedJobFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        out, err = run("kinetik_clean")
    assert (out, err) == ("Deleted 3 job(s).\n", "")
    assert not any("COUNT(" in q["sql"] for q in queries.captured_queries)


def test_clean_dry_run_and_json():
    old = timezone.now() - timedelta(days=10)
    FinishedJobFactory.create_batch(2, finished_at=old)
    FinishedJobFactory(status=Status.FAILED, finished_at=old)
    FinishedJobFactory()
    out, _ = run("kinetik_clean", "--status", "all", "--older-than", "7d", "--dry-run")
    assert out == "Would delete 3 job(s) (dry run: nothing deleted).\n"
    assert Job.objects.count() == 4
    out, _ = run("kinetik_clean", "--status", "all", "--older-than", "7d", "--format", "json")
    assert json.loads(out) == {"dry_run": False, "deleted": 3}
    assert Job.objects.count() == 1


def test_clean_refuses_a_batch_size_below_one():
    failing("kinetik_clean", "--batch-size", "0", match="--batch-size: must be at least 1")


# -- kinetik_health ------------------------------------------------------------


def health(*args):
    """Run kinetik_health; return (exit code, its one line)."""
    out = StringIO()
    code = 0
    try:
        call_command("kinetik_health", *args, stdout=out, stderr=StringIO())
    except SystemExit as exit:
        code = exit.code
    text = out.getvalue()
    assert text.count("\n") == 1, text
    return code, text.rstrip("\n")


def test_health_ok_with_a_live_worker_and_a_moving_queue():
    WorkerFactory()
    JobFactory(run_at=timezone.now() - timedelta(minutes=1))
    code, line = health()
    assert code == 0
    assert line == "ok: database up, 1 live worker(s), no queued job older than 5m"


def test_health_without_a_live_worker():
    assert health() == (1, "unhealthy: 0 live worker(s), need at least 1 (online, with a heartbeat within 10s)")
    WorkerFactory(last_heartbeat=timezone.now() - timedelta(seconds=30))
    WorkerFactory(state=Worker.State.STOPPING)
    assert health()[0] == 1
    assert health("--min-workers", "0")[0] == 0


def test_health_min_workers_and_tags():
    WorkerFactory(tags=["alpha"])
    assert health("--min-workers", "2") == (
        1,
        "unhealthy: 1 live worker(s), need at least 2 (online, with a heartbeat within 10s)",
    )
    assert health("--tag", "alpha")[0] == 0
    assert health("--tag", "alpha", "--tag", "mail") == (1, "unhealthy: no live worker serves tag 'mail'")


def test_health_with_a_queued_job_waiting_too_long():
    WorkerFactory()
    now = timezone.now()
    stale = JobFactory(created_at=now - timedelta(minutes=13), run_at=now - timedelta(minutes=12))
    code, line = health()
    assert code == 1
    assert line == f"unhealthy: queued job {stale.pk} (test.echo, tag alpha) has waited 12m, longer than --max-age 5m"
    assert health("--max-age", "15m")[0] == 0


def test_health_ignores_paused_tags_and_jobs_not_yet_due():
    WorkerFactory()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    JobFactory(tag="nightly", created_at=an_hour_ago, run_at=an_hour_ago)
    JobFactory(delayed=True)
    kinetik.pause("nightly")
    assert health()[0] == 0


def test_health_counts_a_past_run_after_from_when_the_job_was_enqueued():
    WorkerFactory()
    django_tasks.add.using(run_after=timezone.now() - timedelta(hours=1)).enqueue(1, 2)
    assert health()[0] == 0


def test_health_checks_redis_when_configured(redis_fastpath):
    WorkerFactory()
    assert health() == (0, "ok: database up, redis up, 1 live worker(s), no queued job older than 5m")


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_at(settings):
    """Point KINETIK["REDIS"] somewhere for one test."""

    def point(url):
        settings.KINETIK = {**settings.KINETIK, "REDIS": url}
        forget_clients()

    yield point
    forget_clients()


def test_health_with_redis_down(redis_at):
    WorkerFactory()
    redis_at(f"redis://127.0.0.1:{_closed_port()}/0")
    code, line = health()
    assert code == 1 and line.startswith("unhealthy: redis unreachable: ")


def test_health_gives_up_after_its_timeout(redis_at):
    # A server that accepts connections and never answers: the ping would wait forever.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        redis_at(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        assert health("--timeout", "300ms") == (1, "unhealthy: checks did not finish within 300ms")


def test_health_with_the_database_unreachable_is_one_line_and_exit_1():
    env = {**worker_env(), "KINETIK_TEST_DB": "sqlite", "KINETIK_TEST_WORKER_DB": "/nonexistent/kinetik.sqlite3"}
    done = subprocess.run(
        [sys.executable, "-m", "django", "kinetik_health"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == "unhealthy: database 'default' unreachable: unable to open database file\n"
    assert done.stderr == ""
