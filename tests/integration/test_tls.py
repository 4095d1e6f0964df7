"""TLS (``rediss://``) against a real redis-server with a certificate of its own.

The connections are the one connection type, on anyio's TLS, under asyncio,
trio and SyncRedisQueue alike. The server also listens in plain text on
another port, which proves a TLS URL never falls back to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from abe_redis import (
    ConnectError,
    RedisMessageQueueBackend,
    Settings,
    SyncRedisQueue,
    TransportTimeout,
)
from abe_redis.embedded import RedisServer, free_port

from ..helpers import certificate, take

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@dataclass(frozen=True)
class TlsServer:
    plain_port: int
    tls_port: int
    ca: Path
    key: Path  # the CA's key: its certificate doubles as a client certificate

    def url(self, *, trusted: bool = True, scheme: str = "rediss") -> str:
        query = f"?ssl_ca_certs={self.ca}" if trusted else ""
        return f"{scheme}://127.0.0.1:{self.tls_port}/0{query}"


def _tls_server(folder: Path, auth_clients: str) -> tuple[RedisServer, TlsServer]:
    """A redis-server with TLS on one port (a self-signed certificate, also
    the CA it trusts for client certificates) and plain text on another."""
    cert, key = certificate(folder)
    tls_port = free_port()
    extra = (
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", auth_clients,
    )  # fmt: skip
    server = RedisServer(extra=extra)
    return server, TlsServer(server.port, tls_port, cert, key)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """TLS without client certificates."""
    server, described = _tls_server(tmp_path_factory.mktemp("tls"), "no")
    with server:
        yield described


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """TLS that requires a client certificate signed by its CA."""
    server, described = _tls_server(tmp_path_factory.mktemp("mtls"), "yes")
    with server:
        yield described


async def test_publish_and_consume_over_tls(tls_server: TlsServer) -> None:
    settings = Settings(url=tls_server.url(), block_ms=200)
    async with RedisMessageQueueBackend(settings) as backend:
        for i in range(20):
            await backend.publish("events", {"i": i})
        await backend.publish_many("events", [{"i": i} for i in range(20, 40)])
        async with backend.consume(group="tls") as consumer:
            assert await take(consumer, 40) == [{"i": i} for i in range(40)]

            # The stream is drained: the next read blocks in Redis until
            # this publish, over TLS too.
            async def later() -> None:
                await anyio.sleep(0.3)
                await backend.publish("events", {"i": 40})

            async with anyio.create_task_group() as tg:
                tg.start_soon(later)
                assert await take(consumer, 1, timeout=10) == [{"i": 40}]
        assert (await backend.pending("events", group="tls")).count == 0
        await backend.delete_stream("events")


def test_sync_queue_over_tls(tls_server: TlsServer) -> None:
    with SyncRedisQueue(Settings(url=tls_server.url(), block_ms=200)) as queue:
        for i in range(10):
            queue.publish("sync-events", {"i": i})
        got = []
        with queue.consume(group="tls") as consumer:
            for event in consumer:
                got.append(event)
                if len(got) == 10:
                    break
        assert got == [{"i": i} for i in range(10)]
        assert queue.pending("sync-events", group="tls").count == 0
        queue.delete_stream("sync-events")


async def test_redis_ssl_turns_a_redis_url_into_tls(tls_server: TlsServer) -> None:
    settings = Settings(url=tls_server.url(scheme="redis"), ssl=True)
    assert settings.effective_url.startswith("rediss://")
    async with RedisMessageQueueBackend(settings) as backend:
        await backend.ping()


async def test_untrusted_certificate_is_a_connect_error(tls_server: TlsServer) -> None:
    # No CA given: the self-signed certificate must be refused, at once.
    async with RedisMessageQueueBackend(Settings(url=tls_server.url(trusted=False))) as backend:
        with anyio.fail_after(10), pytest.raises(ConnectError, match=r"(?i)certificate"):
            await backend.publish("events", {"n": 1})


async def test_tls_url_on_a_plain_port_times_out_instead_of_falling_back(
    tls_server: TlsServer,
) -> None:
    # A plain-text Redis reads the TLS hello as a command and never answers
    # it: the handshake ends at the socket timeout with a typed error, and
    # nothing is sent in plain text.
    url = f"rediss://127.0.0.1:{tls_server.plain_port}/0?ssl_ca_certs={tls_server.ca}"
    async with RedisMessageQueueBackend(Settings(url=url, socket_timeout=1)) as backend:
        with anyio.fail_after(10), pytest.raises(TransportTimeout, match="connecting"):
            await backend.publish("events", {"n": 1})
    with SyncRedisQueue(Settings(url=f"redis://127.0.0.1:{tls_server.plain_port}/0")) as plain:
        assert plain.stream_length("events") == 0


async def test_client_certificate_from_the_url(mtls_server: TlsServer) -> None:
    async with RedisMessageQueueBackend(Settings(url=mtls_server.url())) as backend:
        with anyio.fail_after(10), pytest.raises(ConnectError):
            await backend.ping()  # no client certificate: refused
    url = f"{mtls_server.url()}&ssl_certfile={mtls_server.ca}&ssl_keyfile={mtls_server.key}"
    async with RedisMessageQueueBackend(Settings(url=url)) as backend:
        await backend.publish("events", {"n": 1})
        async with backend.consume(group="mtls") as consumer:
            assert await take(consumer, 1) == [{"n": 1}]
        await backend.delete_stream("events")
