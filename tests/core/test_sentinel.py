"""The Sentinel rules with literal replies."""

from __future__ import annotations

import pytest

from abe_redis._core.cluster import Node
from abe_redis._core.replies import ErrorReply
from abe_redis._core.sentinel import Role, SentinelMaster, any_points_elsewhere, points_elsewhere
from abe_redis.errors import AccessDenied, RemoteProtocolError


def test_the_master_address_is_read_or_none_for_an_unknown_service() -> None:
    ask = SentinelMaster("queue")
    assert ask.to_args() == ("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "queue")
    assert ask.parse_reply([b"10.0.0.5", b"6380"]) == Node("10.0.0.5", 6380)
    assert ask.parse_reply(None) is None
    with pytest.raises(RemoteProtocolError):
        ask.parse_reply([b"10.0.0.5"])
    with pytest.raises(AccessDenied):
        ask.parse_reply(ErrorReply("NOAUTH Authentication required."))


def test_role_names_what_a_server_is() -> None:
    assert Role().parse_reply([b"master", 3129659, []]) == "master"
    assert Role().parse_reply([b"slave", b"127.0.0.1", 9999, b"connected", 3167038]) == "slave"


@pytest.mark.parametrize(
    ("message", "moved"),
    [
        ("READONLY You can't write against a read only replica.", True),
        ("NOREPLICAS Not enough good replicas to write.", True),
        (
            "UNBLOCKED force unblock from blocking operation, instance state changed "
            "(master -> replica?)",
            True,
        ),
        ("UNBLOCKED the stream key no longer exists", False),
        ("NOGROUP No such key", False),
    ],
)
def test_replies_that_send_the_backend_back_to_the_sentinels(message: str, moved: bool) -> None:
    assert points_elsewhere(ErrorReply(message)) is moved
    assert any_points_elsewhere([b"1-0", ErrorReply(message)]) is moved
    assert not any_points_elsewhere(b"1-0")
