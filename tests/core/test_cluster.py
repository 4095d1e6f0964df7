"""The cluster rules with literal replies: slot maps, redirects, routing."""

from __future__ import annotations

import pytest

from abe_redis._core.cluster import (
    REFRESH_INTERVAL,
    ClusterSlots,
    Node,
    Redirect,
    Refresh,
    SlotMap,
    SlotRange,
    first_redirect,
    is_not_a_cluster,
    merge,
    part_replies,
    redirect,
    route,
)
from abe_redis._core.commands import SAdd, XAck, XAdd, XReadGroup
from abe_redis._core.replies import ErrorReply
from abe_redis._core.slots import key_slot
from abe_redis._core.steps import Batch
from abe_redis.errors import CommandError, LocalProtocolError, RemoteProtocolError, ServerBusy

A, B, C = Node("127.0.0.1", 7000), Node("127.0.0.1", 7001), Node("127.0.0.1", 7002)

# What Redis 7.0 answers to CLUSTER SLOTS on a 3-primary, 3-replica cluster
# (RESP2; node ids shortened).
SLOTS_REPLY = [
    [0, 5460, [b"127.0.0.1", 7000, b"a1"], [b"127.0.0.1", 7004, b"r1"]],
    [5461, 10922, [b"127.0.0.1", 7001, b"b1"], [b"127.0.0.1", 7005, b"r2"]],
    [10923, 16383, [b"127.0.0.1", 7002, b"c1"], [b"127.0.0.1", 7003, b"r3"]],
]


def three() -> SlotMap:
    return ClusterSlots(A).parse_reply(SLOTS_REPLY)


def key_on(node: Node, slots: SlotMap, prefix: str = "k") -> str:
    """A key whose slot ``node`` serves."""
    n = 0
    while slots.owner(key_slot(f"{prefix}{n}")) != node:
        n += 1
    return f"{prefix}{n}"


def test_cluster_slots_reply_is_read_into_a_complete_map() -> None:
    slots = three()
    assert slots.complete
    assert slots.primaries == (A, B, C)
    assert [slots.owner(s) for s in (0, 5460, 5461, 16383)] == [A, A, B, C]
    assert Node("127.0.0.1", 7004) in slots.nodes
    assert slots.ranges[0] == SlotRange(0, 5460, A, (Node("127.0.0.1", 7004),))


def test_an_empty_or_unknown_host_means_the_node_asked() -> None:
    # Redis sends "" (or "?") when a node does not know its own address.
    slots = ClusterSlots(Node("10.0.0.9", 7000)).parse_reply([[0, 16383, [b"", 7000, b"id"]]])
    assert slots.owner(42) == Node("10.0.0.9", 7000)


def test_slots_no_node_serves_have_no_owner() -> None:
    slots = ClusterSlots(A).parse_reply([[0, 99, [b"127.0.0.1", 7000, b"a"]]])
    assert not slots.complete
    assert slots.owner(100) is None


def test_a_server_without_cluster_mode_says_so() -> None:
    reply = ErrorReply("ERR This instance has cluster support disabled")
    assert is_not_a_cluster(reply)
    with pytest.raises(CommandError, match="cluster support disabled"):
        ClusterSlots(A).parse_reply(reply)
    assert not is_not_a_cluster(ErrorReply("CLUSTERDOWN The cluster is down"))


def test_a_reply_of_the_wrong_shape_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        ClusterSlots(A).parse_reply([[0, 5]])
    with pytest.raises(RemoteProtocolError):
        ClusterSlots(A).parse_reply(b"OK")


def test_moved_and_ask_are_read_with_their_slot_and_node() -> None:
    assert redirect(ErrorReply("MOVED 3999 127.0.0.1:7001"), A) == Redirect(False, 3999, B)
    assert redirect(ErrorReply("ASK 3999 127.0.0.1:7002"), A) == Redirect(True, 3999, C)
    # An empty host (a node that does not know its address): the node asked.
    assert redirect(ErrorReply("MOVED 1 :7001"), B) == Redirect(False, 1, B)
    assert redirect(ErrorReply("NOGROUP No such key"), A) is None
    assert redirect(b"1-0", A) is None
    with pytest.raises(RemoteProtocolError):
        redirect(ErrorReply("MOVED nonsense"), A)


def test_a_redirect_not_followed_is_retried_not_fatal() -> None:
    # Too many redirects in a row: the command sees it, flows back off.
    with pytest.raises(ServerBusy, match="MOVED"):
        XAdd("s", ((b"data", b"{}"),)).parse_reply(ErrorReply("MOVED 1 127.0.0.1:7001"))


def test_moved_moves_one_slot_and_keeps_the_rest() -> None:
    slots = three().moved(100, B)
    assert slots.owner(100) == B
    assert [slots.owner(99), slots.owner(101)] == [A, A]
    assert slots.complete
    assert slots.moved(0, C).owner(0) == C  # a range's first slot
    assert slots.moved(5460, C).owner(5460) == C  # and its last


def test_a_command_goes_to_the_node_of_its_keys() -> None:
    slots = three()
    key = key_on(B, slots)
    (part,) = route(XAdd(key, ((b"data", b"{}"),)), slots, A)
    assert (part.node, part.at) == (B, (0,))


def test_a_batch_is_split_by_node_in_order_and_put_back_together() -> None:
    slots = three()
    ka, kb, kc = key_on(A, slots), key_on(B, slots), key_on(C, slots)
    batch = Batch(
        (
            XAck(kb, "g", ("1-0",)),
            XReadGroup("g", "c", ka, ">", 10),
            XReadGroup("g", "c", kb, ">", 10),
            XReadGroup("g", "c", kc, ">", 10),
        )
    )
    parts = route(batch, slots, A)
    assert [(p.node, p.at) for p in parts] == [(B, (0, 2)), (A, (1,)), (C, (3,))]
    assert parts[0].step == Batch((batch.commands[0], batch.commands[2]))
    assert parts[1].step == batch.commands[1]  # a lone command goes bare
    replies: list[object] = [None] * 4
    for part, raw in zip(parts, [[1, None], None, [b"x"]], strict=True):
        for at, reply in zip(part.at, part_replies(part, raw), strict=True):
            replies[at] = reply
    assert merge(batch, replies) == [1, None, None, [b"x"]]


def test_a_batch_on_one_node_stays_whole() -> None:
    slots = three()
    key = key_on(C, slots)
    batch = Batch((XAck(key, "g", ("1-0",)), XReadGroup("g", "c", key, ">", 10)))
    (part,) = route(batch, slots, A)
    assert (part.node, part.at) == (C, (0, 1))
    assert part.step is batch


def test_a_transaction_must_keep_to_one_slot() -> None:
    slots = three()
    stream = "orders"
    same = Batch((XAdd(stream, ((b"data", b"{}"),)), XAck(stream, "g", ("1-0",))), True)
    (part,) = route(same, slots, A)
    assert part.node == slots.owner(key_slot(stream))
    mixed = Batch((SAdd("registry", stream), XAdd(stream, ((b"data", b"{}"),))), True)
    with pytest.raises(LocalProtocolError, match="several cluster slots"):
        route(mixed, slots, A)


def test_keyless_commands_and_unserved_slots_go_to_the_default_node() -> None:
    slots = ClusterSlots(A).parse_reply([[0, 99, [b"127.0.0.1", 7001, b"b"]]])
    key = "k"
    assert slots.owner(key_slot(key)) is None
    (part,) = route(XAdd(key, ((b"data", b"{}"),)), slots, C)
    assert part.node == C


def test_a_refused_transaction_carries_its_redirect() -> None:
    moved = ErrorReply("MOVED 12 127.0.0.1:7002")
    assert first_redirect([moved, moved], A) == Redirect(False, 12, C)
    assert first_redirect([b"1-0", 1], A) is None


def test_refreshes_are_spaced_however_many_callers_notice() -> None:
    refresh = Refresh()
    assert refresh.wanted(0.0)  # the first map
    refresh.done(0.0)
    assert not refresh.wanted(0.0)
    refresh.stale()
    refresh.stale()
    assert not refresh.wanted(REFRESH_INTERVAL / 2)
    assert refresh.wanted(REFRESH_INTERVAL)
    refresh.done(REFRESH_INTERVAL)
    assert not refresh.wanted(10.0)  # nothing made it stale since
