"""A primary, a replica and three sentinels on loopback ports, stopped by PID."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import redis

from abe_redis.embedded import RedisServer, free_port, redis_server_binary

from ..helpers import admin

SERVICE = "queue"


class SentinelProcess:
    """``redis-server <conf> --sentinel`` (Debian has no redis-sentinel binary)."""

    def __init__(self, master_port: int, quorum: int = 2) -> None:
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="abe-redis-sentinel-")
        self.conf = Path(self._dir.name) / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self._dir.name}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} {quorum}\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SentinelProcess:
        binary = redis_server_binary()
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"sentinel on {self.port} did not start")

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._dir.cleanup()


class SentinelSet:
    """A primary, one replica and three sentinels watching them."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self.primary: RedisServer
        self.replica: RedisServer
        self.sentinels: list[SentinelProcess] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def __enter__(self) -> SentinelSet:
        try:
            quick = ("--repl-diskless-sync-delay", "0")  # the replica in sync at once
            self.primary = self._stack.enter_context(RedisServer(appendonly=True, extra=quick))
            follow = ("--replicaof", "127.0.0.1", str(self.primary.port))
            self.replica = self._stack.enter_context(RedisServer(appendonly=True, extra=follow))
            self._wait_synced()
            for _ in range(3):
                sentinel = SentinelProcess(self.primary.port)
                self._stack.callback(sentinel.close)
                self.sentinels.append(sentinel.start())
            self._wait_watching()
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

    def _wait_synced(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with admin(self.replica.url) as client:
                if client.info("replication").get("master_link_status") == "up":
                    return
            time.sleep(0.05)
        raise TimeoutError("the replica did not sync")

    def _wait_watching(self, timeout: float = 20) -> None:
        """Until every sentinel knows the replica and the other sentinels."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = 0
            for sentinel in self.sentinels:
                try:
                    with admin(f"redis://127.0.0.1:{sentinel.port}") as client:
                        info = client.execute_command("SENTINEL", "MASTER", SERVICE)  # type: ignore[no-untyped-call]
                except redis.RedisError:
                    continue
                if isinstance(info, list):
                    info = dict(zip(info[::2], info[1::2], strict=True))
                fields = {_text(k): _text(v) for k, v in info.items()}
                if int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2:
                    ready += 1
            if ready == len(self.sentinels):
                return
            time.sleep(0.1)
        raise TimeoutError("the sentinels did not find each other")

    def master_port(self) -> int:
        """The port the sentinels name as the master now."""
        with admin(f"redis://127.0.0.1:{self.sentinels[0].port}") as client:
            _, port = client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
            )
        return int(port)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
