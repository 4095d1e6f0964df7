from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import fakeredis
import pytest

from abe_redis import RedisMessageQueueBackend, Settings, SyncRedisQueue
from abe_redis._async.transport import fakeredis_transport

FAST = Settings(block_ms=50, claim_min_idle_ms=1_000, registry_key="test:streams")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def raw(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    """A plain client on the same fake server, to look at what was written."""
    return fakeredis.FakeRedis(server=server)


BackendFactory = Callable[..., RedisMessageQueueBackend]


@pytest.fixture
async def make_backend(
    server: fakeredis.FakeServer,
) -> AsyncIterator[BackendFactory]:
    made: list[RedisMessageQueueBackend] = []

    def make(**overrides: object) -> RedisMessageQueueBackend:
        settings = Settings(**{**_fields(FAST), **overrides})  # type: ignore[arg-type]
        backend = RedisMessageQueueBackend(
            settings, transport=fakeredis_transport(settings, server)
        )
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def sync_queue(server: fakeredis.FakeServer) -> Iterator[SyncRedisQueue]:
    with SyncRedisQueue(FAST, transport_factory=lambda s: fakeredis_transport(s, server)) as queue:
        yield queue


def _fields(settings: Settings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
