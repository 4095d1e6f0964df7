"""The one connection type (anyio + hiredis) every round trip runs on, against real servers."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
import pytest
import redis

from abe_redis import RedisMessageQueueBackend, Settings
from abe_redis._core.commands import (
    Arg,
    Command,
    Delete,
    Ping,
    SAdd,
    SMembers,
    XAdd,
    XGroupCreate,
    XInfoGroups,
    XLen,
    XReadGroup,
)
from abe_redis._core.replies import ErrorReply
from abe_redis._core.steps import NOT_RUN, Batch, Race
from abe_redis._io.address import address
from abe_redis._io.connection import Connection
from abe_redis._io.executor import Wire
from abe_redis._io.pool import Pool
from abe_redis._io.topology import open_topology
from abe_redis.embedded import RedisServer
from abe_redis.errors import AccessDenied, ConnectError, TransportTimeout

from ..helpers import only_pool

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
SECRET = "s3cret-native-pw"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[RedisServer]:
    """A server with a password, a second ACL user and a unix socket."""
    with tempfile.TemporaryDirectory(prefix="abe-native-") as folder:
        sock = os.path.join(folder, "redis.sock")
        extra = (
            "--requirepass", SECRET,
            "--unixsocket", sock, "--unixsocketperm", "700",
            "--user", "publisher", "on", f">{SECRET}-2", "~*", "&*", "+@all",
        )  # fmt: skip
        with RedisServer(extra=extra) as server:
            server.socket = sock  # type: ignore[attr-defined]
            yield server


@dataclass(frozen=True, slots=True)
class WrongArity(Command[int]):
    """XLEN with an extra argument: Redis refuses to queue it."""

    stream: str

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.stream,)

    def to_args(self) -> tuple[Arg, ...]:
        return ("XLEN", self.stream, "extra")


def connect(settings: Settings) -> Connection:
    return Connection(address(settings), settings.socket_timeout, settings.read_timeout)


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
    conn = connect(Settings(url=redis_url))
    stream = names("native")
    entry_id = await conn.round_trip(XAdd(stream, ((b"data", b"{}"),)))
    assert entry_id.count(b"-") == 1
    replies = await conn.round_trip(
        Batch((XLen(stream), XGroupCreate(stream, "g", "0"), XGroupCreate(stream, "g", "0")))
    )
    assert replies[0] == 1
    assert replies[1] == b"OK"
    assert isinstance(replies[2], ErrorReply)
    assert replies[2].code == "BUSYGROUP"
    # An error reply is a value: the connection stays in step.
    assert await conn.round_trip(XLen(stream)) == 1
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
        conn = connect(Settings(url=url, protocol=protocol))
        await conn.round_trip(SAdd("native:set", "x"))
        await conn.aclose()
    with redis.Redis(port=port, password=SECRET, db=3) as client:
        assert client.smembers("native:set") == {b"x"}
        assert client.dbsize() == 1
        client.flushall()
    # The password may also come from Settings.password.
    conn = connect(Settings(url=f"redis://127.0.0.1:{port}", password=SECRET))
    assert await conn.round_trip(SMembers("nothing")) == []
    await conn.aclose()


async def test_wrong_password_is_access_denied_without_the_secret(
    locked_server: RedisServer,
) -> None:
    conn = connect(Settings(url=f"redis://:wrong-{SECRET}@127.0.0.1:{locked_server.port}"))
    with pytest.raises(AccessDenied, match="refused our credentials") as caught:
        await conn.round_trip(SMembers("s"))
    assert SECRET not in str(caught.value)


async def test_unix_socket(locked_server: RedisServer) -> None:
    path = locked_server.socket  # type: ignore[attr-defined]
    conn = connect(Settings(url=f"unix://{path}?db=2", password=SECRET))
    await conn.round_trip(SAdd("native:unix", "y"))
    await conn.aclose()
    with redis.Redis(unix_socket_path=path, password=SECRET, db=2) as client:
        assert client.smembers("native:unix") == {b"y"}
        client.flushall()


async def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = connect(Settings(url=f"redis://127.0.0.1:{port}"))
    with pytest.raises(ConnectError, match="cannot connect"):
        await conn.round_trip(SMembers("s"))


async def test_a_silent_server_times_out_and_the_connection_is_dropped(silent_port: int) -> None:
    conn = connect(Settings(url=f"redis://127.0.0.1:{silent_port}", socket_timeout=0.3))
    with anyio.fail_after(5):
        with pytest.raises(TransportTimeout):
            await conn.round_trip(SMembers("s"))
    assert conn._stream is None


async def test_cancelled_mid_round_trip_drops_the_connection(silent_port: int) -> None:
    conn = connect(Settings(url=f"redis://127.0.0.1:{silent_port}", socket_timeout=5))
    with anyio.move_on_after(0.3) as scope:
        await conn.round_trip(SMembers("s"))
    assert scope.cancelled_caught
    # Its reply could still arrive: the connection must not be reused.
    assert conn._stream is None
    assert not conn._busy


async def test_a_killed_connection_fails_one_call_then_reconnects(
    redis_url: str, raw: redis.Redis, names: Callable[[str], str]
) -> None:
    conn = connect(Settings(url=redis_url, client_name=names("killed-client")))
    stream = names("killed")
    await conn.round_trip(XAdd(stream, ((b"data", b"{}"),)))
    # Only our own connection: the shared server has other clients.
    (ours,) = [c for c in raw.client_list() if c["name"] == names("killed-client")]
    raw.client_kill_filter(_id=ours["id"])
    with pytest.raises(ConnectError):
        await conn.round_trip(XLen(stream))
    assert await conn.round_trip(XLen(stream)) == 1
    await conn.aclose()


async def test_a_transaction_is_one_round_trip_and_each_command_keeps_its_reply(
    redis_url: str, names: Callable[[str], str]
) -> None:
    conn = connect(Settings(url=redis_url))
    stream, missing = names("multi"), names("missing")
    replies = await conn.round_trip(
        Batch(
            (XAdd(stream, ((b"data", b"{}"),)), XLen(stream), XInfoGroups(missing)),
            transaction=True,
        )
    )
    assert replies[1] == 1
    assert isinstance(replies[2], ErrorReply)  # a run-time error stays that command's
    assert conn.round_trips == 1
    # A command Redis refuses to queue aborts the transaction: each command
    # hears why, and nothing ran.
    bad = await conn.round_trip(Batch((Delete(stream), WrongArity(stream)), transaction=True))
    assert [r.code for r in bad] == ["EXECABORT", "ERR"]
    assert await conn.round_trip(XLen(stream)) == 1
    await conn.aclose()


async def test_connections_are_named_for_client_list(
    redis_url: str, raw: redis.Redis, names: Callable[[str], str]
) -> None:
    conn = connect(Settings(url=redis_url, client_name=names("worker")))
    assert await conn.round_trip(Ping()) is not None
    assert [c["name"] for c in raw.client_list()].count(names("worker")) == 1
    await conn.aclose()


async def test_resp3_replies_reach_the_core_as_maps(
    redis_url: str, names: Callable[[str], str]
) -> None:
    conn = connect(Settings(url=redis_url, protocol=3))
    stream = names("resp3")
    await conn.round_trip(
        Batch((XAdd(stream, ((b"data", b"{}"),)), XGroupCreate(stream, "g", "0")))
    )
    raw_reply = await conn.round_trip(XReadGroup("g", "c", stream, ">", 10))
    assert isinstance(raw_reply, dict)  # RESP3's map, which the command parses
    entries = XReadGroup("g", "c", stream, ">", 10).parse_reply(raw_reply)
    assert isinstance(entries, tuple)
    assert len(entries) == 1
    await conn.aclose()


async def test_a_full_pool_makes_callers_wait_for_a_connection(
    redis_url: str, raw: redis.Redis, names: Callable[[str], str]
) -> None:
    settings = Settings(url=redis_url)
    pool = Pool(address(settings), limit=2, timeout=5, blocking_timeout=10)
    stream = names("quiet")
    raw.xgroup_create(stream, "g", "$", mkstream=True)
    reads = [XReadGroup("g", "c", stream, ">", 1, 300) for _ in range(2)]
    async with anyio.create_task_group() as tg:
        for read in reads:  # two blocking reads hold both connections
            tg.start_soon(_swallow, pool, read)
        await anyio.sleep(0.05)
        started = anyio.current_time()
        assert await pool.round_trip(Ping()) is not None
        waited = anyio.current_time() - started
    assert pool.size == 2
    assert waited >= 0.15  # it waited for a connection instead of opening a third
    await pool.aclose()


async def _swallow(pool: Pool, step: XReadGroup) -> None:
    await pool.round_trip(step)


async def test_the_backend_publishes_on_its_own_connection(settings: Settings) -> None:
    async with RedisMessageQueueBackend(settings) as backend:
        stream = settings.registry_key + "-s"
        await backend.publish(stream, {"n": 1})
        async with anyio.create_task_group() as tg:
            for n in range(100):
                tg.start_soon(backend.publish, stream, {"n": n})
        assert await backend.stream_length(stream) == 101
        assert backend._pipelined().round_trips < 101  # concurrent publishes shared them
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
            pool = only_pool(backend._open().topology)
            assert [conn.connects for conn in pool._all] == [2]
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_blocking_read_called_off_is_never_served(
    redis_url: str, names: Callable[[str], str], raw: redis.Redis
) -> None:
    # Two streams read at once (a race); one answers, so the other read is
    # called off. Were it still blocked in Redis, the next entry would be
    # delivered to it, a reply nobody reads, and would sit pending until the
    # claim threshold. A called-off read's connection is closed.
    hot, cold = names("hot"), names("cold")
    for stream in (hot, cold):
        raw.xgroup_create(stream, "g", "$", mkstream=True)
    wire = Wire(open_topology(Settings(url=redis_url)))
    reads = tuple(XReadGroup("g", "c", s, ">", 10, 5000) for s in (hot, cold))

    async def publish_soon() -> None:
        await anyio.sleep(0.3)
        await anyio.to_thread.run_sync(lambda: raw.xadd(hot, {"data": b"{}"}))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_soon)
            replies = await wire.execute(Race(reads))
    assert replies[1] is NOT_RUN
    hot_entries = Race(reads).parse_reply(replies)[0]
    assert isinstance(hot_entries, tuple)
    assert len(hot_entries) == 1
    await anyio.sleep(0.3)  # give Redis the close
    raw.xadd(cold, {"data": b"{}"})
    assert raw.xpending(cold, "g")["pending"] == 0  # nobody took it
    await wire.aclose()
