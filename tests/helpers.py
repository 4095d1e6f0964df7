"""Helpers shared by the facade and integration tests."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from abe_redis import AsyncConsumer


async def take(consumer: AsyncConsumer, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next ``n`` payloads, failing the test if they take over ``timeout`` seconds."""
    out = []
    with anyio.fail_after(timeout):
        for _ in range(n):
            out.append(await consumer.__anext__())
    return out


@contextlib.contextmanager
def admin(url: str, **options: Any) -> Iterator[redis.Redis]:
    """A plain redis-py client for looking at or arranging a server, closed after.

    Its pool is closed explicitly: before redis-py 5.0.1 a client made by
    ``from_url`` left its pool's sockets open on close().
    """
    client = redis.Redis.from_url(url, **options)
    try:
        yield client
    finally:
        client.close()
        client.connection_pool.disconnect()


def only_pool(topology: Any) -> Any:
    """The one pool of a topology on a single server (``REDIS_CLUSTER=false``,
    or ``auto`` once it found no cluster)."""
    from abe_redis._io.cluster import Cluster
    from abe_redis._io.topology import SingleNode

    if isinstance(topology, SingleNode):
        return topology.pool
    assert isinstance(topology, Cluster)
    assert topology.single, "a cluster has a pool per node"
    return topology.seed_pool


def run_demo(env: dict[str, str], *args: str) -> Any:
    """``python -m abe_redis demo --events 300`` with ``env`` (the main job,
    as the README runs it); the completed process."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "abe_redis", "demo", "--events", "300", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def clean_env() -> dict[str, str]:
    """This process's environment without REDIS_* and QUEUE_* variables."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "QUEUE_"))}


def reporter(capsys: Any, suite: str) -> Callable[[str], None]:
    """A ``report(line)`` that prints a figure into the test output, tagged
    ``[suite]``, even when output is captured."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n  [{suite}] {line}", flush=True)

    return say


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (``cert.pem``, ``key.pem``
    in ``folder``); the certificate doubles as the CA that trusts it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the TLS tests need the openssl command to make a certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
