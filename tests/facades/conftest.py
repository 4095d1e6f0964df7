"""The facades on the connections users get, against a private redis-server.

The server is this session's own (started on a free port, stopped by PID),
so each test may flush it: nothing else talks to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from abe_redis import RedisMessageQueueBackend, Settings, SyncRedisQueue
from abe_redis.embedded import RedisServer

from ..helpers import admin

FAST = Settings(block_ms=50, claim_min_idle_ms=1_000, registry_key="test:streams")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture(scope="session")
def facade_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def server_url(facade_server: RedisServer) -> str:
    """The private server's URL, flushed for this test."""
    with admin(facade_server.url) as client:
        client.flushall()
    return facade_server.url


@pytest.fixture
def raw(server_url: str) -> Iterator[redis.Redis]:
    """A plain client on the same server, to look at what was written."""
    with admin(server_url) as client:
        yield client


def fast(url: str, **overrides: object) -> Settings:
    fields = {name: getattr(FAST, name) for name in FAST.__dataclass_fields__}
    return Settings(**{**fields, "url": url, **overrides})


BackendFactory = Callable[..., RedisMessageQueueBackend]


@pytest.fixture
async def make_backend(server_url: str) -> AsyncIterator[BackendFactory]:
    made: list[RedisMessageQueueBackend] = []

    def make(**overrides: object) -> RedisMessageQueueBackend:
        backend = RedisMessageQueueBackend(fast(server_url, **overrides))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def sync_queue(server_url: str) -> Iterator[SyncRedisQueue]:
    with SyncRedisQueue(fast(server_url)) as queue:
        yield queue
