"""Our key slots against Redis' own CLUSTER KEYSLOT, on a cluster-enabled node."""

from __future__ import annotations

import pytest
import redis

from abe_redis._core.publisher import idempotency_marker
from abe_redis._core.slots import key_slot
from abe_redis.embedded import RedisServer, free_port

pytestmark = pytest.mark.integration

KEYS = ["foo", "slack_events", "_health_check", "a{b}c", "a{}b", "{}{a}", "}x", "x}{y}", "{",
        "a{b", "{user1000}.following", "é{ß}", "t1234:events:dlq", "k" * 256]  # fmt: skip


def test_our_slots_are_redis_slots() -> None:
    # Its own bus port: the default (port + 10000) may be taken or out of range.
    extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-port", str(free_port()))  # fmt: skip
    with RedisServer(extra=extra) as node, redis.Redis(port=node.port) as client:
        for key in KEYS:
            assert key_slot(key) == client.execute_command("CLUSTER", "KEYSLOT", key), key
            marker = idempotency_marker(key, "E1")
            assert client.execute_command("CLUSTER", "KEYSLOT", marker) == key_slot(key), key
