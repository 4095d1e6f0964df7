"""The native (anyio + hiredis) connection that publishing runs on, against real servers."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
import redis

from abe_redis import RedisMessageQueueBackend, Settings
from abe_redis._async.connection import NativeConnection, NativePool, open_pool
from abe_redis._async.transport import ThreadTransport
from abe_redis._core.commands import (
    NOT_RUN,
    AnyOf,
    Pipeline,
    SAdd,
    SMembers,
    XAdd,
    XGroupCreate,
    XLen,
    XReadGroup,
)
from abe_redis._core.entries import ErrorReply
from abe_redis.embedded import RedisServer
from abe_redis.errors import ConnectError, TransportTimeout

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
SECRET = "s3cret-native-pw"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    """A server with a password, a second ACL user and a unix socket."""
    sock = os.path.join(tempfile.mkdtemp(prefix="abe-native-"), "redis.sock")
    extra = (
        "--requirepass", SECRET,
        "--unixsocket", sock, "--unixsocketperm", "700",
        "--user", "publisher", "on", f">{SECRET}-2", "~*", "&*", "+@all",
    )  # fmt: skip
    with RedisServer(extra=extra) as server:
        server.socket = sock  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


async def test_commands_pipelines_and_error_replies(
    redis_url: str, names: Callable[[str], str]
) -> None:
    conn = NativeConnection(Settings(url=redis_url))
    stream = names("native")
    entry_id = await conn.execute(XAdd(stream, ((b"data", b"{}"),)))
    assert entry_id.count(b"-") == 1
    replies = await conn.execute(
        Pipeline((XLen(stream), XGroupCreate(stream, "g", "0"), XGroupCreate(stream, "g", "0")))
    )
    assert replies[0] == 1
    assert replies[1] == b"OK"
    assert isinstance(replies[2], ErrorReply)
    assert replies[2].code == "BUSYGROUP"
    # An error reply is a value: the connection stays in step.
    assert await conn.execute(XLen(stream)) == 1
    assert conn.round_trips == 3
    await conn.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_password_user_and_database_from_the_url(
    locked_server: RedisServer, protocol: int
) -> None:
    port = locked_server.port
    for url in (
        f"redis://:{SECRET}@127.0.0.1:{port}/3",
        f"redis://publisher:{SECRET}-2@127.0.0.1:{port}/3",
    ):
        conn = NativeConnection(Settings(url=url, protocol=protocol))
        await conn.execute(SAdd("native:set", "x"))
        await conn.aclose()
    with redis.Redis(port=port, password=SECRET, db=3) as client:
        assert client.smembers("native:set") == {b"x"}
        assert client.dbsize() == 1
        client.flushall()
    # The password may also come from Settings.password.
    conn = NativeConnection(Settings(url=f"redis://127.0.0.1:{port}", password=SECRET))
    assert await conn.execute(SMembers("nothing")) == []
    await conn.aclose()


async def test_wrong_password_is_a_connect_error_without_the_secret(
    locked_server: RedisServer,
) -> None:
    conn = NativeConnection(Settings(url=f"redis://:wrong-{SECRET}@127.0.0.1:{locked_server.port}"))
    with pytest.raises(ConnectError, match="refused our credentials") as caught:
        await conn.execute(SMembers("s"))
    assert SECRET not in str(caught.value)


async def test_unix_socket(locked_server: RedisServer) -> None:
    path = locked_server.socket  # type: ignore[attr-defined]
    conn = NativeConnection(Settings(url=f"unix://{path}?db=2", password=SECRET))
    await conn.execute(SAdd("native:unix", "y"))
    await conn.aclose()
    with redis.Redis(unix_socket_path=path, password=SECRET, db=2) as client:
        assert client.smembers("native:unix") == {b"y"}
        client.flushall()


async def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = NativeConnection(Settings(url=f"redis://127.0.0.1:{port}"))
    with pytest.raises(ConnectError, match="cannot connect"):
        await conn.execute(SMembers("s"))


async def test_a_silent_server_times_out_and_the_connection_is_dropped(silent_port: int) -> None:
    conn = NativeConnection(Settings(url=f"redis://127.0.0.1:{silent_port}", socket_timeout=0.3))
    with anyio.fail_after(5):
        with pytest.raises(TransportTimeout):
            await conn.execute(SMembers("s"))
    assert conn._stream is None


async def test_cancelled_mid_round_trip_drops_the_connection(silent_port: int) -> None:
    conn = NativeConnection(Settings(url=f"redis://127.0.0.1:{silent_port}", socket_timeout=5))
    with anyio.move_on_after(0.3) as scope:
        await conn.execute(SMembers("s"))
    assert scope.cancelled_caught
    # Its reply could still arrive: the connection must not be reused.
    assert conn._stream is None
    assert not conn._busy


async def test_a_killed_connection_fails_one_call_then_reconnects(
    redis_url: str, raw: redis.Redis, names: Callable[[str], str]
) -> None:
    conn = NativeConnection(Settings(url=redis_url))
    stream = names("killed")
    await conn.execute(XAdd(stream, ((b"data", b"{}"),)))
    raw.client_kill_filter(_type="normal", skipme=True, laddr=None)  # everyone but raw
    with pytest.raises(ConnectError):
        await conn.execute(XLen(stream))
    assert await conn.execute(XLen(stream)) == 1
    await conn.aclose()


def test_tls_urls_go_through_the_transport() -> None:
    transport = ThreadTransport(Settings(url="redis://h"))
    assert open_pool(Settings(url="rediss://h:6380"), transport) is None
    assert isinstance(open_pool(Settings(url="redis://h"), transport), NativePool)


async def test_the_backend_publishes_on_its_native_connection(settings: Settings) -> None:
    async with RedisMessageQueueBackend(settings) as backend:
        stream = settings.registry_key + "-s"
        await backend.publish(stream, {"n": 1})
        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(backend.publish, stream, {"n": n})
        assert await backend.stream_length(stream) == 101
        pool = backend._native
        assert pool is not None
        assert pool.round_trips < 101  # concurrent publishes shared round trips
        await backend.delete_stream(stream)


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # redis-server's `timeout` closes idle clients; a publish after such a
    # pause must neither fail nor log an outage.
    caplog.set_level(logging.WARNING, logger="abe_redis")
    with RedisServer(extra=("--timeout", "1")) as server:
        async with RedisMessageQueueBackend(Settings(url=server.url)) as backend:
            await backend.publish_entry("events", {"n": 1}, idempotency_key="a")
            await anyio.sleep(2.5)  # the server's idle timeout runs every second
            # Through the publishing flow (an idempotency key): without the
            # check, its first attempt would fail and be retried after a
            # logged outage.
            await backend.publish_entry("events", {"n": 2}, idempotency_key="b")
            assert await backend.stream_length("events") == 2
            pool = backend._native
            assert pool is not None
            assert [conn.connects for conn in pool._all] == [2]
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


def _executors(url: str) -> dict[str, Callable[[], Any]]:
    settings = Settings(url=url)
    return {
        "native": lambda: NativePool(settings, ThreadTransport(settings)),
        "threads": lambda: ThreadTransport(settings),
    }


@pytest.mark.parametrize("path", ["native", "threads"])
async def test_a_blocking_read_called_off_is_never_served(
    redis_url: str, names: Callable[[str], str], raw: redis.Redis, path: str
) -> None:
    # Two streams read at once (AnyOf); one answers, so the other read is
    # cancelled. Were it still blocked in Redis, the next entry would be
    # delivered to it, a reply nobody reads, and would sit pending until the
    # claim threshold. Both I/O paths close the cancelled read's connection.
    hot, cold = names("hot"), names("cold")
    for stream in (hot, cold):
        raw.xgroup_create(stream, "g", "$", mkstream=True)
    executor = _executors(redis_url)[path]()
    reads = tuple(XReadGroup("g", "c", s, ">", 10, 5000) for s in (hot, cold))

    async def publish_soon() -> None:
        await anyio.sleep(0.3)
        await anyio.to_thread.run_sync(lambda: raw.xadd(hot, {"data": b"{}"}))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_soon)
            replies = await executor.execute(AnyOf(reads))
    assert replies[1] is NOT_RUN
    assert len(AnyOf(reads).parse_reply(replies)[0]) == 1
    await anyio.sleep(0.3)  # give Redis the close
    raw.xadd(cold, {"data": b"{}"})
    assert raw.xpending(cold, "g")["pending"] == 0  # nobody took it
    await executor.aclose()
