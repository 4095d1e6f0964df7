"""A primary, a replica and three sentinels on loopback ports, stopped by PID."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from abe_redis.embedded import RedisServer, free_port, redis_server_binary

from ..helpers import admin

SERVICE = "queue"


class SentinelProcess:
    """``redis-server <conf> --sentinel`` (Debian has no redis-sentinel binary)."""

    def __init__(self, master_port: int, quorum: int = 2, tls: Tls | None = None) -> None:
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self._dir = tempfile.TemporaryDirectory(prefix="abe-redis-sentinel-")
        self.conf = Path(self._dir.name) / "sentinel.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self._dir.name}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} {quorum}",
            f"sentinel down-after-milliseconds {SERVICE} 1000",
            f"sentinel failover-timeout {SERVICE} 5000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        if tls is not None:
            # Clients on the TLS port; the sentinel itself speaks TLS to the servers.
            lines += [f"tls-port {self.tls_port}", *(" ".join(o) for o in tls.options())]
        self.conf.write_text("\n".join(lines) + "\n")
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


@dataclass(frozen=True)
class Tls:
    """A certificate for 127.0.0.1 that is its own CA, for servers and sentinels."""

    cert: Path
    key: Path

    def options(self) -> list[tuple[str, str]]:
        return [
            ("tls-cert-file", str(self.cert)),
            ("tls-key-file", str(self.key)),
            ("tls-ca-cert-file", str(self.cert)),
            ("tls-auth-clients", "no"),
            ("tls-replication", "yes"),
        ]


class SentinelSet:
    """A primary, one replica and three sentinels watching them; ``server_args``
    go to both servers."""

    def __init__(self, *server_args: str, tls: Tls | None = None) -> None:
        self._server_args = server_args
        self.tls = tls
        self._tls_ports = (free_port(), free_port()) if tls is not None else None
        self._stack = ExitStack()
        self.primary: RedisServer
        self.replica: RedisServer
        self.sentinels: list[SentinelProcess] = []

    @property
    def url(self) -> str:
        """The sentinels' URL (their TLS ports with ``tls``: clients give ``REDIS_SSL``)."""
        hosts = ",".join(f"127.0.0.1:{s.tls_port or s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    @property
    def replica_port(self) -> int:
        """The replica's port as the sentinels name it (its TLS port with ``tls``)."""
        return self._tls_ports[1] if self._tls_ports is not None else self.replica.port

    def _tls_args(self, which: int) -> tuple[str, ...]:
        if self.tls is None or self._tls_ports is None:
            return ()
        options = [("tls-port", str(self._tls_ports[which])), *self.tls.options()]
        return tuple(word for name, value in options for word in (f"--{name}", value))

    def __enter__(self) -> SentinelSet:
        try:
            # The replica in sync at once, and either server a primary.
            # With TLS, both also keep a plain port, for the harness only.
            quick = ("--repl-diskless-sync-delay", "0", *self._server_args)
            primary = RedisServer(appendonly=True, extra=(*quick, *self._tls_args(0)))
            self.primary = self._stack.enter_context(primary)
            port = self._tls_ports[0] if self._tls_ports is not None else self.primary.port
            follow = (*quick, *self._tls_args(1), "--replicaof", "127.0.0.1", str(port))
            self.replica = self._stack.enter_context(RedisServer(appendonly=True, extra=follow))
            self._wait_synced()
            for _ in range(3):
                sentinel = SentinelProcess(port, tls=self.tls)
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

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: promote the replica while the primary is up."""
        with admin(f"redis://127.0.0.1:{self.sentinels[0].port}") as client:
            client.execute_command("SENTINEL", "FAILOVER", SERVICE)  # type: ignore[no-untyped-call]

    def master_port(self) -> int:
        """The port the sentinels name as the master now."""
        with admin(f"redis://127.0.0.1:{self.sentinels[0].port}") as client:
            _, port = client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
            )
        return int(port)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
