"""Fault injection on PostgreSQL: workers killed, the database restarted, timeout storms, SIGTERMs.

Run with ``-m faults`` (``python3 dev.py test`` runs them in their own tox
environment). Each test prints what it survived. The jobs' code holds a
PostgreSQL advisory lock on the job id while it runs, so two runs of one job
at the same time would be caught, and writes one side effect per job with a
unique key, so a re-run after a crash shows up as a duplicate attempt rather
than as a second effect.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count

import django_kinetik as kinetik
from django_kinetik.models import Job, JobRun, Status, Worker
from tests import pgbouncer
from tests.conftest import IN_CI, ROOT, wait_for, worker_env
from tests.netcut import Link
from tests.testapp.models import Effect, Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


class Fleet:
    """Worker processes started, killed and replaced by a test; output goes to files."""

    def __init__(self, args, lease="2s"):
        self.args = args
        self.env = worker_env()
        self.env["KINETIK_TEST_LEASE"] = lease
        # A worker that does not exit is sent SIGABRT: Python then writes every thread's stack to its log.
        self.env["PYTHONFAULTHANDLER"] = "1"
        self.directory = tempfile.mkdtemp(prefix="kinetik-fleet-")
        self.processes = []
        self.exits = []

    def start(self):
        log = open(os.path.join(self.directory, f"worker-{len(self.processes) + len(self.exits)}.log"), "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "kinetik_worker", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log = log
        self.processes.append(process)
        return process

    def kill_one(self, signum=signal.SIGKILL):
        """Signal a worker that is up (registered); a process still importing Django
        has no handlers yet and would just die, which tests nothing of ours."""
        online = set(query(lambda: list(Worker.objects.filter(state="online").values_list("pid", flat=True))))
        candidates = [process for process in self.processes if process.pid in online]
        if not candidates:
            return None
        process = random.choice(candidates)
        process.send_signal(signum)
        code = self._wait(process, 30)
        process.log.close()
        self.processes.remove(process)
        self.exits.append(code)
        return code

    def stop(self):
        # Let late starters come up first: a stop signal is only handled once they have.
        deadline = time.monotonic() + (0 if "--processes" in self.args else 30)
        while time.monotonic() < deadline:
            online = set(query(lambda: list(Worker.objects.filter(state="online").values_list("pid", flat=True))))
            if all(process.pid in online or process.poll() is not None for process in self.processes):
                break
            time.sleep(0.1)
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            self.exits.append(self._wait(process, 60))
            process.log.close()
        self.processes = []

    @staticmethod
    def _wait(process, timeout):
        """Its exit status; a worker still there after ``timeout`` fails the test with its threads' stacks."""
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: the stacks go to its log
            process.wait(timeout=10)
            process.log.flush()
            with open(process.log.name) as log:
                pytest.fail(f"worker {process.pid} did not exit within {timeout}s; its log:\n{log.read()[-20000:]}")

    def output(self):
        text = []
        for name in sorted(os.listdir(self.directory)):
            with open(os.path.join(self.directory, name)) as log:
                text.append(log.read())
        return "\n".join(text)

    def close(self):
        for process in self.processes:
            process.kill()
            process.wait()
            process.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def fleet():
    fleets = []

    def make(*args, **kwargs):
        made = Fleet(list(args), **kwargs)
        fleets.append(made)
        return made

    yield make
    for made in fleets:
        made.close()


def query(function, retries=60):
    """Run ``function`` against the database, waiting out a restart."""
    for _ in range(retries):
        try:
            return function()
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.5)
    return function()


def restart_postgres():
    """Restart the local PostgreSQL cluster; False if this machine cannot."""
    if not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        return False
    # The cluster the tests use (behind a pooler, the server's port, not the pooler's), not merely the first.
    port = str(pgbouncer.session_params(connection)["port"] or 5432)
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout
    clusters = [line.split() for line in listed.splitlines() if line.split()[2:3] == [port]]
    if not clusters:
        return False
    version, name = clusters[0][:2]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"],
        check=True,
        capture_output=True,
    )
    connection.close()
    return True


def database_connections():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def report(title, figures):
    width = max(len(name) for name in figures)
    lines = [f"\n== {title} =="] + [f"  {name.ljust(width)} : {value}" for name, value in figures.items()]
    print("\n".join(lines))


def assert_every_job_done_once(count):
    executions = Execution.objects
    assert executions.filter(overlapped=True).count() == 0, "two runs of one job overlapped"
    assert Effect.objects.count() == count, "a side effect is missing"
    assert Job.objects.filter(status=Status.COMPLETED).count() == count, "a job did not complete"
    settled = JobRun.objects.filter(outcome="completed").values("job").annotate(n=Count("id"))
    assert settled.count() == count and not settled.filter(n__gt=1).exists(), "a job was settled twice"


def test_kill_storm_and_a_database_restart_lose_nothing(fleet):
    total = 20_000
    kinetik.create_many("test.effect", [{} for _ in range(total)])
    workers = fleet("alpha", "--concurrency", "2", "-v", "0")
    for _ in range(4):
        workers.start()
    started = time.monotonic()
    kills = restarts = 0
    peak_connections = 0
    next_kill = started + 2.5
    done = 0
    while done < total:
        assert time.monotonic() - started < 300, f"only {done} of {total} jobs done after 300s"
        time.sleep(0.25)
        done = query(lambda: Job.objects.filter(status=Status.COMPLETED).count())
        peak_connections = max(peak_connections, query(database_connections))
        if time.monotonic() >= next_kill and done < total * 0.9:
            if workers.kill_one(signal.SIGKILL) is None:
                continue
            kills += 1
            workers.start()
            next_kill = time.monotonic() + random.uniform(2.0, 3.5)
        if not restarts and done >= total * 0.4:
            if restart_postgres():
                restarts = 1
            elif IN_CI:
                pytest.fail("CI must be able to restart PostgreSQL (pg_ctlcluster as root)")
    elapsed = time.monotonic() - started
    workers.stop()
    executions = Execution.objects.count()
    report(
        "kill storm",
        {
            "jobs": total,
            "completed": done,
            "seconds": f"{elapsed:.1f}",
            "workers SIGKILLed": kills,
            "PostgreSQL restarts": restarts,
            "ghost recoveries": JobRun.objects.filter(outcome="lost").count(),
            "runs that failed (database gone)": JobRun.objects.filter(outcome="failed").count(),
            "executions": executions,
            "re-runs": executions - total,
            "duplicate side effects avoided": Execution.objects.filter(duplicate=True).count(),
            "overlapping runs": Execution.objects.filter(overlapped=True).count(),
            "peak database connections": peak_connections,
        },
    )
    assert kills >= 3
    assert_every_job_done_once(total)
    # A query killed by the restart is the outage's doing: interrupted and put back, not failed.
    assert not JobRun.objects.filter(outcome="failed").exists()
    assert JobRun.objects.filter(outcome="lost").exists(), "no ghost was recovered: the kills hit nothing"
    # 4 workers x (2 job threads + main loop + heartbeat + settler + wake-up
    # listener + event publisher) + this test; killed ones must not linger.
    assert peak_connections <= 4 * 7 + 4


def test_timeout_storm_with_threads_keeps_workers_serving(fleet):
    storm = kinetik.create_many("test.hang", [{"seconds": 3600} for _ in range(20)], retries=1, retry_delay=0)
    normal = kinetik.create_many("test.effect", [{} for _ in range(300)])
    workers = fleet("alpha", "--concurrency", "4", "-v", "0")
    for _ in range(2):
        workers.start()
    started = time.monotonic()
    storm_ids = [job.pk for job in storm]
    while Job.objects.filter(pk__in=storm_ids, status=Status.TIMEOUT).count() < len(storm_ids):
        assert time.monotonic() - started < 60, "the timeout storm did not end"
        time.sleep(0.2)
    while Job.objects.filter(task="test.effect", status=Status.COMPLETED).count() < len(normal):
        assert time.monotonic() - started < 90
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    peak_connections = database_connections()

    def runaways_recorded():
        return sum(Worker.objects.filter(state="online").values_list("runaway_threads", flat=True))

    # A heartbeat (every lease / 3) records the runaway threads.
    wait_for(lambda: runaways_recorded() >= 1, 10)
    runaways = runaways_recorded()
    workers.stop()
    report(
        "timeout storm, threads",
        {
            "jobs that never return": len(storm),
            "timeouts (2 attempts each)": JobRun.objects.filter(outcome="timeout").count(),
            "normal jobs completed": len(normal),
            "seconds": f"{elapsed:.1f}",
            "runaway threads when it ended": runaways,
            "database connections": peak_connections,
        },
    )
    assert JobRun.objects.filter(outcome="timeout").count() == 2 * len(storm)
    assert runaways >= 1
    assert set(workers.exits) == {0}


def test_timeout_storm_with_processes_kills_the_code(fleet):
    storm = kinetik.create_many("test.spin", [{} for _ in range(8)])
    normal = kinetik.create_many("test.effect", [{} for _ in range(200)])
    workers = fleet("alpha", "--processes", "2", "--concurrency", "1", "-v", "1")  # one job a process: a hard kill
    workers.start()
    started = time.monotonic()
    storm_ids = [job.pk for job in storm]
    while Job.objects.filter(pk__in=storm_ids, status=Status.TIMEOUT).count() < len(storm_ids):
        assert time.monotonic() - started < 90, "the timeout storm did not end"
        time.sleep(0.2)
    while Job.objects.filter(task="test.effect", status=Status.COMPLETED).count() < len(normal):
        assert time.monotonic() - started < 120
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    workers.stop()
    output = workers.output()
    replaced = output.count("ended itself to kill a timed-out job")
    report(
        "timeout storm, processes",
        {
            "CPU-bound jobs that never return": len(storm),
            "timeouts": JobRun.objects.filter(outcome="timeout").count(),
            "processes replaced to kill them": replaced,
            "normal jobs completed": len(normal),
            "seconds": f"{elapsed:.1f}",
        },
    )
    assert replaced == len(storm)
    assert workers.exits == [0]
    lateness = sorted(
        (run.finished_at - run.started_at).total_seconds() - 1.0 for run in JobRun.objects.filter(outcome="timeout")
    )
    report(
        "timeout lateness of CPU-bound jobs, processes (1 s timeout)",
        {"median (s)": f"{lateness[len(lateness) // 2]:.2f}", "worst (s)": f"{lateness[-1]:.2f}"},
    )
    assert lateness[-1] < 1.0


def ticks(directory):
    """{(job id, pid): [times]} from test.tick's files."""
    found = {}
    for name in os.listdir(directory):
        job_id, pid = (int(part) for part in name.split("-"))
        with open(os.path.join(directory, name)) as lines:
            found[(job_id, pid)] = [float(line) for line in lines if line.strip()]
    return found


@pytest.mark.parametrize(
    "mode", [["--concurrency", "4"], ["--processes", "2", "--concurrency", "2"]], ids=["threads", "processes"]
)
def test_a_cut_off_worker_ends_its_attempts_before_another_takes_them(fleet, tmp_path, mode):
    database = connection.settings_dict
    link = Link((database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)))
    try:
        cut_off = fleet("alpha", *mode, "-v", "1")  # a 2 s lease
        cut_off.env["KINETIK_TEST_DB_PORT"] = str(link.port)
        cut_off.start()
        jobs = kinetik.create_many("test.tick", [{"directory": str(tmp_path), "seconds": 6} for _ in range(4)])
        assert wait_for(lambda: len(os.listdir(tmp_path)) == 4, timeout=60), "the cut-off worker did not start them"
        other = fleet("alpha", "--concurrency", "4", "-v", "1")
        rescuer = other.start()
        assert wait_for(lambda: Worker.objects.filter(pid=rescuer.pid, state="online").exists(), timeout=60)
        cut_at = time.time()
        link.cut()
        ids = [job.pk for job in jobs]
        assert wait_for(lambda: Job.objects.filter(pk__in=ids, status=Status.COMPLETED).count() == 4, timeout=60)
        found = ticks(tmp_path)
        ended, rescued = [], []
        for job_id in ids:
            before = [times for (job, pid), times in found.items() if job == job_id and pid != rescuer.pid]
            after = found.get((job_id, rescuer.pid), [])
            assert before and after, f"job {job_id} did not run on both sides of the cut"
            last_before = max(max(times) for times in before)
            assert last_before < min(after), f"job {job_id} ran in two places at once"
            ended.append(last_before - cut_at)
            rescued.append(min(after) - cut_at)
        if "--processes" not in mode:
            assert cut_off.processes[0].wait(timeout=30) == 4  # ExitCode.FENCED
        link.heal()
        other.stop()
        cut_off.stop()
    finally:
        link.close()
    output = cut_off.output()
    assert "ending this process so that its" in output
    report(
        f"a network cut, {' '.join(mode)}, 2 s lease",
        {
            "jobs running on the cut-off worker": len(ids),
            "cut to its last tick (s), latest": f"{max(ended):.2f}",
            "cut to the other worker's first tick (s)": f"{min(rescued):.2f} - {max(rescued):.2f}",
            "overlapping runs": 0,
        },
    )


@pytest.mark.parametrize(
    "mode", [["--concurrency", "2"], ["--processes", "2", "--concurrency", "1"]], ids=["threads", "processes"]
)
def test_cancelled_stubborn_jobs_give_their_slots_back(fleet, tmp_path, mode):
    jobs = kinetik.create_many("test.tick", [{"directory": str(tmp_path), "seconds": 60} for _ in range(22)])
    workers = fleet("alpha", *mode, "-v", "1")
    workers.env["KINETIK_TEST_CANCEL_GRACE"] = "500ms"
    workers.start()
    ids = [job.pk for job in jobs]
    running = lambda: set(Job.objects.filter(pk__in=ids, status=Status.ACTIVE).values_list("pk", flat=True))  # noqa: E731
    assert wait_for(lambda: len(running()) == 2, timeout=60)
    freed, stopped = [], {}
    for _ in range(20):
        victim = min(running())
        others = running() - {victim}
        cancelled_at = time.time()
        kinetik.cancel(victim)
        assert wait_for(lambda: len(running() - others) >= 1, timeout=30), "no slot came back"  # noqa: B023
        freed.append(time.time() - cancelled_at)
        stopped[victim] = cancelled_at
    elapsed_ticks = ticks(tmp_path)
    workers.stop()
    runs = JobRun.objects.filter(job__in=list(stopped), outcome="cancelled").count()
    # With processes the code is killed: its ticks end within the grace and a look.
    late = [
        max(times) - stopped[job]
        for (job, _), times in elapsed_ticks.items()
        if job in stopped and "--processes" in mode
    ]
    freed.sort()
    report(
        f"20 cancels of running stubborn jobs, {' '.join(mode)}, 0.5 s grace",
        {
            "cancel to a free slot, median (s)": f"{freed[len(freed) // 2]:.2f}",
            "cancel to a free slot, worst (s)": f"{freed[-1]:.2f}",
            "cancelled attempts recorded": runs,
            "code still running after cancel + 2 s": sum(1 for seconds in late if seconds > 2.0),
        },
    )
    assert runs == 20
    assert freed[-1] < 5.0
    assert all(seconds < 2.0 for seconds in late)


def test_a_database_restart_under_running_queries_is_not_the_jobs_fault(fleet):
    # retries=0: before, a query killed by the restart failed its job for good.
    jobs = kinetik.create_many("test.query_slowly", [{"seconds": 1.0} for _ in range(16)])
    ids = [job.pk for job in jobs]
    workers = fleet("alpha", "--concurrency", "2", "-v", "1", lease="10s")
    for _ in range(2):
        workers.start()
    assert wait_for(lambda: query(lambda: Job.objects.filter(status=Status.ACTIVE).count()) == 4, timeout=60)
    time.sleep(0.3)  # their queries are in flight
    if not restart_postgres():
        if IN_CI:
            pytest.fail("CI must be able to restart PostgreSQL (pg_ctlcluster as root)")
        pytest.skip("cannot restart PostgreSQL here")
    started = time.monotonic()
    while query(lambda: Job.objects.filter(pk__in=ids, status=Status.COMPLETED).count()) < len(ids):
        assert time.monotonic() - started < 90, "the jobs did not all complete after the restart"
        failed = query(lambda: list(Job.objects.filter(pk__in=ids, status=Status.FAILED).values_list("error")))
        assert not failed, f"a job failed because the database restarted: {failed[0]}"
        time.sleep(0.2)
    workers.stop()
    interrupted = JobRun.objects.filter(job__in=ids, outcome="interrupted")
    report(
        "PostgreSQL restarted under 4 running queries (retries=0)",
        {
            "jobs": len(ids),
            "completed": Job.objects.filter(pk__in=ids, status=Status.COMPLETED).count(),
            "attempts interrupted and put back": interrupted.count(),
            "failed": Job.objects.filter(pk__in=ids, status=Status.FAILED).count(),
        },
    )
    assert interrupted.exists(), "the restart hit no running query: the test tested nothing"
    assert all(job.attempts == 1 for job in Job.objects.filter(pk__in=ids))  # the outage used no attempt


def test_sigterm_during_a_drain_puts_jobs_back_and_loses_nothing(fleet):
    total = 3_000
    kinetik.create_many("test.effect", [{"seconds": 0.02} for _ in range(total)])
    workers = fleet("alpha", "--concurrency", "2", "--shutdown-timeout", "10ms", "-v", "0")
    for _ in range(3):
        workers.start()
    started = time.monotonic()
    terms = 0
    while Job.objects.filter(status=Status.COMPLETED).count() < total:
        assert time.monotonic() - started < 180
        time.sleep(1.0)
        if Job.objects.filter(status=Status.COMPLETED).count() < total * 0.9:
            code = workers.kill_one(signal.SIGTERM)
            if code is None:
                continue
            assert code == 0, "a worker did not exit cleanly on SIGTERM"
            terms += 1
            workers.start()
    elapsed = time.monotonic() - started
    workers.stop()
    interrupted = JobRun.objects.filter(outcome="interrupted").count()
    report(
        "SIGTERM during a drain",
        {
            "jobs": total,
            "seconds": f"{elapsed:.1f}",
            "workers stopped with SIGTERM": terms,
            "runs interrupted and put back": interrupted,
            "re-runs": Execution.objects.count() - total,
            "overlapping runs": Execution.objects.filter(overlapped=True).count(),
        },
    )
    assert terms >= 3 and interrupted >= 1
    assert set(workers.exits) == {0}
    assert_every_job_done_once(total)


class PrivateRedis:
    """A redis-server of the test's own, so it can be flushed, killed and restarted."""

    def __init__(self, port=6391):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process = None

    def start(self):
        if not shutil.which("redis-server"):
            if IN_CI:
                pytest.fail("CI must have redis-server for the Redis fault tests")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        return client

    def kill(self):
        self.process.kill()
        self.process.wait()

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def private_redis(settings):
    from django_kinetik.fastpath.connection import forget_clients

    server = PrivateRedis()
    client = server.start()
    settings.KINETIK = {**settings.KINETIK, "REDIS": server.url, "REDIS_PREFIX": "faults"}
    forget_clients()
    yield server, client
    forget_clients()
    server.close()


def redis_fleet(fleet, server):
    workers = fleet("alpha", "--concurrency", "2", "-v", "1")
    workers.env["KINETIK_TEST_REDIS"] = server.url
    workers.env["KINETIK_TEST_REDIS_PREFIX"] = "faults"
    return workers


def drain_through_a_redis_fault(fleet, private_redis, fault):
    """Drain jobs with three workers on the fast path; ``fault`` strikes at 30%."""
    server, client = private_redis
    total = 6_000
    kinetik.create_many("test.effect", [{} for _ in range(total)])
    assert client.zcard("faults:queue:alpha") == total
    workers = redis_fleet(fleet, server)
    for _ in range(3):
        workers.start()
    started = time.monotonic()
    struck = refilled = None
    done = 0
    while done < total:
        assert time.monotonic() - started < 180, f"only {done} of {total} jobs done after 180s"
        time.sleep(0.1)
        done = Job.objects.filter(status=Status.COMPLETED).count()
        if struck is None and done >= total * 0.3:
            client = fault(server, client)
            struck = done
        elif struck is not None and refilled is None:
            try:
                if client.zcard("faults:queue:alpha"):
                    refilled = done
            except Exception:
                pass
    elapsed = time.monotonic() - started
    workers.stop()
    output = workers.output()
    return {
        "jobs": total,
        "seconds": f"{elapsed:.1f}",
        "completed when it struck": struck,
        "completed when Redis held the queue again": refilled,
        "worker warnings about Redis": output.count("Redis is unavailable"),
        "reconciles that pushed jobs back": output.count("queued job(s) back into Redis"),
        "re-runs": Execution.objects.count() - total,
        "overlapping runs": Execution.objects.filter(overlapped=True).count(),
    }, output


def test_redis_flushed_mid_drain_loses_nothing(fleet, private_redis):
    def flush(server, client):
        client.flushall()
        return client

    figures, output = drain_through_a_redis_fault(fleet, private_redis, flush)
    report("Redis flushed mid-drain", figures)
    assert_every_job_done_once(figures["jobs"])
    assert figures["reconciles that pushed jobs back"] >= 1, output[-3000:]


def test_redis_restarted_mid_drain_loses_nothing(fleet, private_redis):
    def restart(server, client):
        server.kill()
        time.sleep(2)  # the workers carry on from the database meanwhile
        return server.start()

    figures, output = drain_through_a_redis_fault(fleet, private_redis, restart)
    report("Redis killed, down 2s, restarted empty, mid-drain", figures)
    assert_every_job_done_once(figures["jobs"])
    assert figures["worker warnings about Redis"] >= 1, output[-3000:]
    assert figures["reconciles that pushed jobs back"] >= 1, output[-3000:]
