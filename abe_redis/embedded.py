"""A throwaway ``redis-server`` on a free loopback port, or fakeredis' TCP server.

Used by the demo when no Redis is configured, and by the test suite for
servers it must restart or stop. The process is stopped by its PID. Without
a ``redis-server`` binary the demo falls back to :func:`fake_server`:
fakeredis speaking RESP on a loopback port, so the backend still runs on
its own connections.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from .errors import ConnectError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SERVER_BINARY_VARIABLE = "ABE_REDIS_SERVER"


def redis_server_binary() -> str | None:
    """The server binary to start: ``$ABE_REDIS_SERVER`` (another engine or
    version, such as a ``valkey-server``), else ``redis-server`` on PATH, or None."""
    chosen = os.environ.get(SERVER_BINARY_VARIABLE)
    if chosen:
        return chosen
    return shutil.which("redis-server")


class RedisServer:
    """Start ``redis-server`` on 127.0.0.1:``port`` in a temporary directory.

    Args:
        port: the port; a free one by default. Restarting reuses it.
        appendonly: keep an AOF (so a restart keeps the data).
        extra: further ``--option value`` arguments.
        cpus: run it pinned to these CPUs (``taskset -c``, e.g. ``"0"``); benchmarks.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly: bool = False,
        extra: tuple[str, ...] = (),
        cpus: str | None = None,
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.binary = binary
        self.port = port or free_port()
        self.appendonly = appendonly
        self.extra = extra
        self.cpus = cpus
        self._dir = tempfile.TemporaryDirectory(prefix="abe-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def version(self) -> str:
        """The server's name and version as ``--version`` prints them (``7.0.15``,
        ``Valkey 9.1.2``)."""
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        for word in out.split():
            if word.startswith("v="):
                return word[2:] if out.startswith("Redis") else f"{out.split()[0]} {word[2:]}"
        return "unknown"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it accepts connections."""
        pin = [] if self.cpus is None else ["taskset", "-c", self.cpus]
        args = [
            *pin,
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--dir", str(Path(self._dir.name)),
            "--daemonize", "no",
            "--logfile", "",
            "--loglevel", "warning",
            *self.extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConnectError(f"redis-server exited with code {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    # +PONG, or -NOAUTH with --requirepass: either way it is up.
                    if sock.recv(64)[:1] in (b"+", b"-"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise ConnectError(f"redis-server did not start on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop the server by its PID and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.close()  # its directory too: nothing is left for the GC to find
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def fake_server() -> Iterator[str]:
    """fakeredis' TCP server on a free loopback port, in a thread; yields its URL.

    Needs the ``fakeredis`` extra. fakeredis differs from Redis on streams
    in places: behaviour the package promises is proven on redis-server.
    """
    from fakeredis import TcpFakeServer

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
