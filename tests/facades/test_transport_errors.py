"""How the transport turns redis-py's exceptions into our errors and replies."""

from __future__ import annotations

import pytest
from redis import exceptions as rex

from abe_redis._async.transport import error_reply, map_error
from abe_redis._core.commands import XAck
from abe_redis.errors import ConnectError, ServerBusy, TransportTimeout


def test_loading_is_server_busy_not_a_lost_connection() -> None:
    # redis-py files LOADING under ConnectionError; to us Redis is reachable.
    error = map_error(rex.BusyLoadingError("Redis is loading the dataset in memory"), "t")
    assert isinstance(error, ServerBusy)
    assert "LOADING" in str(error)


def test_lost_connections_and_timeouts_keep_their_classes() -> None:
    assert type(map_error(rex.ConnectionError("reset"), "t")) is ConnectError
    assert type(map_error(rex.TimeoutError("slow"), "t")) is TransportTimeout


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (rex.TryAgainError("Multiple keys request during rehashing"), "TRYAGAIN"),
        (rex.MasterDownError("Link with MASTER is down"), "MASTERDOWN"),
        (rex.ClusterDownError("The cluster is down"), "CLUSTERDOWN"),
        (rex.ResponseError("BUSY Redis is busy running a script"), "BUSY"),
    ],
)
def test_transient_response_errors_reach_the_core_with_their_code(
    exc: rex.ResponseError, code: str
) -> None:
    reply = error_reply(exc)
    assert reply.code == code
    with pytest.raises(ServerBusy):
        XAck("s", "g", ("1-0",)).parse_reply(reply)
