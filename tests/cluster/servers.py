"""A real Redis Cluster on loopback ports, started and stopped by PID."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from contextlib import ExitStack
from types import TracebackType

import redis

from abe_redis.embedded import RedisServer

from ..helpers import admin


def redis_cli() -> str:
    """``redis-cli`` (or ``valkey-cli``, beside an engine under test)."""
    found = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if found is None:
        raise FileNotFoundError("cluster tests need redis-cli on PATH")
    return found


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (``port + 10000``) is free
    too. Ephemeral ports are often above 55535, where the bus port cannot be."""
    while True:
        port = random.randrange(20_000, 40_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


class LocalCluster:
    """``primaries`` primaries with ``replicas`` replicas each, on free
    loopback ports, made with ``redis-cli --cluster create``."""

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 2000) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.servers: list[RedisServer] = []
        self._stack = ExitStack()

    @property
    def urls(self) -> list[str]:
        """Every node's URL, primaries first (as created)."""
        return [s.url for s in self.servers]

    @property
    def url(self) -> str:
        """The URL of the first node: what a user would put in REDIS_URL."""
        return self.servers[0].url

    def __enter__(self) -> LocalCluster:
        try:
            for _ in range(self.primaries * (1 + self.replicas)):
                server = RedisServer(
                    cluster_port(),
                    extra=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(self.node_timeout_ms),
                        "--appendonly", "yes",
                        # Replicas in sync at once (the default waits 5 s to
                        # gather them): a replica never in sync is not promoted.
                        "--repl-diskless-sync-delay", "0",
                    ),
                )  # fmt: skip
                self.servers.append(self._stack.enter_context(server))
            subprocess.run(
                [
                    redis_cli(), "--cluster", "create",
                    *(f"127.0.0.1:{s.port}" for s in self.servers),
                    "--cluster-replicas", str(self.replicas), "--cluster-yes",
                ],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.wait_ok()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node says ``cluster_state:ok`` and agrees
        that every slot is served, and every replica is in sync."""
        deadline = time.monotonic() + timeout
        while True:
            running = [s for s in self.servers if s.process is not None]
            if all(self._ok(s) for s in running) and self._replicas_synced(running):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    @staticmethod
    def _ok(server: RedisServer) -> bool:
        try:
            with admin(server.url) as client:
                info = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return False
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text and "cluster_slots_ok:16384" in text

    def _replicas_synced(self, running: list[RedisServer]) -> bool:
        replicas = 0
        for server in running:
            try:
                with admin(server.url) as client:
                    info = client.info("replication")
            except redis.RedisError:
                return False
            if info.get("role") == "slave":
                replicas += 1
                if info.get("master_link_status") != "up":
                    return False
        return replicas >= len(running) - self.primaries

    def node_of(self, key: str) -> RedisServer:
        """The primary serving ``key`` now."""
        with admin(self.url) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))  # type: ignore[no-untyped-call]
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
                if start <= slot <= end:
                    port = int(primary[1])
                    return next(s for s in self.servers if s.port == port)
        raise LookupError(f"no node serves {key!r}")
