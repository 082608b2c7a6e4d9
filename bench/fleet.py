#!/usr/bin/env python3
"""Workers on hosts of their own, a network hop from PostgreSQL (and Redis): what latency costs.

    sudo python bench/fleet.py                          # 1, 2 and 4 hosts at 0, 0.5 and 2 ms each way
    sudo python bench/fleet.py --delays 0 2 --processes 4 --jobs 40000
    sudo python bench/fleet.py --redis                  # the Redis fast path, through the same hop

Each "host" is a network namespace (``kfleet-N``, 10.219.N.2) joined to this
one by a veth pair; PostgreSQL and Redis stay on this machine's loopback.
Between them a delaying TCP proxy (this machine's kernel has no ``netem``)
holds every chunk for D milliseconds in each direction, so a round trip costs
2D more, without limiting throughput: chunks are stamped when read and written
when due, in order, by a thread per direction.

For each delay and number of hosts it pre-creates N no-op jobs, starts one
``kinetik_worker --burst`` at its defaults in each namespace, and reports the
drain (jobs / first start to last finish, from the database). Then, with one
idle worker in a namespace, enqueue-to-start latency (p50/p99). "direct" is
the same workers in this namespace on loopback, without the proxy; "proxy 0"
is the proxy with no delay, which shows what the proxy itself costs. Needs
root (``ip netns``). The database is ``kinetik_fleet_bench``, created anew.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import percentile, prepare_database  # noqa: E402

SUBNET = "10.219"
PG_PORT, REDIS_PORT = 15432, 16379
SERVERS = {PG_PORT: ("127.0.0.1", 5432), REDIS_PORT: ("127.0.0.1", 6379)}


# -- the hosts -----------------------------------------------------------------


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def make_hosts(count: int) -> None:
    for n in range(1, count + 1):
        remove_host(n)
        sh("ip", "netns", "add", f"kfleet-{n}")
        sh("ip", "link", "add", f"kfh{n}", "type", "veth", "peer", "name", f"kfn{n}")
        sh("ip", "link", "set", f"kfn{n}", "netns", f"kfleet-{n}")
        sh("ip", "addr", "add", f"{SUBNET}.{n}.1/24", "dev", f"kfh{n}")
        sh("ip", "link", "set", f"kfh{n}", "up")
        inside = ("ip", "netns", "exec", f"kfleet-{n}", "ip")
        sh(*inside, "addr", "add", f"{SUBNET}.{n}.2/24", "dev", f"kfn{n}")
        sh(*inside, "link", "set", f"kfn{n}", "up")
        sh(*inside, "link", "set", "lo", "up")


def remove_host(n: int) -> None:
    subprocess.run(["ip", "netns", "del", f"kfleet-{n}"], capture_output=True)
    subprocess.run(["ip", "link", "del", f"kfh{n}"], capture_output=True)


# -- the delaying proxy --------------------------------------------------------


class DelayingProxy:
    """Listens on ``port`` on every address of this namespace; forwards to the server, D late each way."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.delay = 0.0
        self.target = target
        self.listener = socket.create_server(("0.0.0.0", port), reuse_port=True, backlog=512)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for source, sink in ((client, server), (server, client)):
                queue: deque[tuple[float, bytes]] = deque()
                ready = threading.Condition()
                threading.Thread(target=self._read, args=(source, queue, ready), daemon=True).start()
                threading.Thread(target=self._write, args=(sink, queue, ready), daemon=True).start()

    def _read(self, source: socket.socket, queue: deque[tuple[float, bytes]], ready: threading.Condition) -> None:
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                chunk = b""
            with ready:
                queue.append((time.monotonic() + self.delay, chunk))
                ready.notify()
            if not chunk:
                return

    def _write(self, sink: socket.socket, queue: deque[tuple[float, bytes]], ready: threading.Condition) -> None:
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, chunk = queue.popleft()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if not chunk:
                try:
                    sink.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                sink.sendall(chunk)
            except OSError:
                return


# -- measuring -----------------------------------------------------------------


def worker(host: int | None, redis: bool, *args: str) -> subprocess.Popen[bytes]:
    """``kinetik_worker`` in namespace ``host`` through the proxy (None: here, on loopback)."""
    env = dict(os.environ)
    prefix: list[str] = []
    if host is not None:
        prefix = ["ip", "netns", "exec", f"kfleet-{host}"]
        env.update(PGHOST=f"{SUBNET}.{host}.1", PGPORT=str(PG_PORT))
        if redis:
            env["KINETIK_BENCH_REDIS"] = f"redis://{SUBNET}.{host}.1:{REDIS_PORT}/0"
    command = [*prefix, sys.executable, "-m", "django", "kinetik_worker", "bench", "-v", "0", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def drain(hosts: list[int | None], jobs: int, redis: bool) -> float:
    from django.db.models import Max, Min

    import django_kinetik as kinetik
    from django_kinetik.models import Job

    Job.objects.all().delete()
    kinetik.create_many("bench.noop", [{"n": 1}] * jobs)
    processes = [worker(host, redis, "--burst") for host in hosts]
    codes = [process.wait() for process in processes]
    assert codes == [0] * len(hosts), f"workers exited {codes}"
    done = Job.objects.filter(status="completed").count()
    assert done == jobs, f"only {done} of {jobs} jobs completed"
    span = Job.objects.aggregate(first=Min("started_at"), last=Max("finished_at"))
    Job.objects.all().delete()
    return jobs / (span["last"] - span["first"]).total_seconds()


def latency(host: int | None, redis: bool, samples: int) -> tuple[float, float]:
    import django_kinetik as kinetik
    from django_kinetik.models import Worker

    process = worker(host, redis)
    try:
        deadline = time.monotonic() + 30
        while not Worker.objects.filter(state="online").exists():
            assert time.monotonic() < deadline, "worker did not start"
            time.sleep(0.05)
        time.sleep(1.0)
        found = []
        for _ in range(samples):
            time.sleep(random.uniform(0.0, 0.5))
            job = kinetik.create("bench.noop", {"n": 1})
            job.wait(timeout="10s")
            job.refresh_from_db(fields=["started_at", "created_at"])
            found.append((job.started_at - job.created_at).total_seconds() * 1000)
    finally:
        process.terminate()
        process.wait()
    return statistics.median(found), percentile(found, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", type=float, nargs="*", default=[0.0, 0.5, 2.0], help="ms each way")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2, 4], help="hosts, one worker each")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--redis", action="store_true", help="the Redis fast path, through the proxy too")
    parser.add_argument("--no-direct", action="store_true", help="skip the loopback run without the proxy")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/fleet.py makes network namespaces: run it as root")

    os.environ.update(DJANGO_SETTINGS_MODULE="bench.settings", KINETIK_BENCH_DB="postgres")
    os.environ["KINETIK_BENCH_PG_NAME"] = "kinetik_fleet_bench"
    if args.redis:
        os.environ["KINETIK_BENCH_REDIS"] = "redis://127.0.0.1:6379/0"
    import django

    django.setup()
    prepare_database("postgres")

    hosts = max(args.processes)
    proxies = [DelayingProxy(port, target) for port, target in SERVERS.items()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        make_hosts(hosts)
        settings: list[tuple[str, float | None]] = [] if args.no_direct else [("direct (loopback)", None)]
        settings += [(f"proxy {delay:g} ms each way", delay) for delay in args.delays]
        print(f"{args.jobs:,} jobs per drain; load {os.getloadavg()[0]:.2f}", flush=True)
        print(f"{'setting':<24}{'hosts':>6}{'drain jobs/s':>14}{'p50 ms':>9}{'p99 ms':>9}", flush=True)
        figures: dict[tuple[str, int], float] = {}
        for label, delay in settings:
            for proxy in proxies:
                proxy.delay = (delay or 0.0) / 1000
            for count in args.processes:
                where: list[int | None] = [None] * count if delay is None else list(range(1, count + 1))
                rate = drain(where, args.jobs, args.redis)
                figures[(label, count)] = rate
                p50 = p99 = ""
                if count == min(args.processes):
                    low, high = latency(where[0], args.redis, args.samples)
                    p50, p99 = f"{low:.1f}", f"{high:.1f}"
                print(f"{label:<24}{count:>6}{rate:>14,.0f}{p50:>9}{p99:>9}", flush=True)
        print(f"load {os.getloadavg()[0]:.2f}", flush=True)
        top = max(args.processes)
        if not args.no_direct and 2.0 in args.delays:
            ratio = figures[("proxy 2 ms each way", top)] / figures[("direct (loopback)", top)]
            print(f"{top} hosts at 4 ms round trip drain {ratio:.0%} of loopback (the aim: at least 50%)")
    finally:
        for n in range(1, hosts + 1):
            remove_host(n)


if __name__ == "__main__":
    main()
