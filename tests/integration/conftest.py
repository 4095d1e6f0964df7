"""Real redis-server fixtures. A missing server fails the run; nothing skips."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from abe_redis import RedisMessageQueueBackend, Settings
from abe_redis._core.deadletters import dead_letter_stream
from abe_redis.embedded import SERVER_BINARY_VARIABLE, RedisServer, redis_server_binary

from ..helpers import admin

pytestmark = pytest.mark.integration
DEFAULT = ("127.0.0.1", 6379)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The server on 127.0.0.1:6379, or one started for the session (always,
    when ``ABE_REDIS_SERVER`` names another engine to test)."""
    if not os.environ.get(SERVER_BINARY_VARIABLE) and _answers(*DEFAULT):
        yield "redis://127.0.0.1:6379/0"
        return
    if redis_server_binary() is None:
        pytest.fail("integration tests need redis-server: none on 127.0.0.1:6379 and none on PATH")
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A redis-server of the test module's own, which its tests may flush and
    give ACL users (the shared one on 6379 is left alone)."""
    with RedisServer() as made:
        yield made


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def names(redis_url: str) -> Iterator[Callable[[str], str]]:
    """Unique key names per test, deleted afterwards (the server is shared)."""
    tag = uuid.uuid4().hex[:8]
    made: list[str] = []

    def name(base: str) -> str:
        made.append(f"t{tag}:{base}")
        return made[-1]

    yield name
    if made:
        with admin(redis_url) as client:
            client.delete(
                *made, *(dead_letter_stream(m) for m in made), *(m + ":dlq" for m in made)
            )


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with admin(redis_url) as client:
        yield client


@pytest.fixture
def settings(redis_url: str, names: Callable[[str], str]) -> Settings:
    return Settings(
        url=redis_url,
        registry_key=names("streams"),
        consumer_group=names("group"),
        block_ms=100,
        claim_min_idle_ms=300,
    )


@pytest.fixture
async def backend(settings: Settings) -> AsyncIterator[RedisMessageQueueBackend]:
    async with RedisMessageQueueBackend(settings) as b:
        yield b


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A private redis-server (AOF on) that a test may stop and restart."""
    with RedisServer(appendonly=True) as server:
        yield server
