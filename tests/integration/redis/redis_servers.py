"""Redis servers and a Redis Cluster that a test starts itself on loopback ports.

``RedisServer`` runs one ``redis-server`` (optionally with an append-only file
written on every command, so it can be stopped and started again without
losing acknowledged writes). ``RedisClusterProcesses`` runs three masters
with ``--cluster-enabled yes`` and joins them with ``redis-cli --cluster
create``. Both bind 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.services import free_port

START_TIMEOUT_SECONDS = 20.0
SHARED_REDIS = ("127.0.0.1", 6379)
# A cluster node also listens on its port + 10000 (the cluster bus), so its
# own port must be 55535 or less.
MAX_CLUSTER_PORT = 55535


def free_cluster_port() -> int:
    """Return a free port P of 127.0.0.1 with P + 10000 free as well."""
    for _ in range(200):
        port = free_port()
        if port > MAX_CLUSTER_PORT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("found no free loopback port P <= 55535 whose cluster bus port P + 10000 is free")


def redis_binaries_missing() -> str | None:
    """Return why Redis cannot be started here, or None."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed"
    return None


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1."""

    directory: Path
    port: int = 0
    persistent: bool = False
    cluster: bool = False
    process: subprocess.Popen | None = None
    extra: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = self.port or (free_cluster_port() if self.cluster else free_port())
        self.directory.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        command = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
            "--appendonly", "yes" if self.persistent else "no",
        ]
        if self.persistent:
            command += ["--appendfsync", "always"]
        if self.cluster:
            command += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.directory / "nodes.conf"),
                "--cluster-node-timeout", "5000",
            ]
        return command + self.extra

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        client = self.client()
        while True:
            try:
                client.ping()
                return
            except (redis.ConnectionError, redis.BusyLoadingError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server on port {self.port} did not start: {self.log_tail()}"
                    ) from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Stop with SIGTERM, as an operator's restart does; the append-only file is kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def url(self, db: int = 0, prefix: str | None = None) -> str:
        suffix = f"?prefix={prefix}" if prefix else ""
        return f"redis://127.0.0.1:{self.port}/{db}{suffix}"

    def log_tail(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


class RedisClusterProcesses:
    """Three cluster masters on loopback ports, no replicas."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.servers = [
            RedisServer(directory / f"node-{index}", cluster=True) for index in range(masters)
        ]

    def start(self) -> None:
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for server in self.servers:
            client = server.client()
            try:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {server.port} did not reach cluster_state:ok")
                    time.sleep(0.1)
            finally:
                client.close()

    def stop(self) -> None:
        for server in self.servers:
            server.kill()

    def url(self, prefix: str | None = None) -> str:
        nodes = ",".join(f"127.0.0.1:{server.port}" for server in self.servers[:2])
        suffix = f"?prefix={prefix}" if prefix else ""
        return f"redis+cluster://{nodes}{suffix}"

    def masters_holding(self, pattern: str) -> dict[int, int]:
        """Return port -> number of keys matching ``pattern`` on that master."""
        counts = {}
        for server in self.servers:
            client = server.client()
            try:
                counts[server.port] = sum(1 for _ in client.scan_iter(match=pattern, count=1000))
            finally:
                client.close()
        return counts


def delete_prefix(host: str, port: int, db: int, prefix: str) -> int:
    """Delete every key starting with ``prefix``; return how many there were."""
    client = redis.Redis(host=host, port=port, db=db, socket_timeout=10)
    deleted = 0
    try:
        batch = []
        for key in client.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted
