"""A Redis master, a replica and three Sentinels, started by the tests with Debian's binaries.

``Topology.start()`` runs ``redis-server`` twice (a master, and a replica of
it) and ``redis-sentinel`` three times, all on loopback ports of this
environment's own (so two tox environments can run side by side), in a fresh
directory, and waits until the Sentinels agree on the master, know the
replica and each other: from then on a failover can happen. Each test that
fails the master over gets a topology of its own; ``stop()`` kills them all.

Sentinel is told a master is down after 1 s without an answer (its default is
30 s), so a test sees a whole failover in a few seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

SERVICE = "kinetik-test"
DOWN_AFTER_MS = 1000


def _binary(name: str) -> str:
    found = shutil.which(name) or f"/usr/bin/{name}"
    if not os.path.exists(found):
        raise FileNotFoundError(f"{name} is not installed: apt-get install redis-server redis-sentinel")
    return found


def available() -> bool:
    try:
        _binary("redis-server")
        _binary("redis-sentinel")
    except FileNotFoundError:
        return False
    return True


class Topology:
    def __init__(self, name: str = "") -> None:
        suffix = f"{os.environ.get('TOX_ENV_NAME', 'local')}:{name}:{os.getpid()}"
        # Below Linux's ephemeral range (32768 on), where outgoing connections take ports.
        base = 20000 + zlib.crc32(suffix.encode()) % 12000 // 10 * 10
        for _ in range(1200):
            if all(_free(port) for port in range(base, base + 8)):
                break
            base = 20000 + (base - 20000 + 10) % 12000
        else:
            raise RuntimeError("no 8 free ports in a row between 20000 and 32000 for the Sentinel topology")
        self.master_port = base
        self.replica_port = base + 1
        self.sentinel_ports = [base + 5, base + 6, base + 7]
        self.directory = Path(tempfile.mkdtemp(prefix="kinetik-sentinel-"))
        self.processes: dict[int, subprocess.Popen] = {}

    # -- what tests point kinetik at ------------------------------------------

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def client(self, port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def sentinel(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.sentinel_ports[0], socket_timeout=2, decode_responses=True)

    def master_address(self) -> tuple[str, int]:
        host, port = self.sentinel().execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        return host, int(port)

    # -- life -----------------------------------------------------------------

    def start(self) -> Topology:
        self._server(self.master_port)
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for port in self.sentinel_ports:
            config = self.directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {self.directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.processes[port] = subprocess.Popen(
                [_binary("redis-sentinel"), str(config), "--logfile", str(self.directory / f"sentinel-{port}.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.wait_until_settled(self.master_port)
        return self

    def _server(self, port: int, *more: str) -> None:
        self.processes[port] = subprocess.Popen(
            [
                _binary("redis-server"),
                *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--dir", str(self.directory), "--dbfilename", f"dump-{port}.rdb"),
                *("--logfile", str(self.directory / f"redis-{port}.log")),
                *more,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_until_settled(self, master_port: int, timeout: float = 30.0) -> None:
        """Until every Sentinel names ``master_port`` as master, sees a healthy replica, and knows the others."""
        import redis

        deadline = time.monotonic() + timeout
        last = "nothing answered"
        while time.monotonic() < deadline:
            try:
                if all(self._settled(port, master_port) for port in self.sentinel_ports):
                    return
                last = "the Sentinels do not agree yet"
            except (redis.exceptions.RedisError, OSError) as error:
                last = str(error)
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinel topology did not settle in {timeout:.0f}s: {last}\n{self.logs()}")

    def _settled(self, sentinel_port: int, master_port: int) -> bool:
        import redis

        sentinel = redis.Redis(host="127.0.0.1", port=sentinel_port, socket_timeout=1, decode_responses=True)
        try:
            master = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
            if not master or int(master[1]) != master_port:
                return False
            replicas = sentinel.execute_command("SENTINEL", "replicas", SERVICE)
            others = sentinel.execute_command("SENTINEL", "sentinels", SERVICE)
        finally:
            sentinel.close()
        healthy = [
            replica
            for replica in map(_fields, replicas)
            if replica.get("flags") == "slave" and replica.get("master-link-status") == "ok"
        ]
        return bool(healthy) and len(others) == len(self.sentinel_ports) - 1

    def failover(self) -> None:
        """SENTINEL FAILOVER: promote the replica now, without the others' agreement (a planned switch)."""
        self.sentinel().execute_command("SENTINEL", "FAILOVER", SERVICE)

    def kill(self, port: int) -> None:
        """SIGKILL the Redis on ``port`` (a master's host lost): the Sentinels must notice and agree."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait()
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def logs(self) -> str:
        logs = sorted(self.directory.glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}" for path in logs)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _fields(flat: list) -> dict[str, str]:
    """SENTINEL replicas answers each replica as a flat [name, value, name, value...] list."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))
