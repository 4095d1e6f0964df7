from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from abe_redis._core.commands import (
    EvalSha,
    SMembers,
    XAck,
    XAdd,
    XAutoClaim,
    XClaimEntries,
    XClaimIds,
    XGroupCreate,
    XPendingRange,
    XReadGroup,
)
from abe_redis._core.consumer import (
    TRANSITIONS,
    ConsumerConfig,
    ConsumerCore,
    ConsumerState,
)
from abe_redis._core.entries import Delivery
from abe_redis._core.policy import GroupPolicy, RedeliveryPolicy
from abe_redis._core.replies import ErrorReply
from abe_redis._core.scripts import DELETE_STALE_CONSUMERS
from abe_redis._core.steps import NOT_RUN, Ahead, Batch, Collect, Interrupted, Lost, Race, Sleep
from abe_redis.errors import (
    CommandError,
    ConnectError,
    GroupMissingError,
    LocalProtocolError,
    ServerBusy,
)

from .helpers import Player, entry

CFG = ConsumerConfig(
    group="g", consumer="c", registry_key="reg", prefetch=10, stale_consumer_ms=None
)
EXPLICIT = dataclasses.replace(CFG, auto_ack=False, redelivery=RedeliveryPolicy(max_deliveries=3))
EMPTY_CLAIM = [b"0-0", [], []]


def history(stream: str = "s") -> XReadGroup:
    return XReadGroup("g", "c", stream, "0", 10)


def new(stream: str = "s", block: int | None = None) -> XReadGroup:
    return XReadGroup("g", "c", stream, ">", 10, block)


def blocked(*acks: XAck) -> Batch:
    """The blocking read of stream s, with pending acks in front of it."""
    return Batch((*acks, new(block=1000)))


def claim(stream: str = "s", start: str = "0-0") -> XAutoClaim:
    return XAutoClaim(stream, "g", "c", 30_000, start, 10)


def counts(*rows: tuple[str, int]) -> list[Any]:
    """Reply to one XPENDING range query: (id, deliveries) rows owned by us."""
    return [[[i.encode(), b"c", 10, n] for i, n in rows]]


def started(
    streams: list[bytes] | None = None, config: ConsumerConfig = CFG
) -> tuple[ConsumerCore, Player[None]]:
    """A consumer past discovery, at its first pipelined read."""
    core = ConsumerCore(config)
    player = Player(core.run())
    assert player.step == SMembers("reg")
    player.reply(streams if streams is not None else [b"s"])
    assert isinstance(player.step, Batch)
    player.reply([b"OK"] * len(player.step.commands))
    return core, player


def delivered(player: Player[None], *items: tuple[str, bytes]) -> None:
    """Answer the first read with new entries (delivery count 1)."""
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    assert player.step == blocked()
    player.reply([[[b"s", [entry(i, data) for i, data in items]]]])


def test_start_creates_groups_from_zero_and_skips_probe_streams() -> None:
    core = ConsumerCore(CFG)
    player = Player(core.run())
    player.reply([b"s", b"_health_check", b"t"])
    assert player.step == Batch((XGroupCreate("s", "g", "0"), XGroupCreate("t", "g", "0")))
    player.reply([b"OK", ErrorReply("BUSYGROUP Consumer Group name already exists")])
    assert core.state is ConsumerState.RUNNING
    assert set(core.streams) == {"s", "t"}


def test_first_read_is_of_our_own_pending_entries_then_blocks_for_new() -> None:
    _, player = started()
    assert player.step == Batch((history(), claim()))
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    assert player.step == blocked()
    player.reply([[[b"s", [entry("1-0", b'{"n":1}')]]]])
    assert player.step == Delivery("s", "1-0", {"n": 1}, 1)


def test_re_read_entries_get_their_delivery_count_from_redis() -> None:
    _, player = started()
    player.reply([[[b"s", [entry("1-0", b'{"n":1}')]]], EMPTY_CLAIM])
    assert player.step == Batch((XPendingRange("s", "g", "1-0", "1-0", 17, "c"),))
    player.reply(counts(("1-0", 3)))
    assert player.step == Delivery("s", "1-0", {"n": 1}, 3)


def test_ack_only_after_the_host_asks_for_the_next_and_rides_with_the_read() -> None:
    core, player = started()
    delivered(player, ("1-0", b'{"n":1}'), ("2-0", b'{"n":2}'))
    assert player.step == Delivery("s", "1-0", {"n": 1})
    assert core.ledger.acks == {}
    player.reply()
    assert player.step == Delivery("s", "2-0", {"n": 2})
    assert core.ledger.acks == {"s": ["1-0"]}
    player.reply()
    # Buffer empty, stream drained: the acks ride with the next (blocking) read.
    assert player.step == blocked(XAck("s", "g", ("1-0", "2-0")))
    player.reply([2, None])
    assert core.ledger.acks == {}
    assert core.ledger.held == set()
    assert core.stats.acked == 2


def test_acks_are_flushed_on_their_own_when_they_wait_too_long() -> None:
    _, player = started()
    delivered(player, *((f"{i}-0", b"{}") for i in range(1, 4)))
    player.reply(advance=0.1)  # 1-0 done
    assert isinstance(player.step, Delivery)
    player.reply(advance=0.2)  # 2-0 done, first ack is 0.2 s old
    assert player.step == Batch((XAck("s", "g", ("1-0", "2-0")),))
    player.reply([2])
    assert player.step == Delivery("s", "3-0", {})


def test_buffered_deliveries_are_handed_out_without_resuming_the_flow() -> None:
    core, player = started()
    delivered(player, *((f"{i}-0", b"{}") for i in range(1, 5)))
    assert player.step == Delivery("s", "1-0", {})
    # The flow stays parked at 1-0; asking again settles it and hands out 2-0.
    assert core.hand_out_buffered(0.05) == Delivery("s", "2-0", {})
    assert core.ledger.acks == {"s": ["1-0"]}
    assert core.hand_out_buffered(0.1) == Delivery("s", "3-0", {})
    # 0.2 s after the first ack, acks are due: the flow has to run.
    assert core.hand_out_buffered(0.25) is None
    assert core.ledger.acks == {"s": ["1-0", "2-0", "3-0"]}
    player.reply(advance=0.25)  # the flow settles nothing twice
    assert player.step == Batch((XAck("s", "g", ("1-0", "2-0", "3-0")),))
    player.reply([3])
    assert player.step == Delivery("s", "4-0", {})
    assert core.stats.delivered == 4
    assert core.stats.acked == 3


def test_buffered_hand_out_needs_a_running_consumer_and_a_full_buffer() -> None:
    core = ConsumerCore(CFG)
    assert core.hand_out_buffered(0.0) is None  # not started
    core, player = started()
    delivered(player, ("1-0", b"{}"))
    assert core.hand_out_buffered(0.0) is None  # buffer empty: the flow reads
    assert core.ledger.acks == {"s": ["1-0"]}
    player.reply()
    assert player.step == blocked(XAck("s", "g", ("1-0",)))


def test_history_read_continues_until_a_short_page() -> None:
    core, player = started()
    page = [entry(f"{i}-0", b"{}") for i in range(1, 11)]
    player.reply([[[b"s", page]], EMPTY_CLAIM])
    player.reply(counts(*((f"{i}-0", 2) for i in range(1, 11))))
    for _ in range(10):
        assert isinstance(player.step, Delivery)
        player.reply()
    acks = XAck("s", "g", tuple(f"{i}-0" for i in range(1, 11)))
    # Ten acks reach the batch size as the buffer runs dry: they ride with the next read.
    assert player.step == Batch((acks, XReadGroup("g", "c", "s", "10-0", 10)))
    player.reply([10, [[b"s", []]]])
    assert core.plan.cursors["s"].history is False
    assert player.step == blocked()


def test_no_streams_yet_sleeps_then_looks_again() -> None:
    player = Player(ConsumerCore(CFG).run())
    player.reply([b"_health_check"])
    assert isinstance(player.step, Sleep)
    player.reply(advance=2.0)
    assert player.step == SMembers("reg")
    player.reply([b"s"])
    assert player.step == Batch((XGroupCreate("s", "g", "0"),))


def test_streams_appearing_later_are_picked_up() -> None:
    core, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    assert player.step == blocked()
    player.reply([None], advance=2.5)
    assert player.step == SMembers("reg")
    player.reply([b"s", b"t"])
    assert player.step == Batch((XGroupCreate("t", "g", "0"),))
    player.reply([b"OK"])
    assert player.step == Batch((new("s"), history("t")))
    assert set(core.streams) == {"s", "t"}


def test_several_streams_block_concurrently_and_reread_cancelled_ones() -> None:
    core, player = started([b"s", b"t"])
    player.reply([[[b"s", []]], [[b"t", []]], EMPTY_CLAIM, EMPTY_CLAIM])
    assert player.step == Race((new("s", 1000), new("t", 1000)))
    player.reply([[[b"s", [entry("1-0", b"{}")]]], NOT_RUN])
    assert player.step == Delivery("s", "1-0", {})
    assert core.plan.cursors["t"].history is True


def test_a_node_that_does_not_answer_costs_only_its_own_streams() -> None:
    # Regression (cluster, a primary killed): one node's part of the batch
    # failed, the whole batch was retried, and every retry re-read the other
    # nodes' pending entries, counting a delivery each time, until healthy
    # entries were dead-lettered as delivered too often.
    down = Lost(ConnectError("cluster node 127.0.0.1:7001 does not answer"))
    core, player = started([b"s", b"t"])
    player.reply([[[b"s", [entry("1-0", b'{"n":1}')]]], down, EMPTY_CLAIM, down])
    step = player.step  # s's history: its delivery count asked
    assert isinstance(step, Batch)
    assert [type(c) for c in step.commands] == [XPendingRange]
    player.reply(counts(("1-0", 1)))
    assert player.step == Delivery("s", "1-0", {"n": 1}, 1)  # no backoff, no re-read of s
    assert core.plan.cursors["t"].history is True  # t: read again, own pending first
    assert core.plan.cursors["s"].history is False
    assert core.stats.dead_lettered == 0


def test_acks_whose_node_did_not_answer_are_owed_again() -> None:
    core, player = started([b"s", b"t"])
    player.reply([[[b"s", []]], [[b"t", []]], EMPTY_CLAIM, EMPTY_CLAIM])
    player.reply([[[b"s", [entry("1-0", b"{}")]]], [[b"t", [entry("2-0", b"{}")]]]])
    assert player.step == Delivery("s", "1-0", {})
    player.reply()
    assert player.step == Delivery("t", "2-0", {})
    player.reply()
    step = player.step
    assert isinstance(step, Batch)
    acks = [cmd for cmd in step.commands if isinstance(cmd, XAck)]
    assert {a.stream for a in acks} == {"s", "t"}
    down = Lost(ConnectError("cluster node 127.0.0.1:7001 does not answer"))
    replies = [1 if a.stream == "s" else down for a in acks]
    rest = [down if c.keys == ("t",) else [[c.keys[0].encode(), []]] for c in step.commands[2:]]
    player.reply([*replies, *rest])
    assert core.stats.acked == 1
    assert core.ledger.acks == {"t": ["2-0"]}  # owed again: goes with the next round trip


def test_one_command_never_names_two_streams() -> None:
    _, player = started([b"s", b"t"])
    assert isinstance(player.step, Batch)
    for cmd in player.step.commands:
        assert cmd.to_args().count("STREAMS") <= 1
        if isinstance(cmd, XReadGroup):
            assert cmd.to_args()[-2] in {"s", "t"}


def test_transport_error_at_start_is_raised() -> None:
    player = Player(ConsumerCore(CFG).run())
    with pytest.raises(ConnectError):
        player.throw(ConnectError("refused"))


def test_transport_error_later_backs_off_retries_and_rereads_pending() -> None:
    core, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    blocking = player.step
    assert blocking == blocked()
    player.throw(ConnectError("connection reset"))
    assert isinstance(player.step, Sleep)
    assert core.plan.cursors["s"].history is True
    player.reply(advance=0.1)
    assert player.step == blocking  # the same command, retried
    player.reply([None])
    assert player.step == Batch((history(),))


def test_a_loading_server_is_retried_like_a_lost_connection() -> None:
    # After a restart Redis answers every command with LOADING until its data
    # set is back; the acks riding with the read must be sent again, not lost.
    core, player = started()
    delivered(player, ("1-0", b'{"n":1}'))
    player.reply()
    retried = player.step
    assert retried == blocked(XAck("s", "g", ("1-0",)))
    loading = ErrorReply("LOADING Redis is loading the dataset in memory")
    player.reply([loading, loading])
    assert isinstance(player.step, Sleep)
    assert core.ledger.acks == {"s": ["1-0"]}  # still owed
    player.reply(advance=player.step.seconds)
    assert player.step == retried
    player.reply([1, None])
    assert core.ledger.acks == {}
    assert core.stats.acked == 1


def test_a_loading_server_at_start_is_waited_for() -> None:
    core = ConsumerCore(CFG)
    player = Player(core.run())
    assert player.step == SMembers("reg")
    player.reply(ErrorReply("LOADING Redis is loading the dataset in memory"))
    assert isinstance(player.step, Sleep)
    player.reply(advance=player.step.seconds)
    assert player.step == SMembers("reg")


def test_other_error_replies_are_not_retried() -> None:
    player = Player(ConsumerCore(CFG).run())
    with pytest.raises(CommandError, match="WRONGTYPE"):
        player.reply(ErrorReply("WRONGTYPE Operation against a key holding the wrong kind"))


@pytest.mark.parametrize("code", ["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"])
def test_transient_codes_raise_server_busy(code: str) -> None:
    with pytest.raises(ServerBusy, match=f"XACK.*{code}"):
        XAck("s", "g", ("1-0",)).parse_reply(ErrorReply(f"{code} not now"))


def test_interrupted_command_is_sent_again_without_sleeping() -> None:
    core, player = started()
    first = player.step
    player.throw(Interrupted())
    assert player.step == first
    assert core.backoff.attempts == 0


def test_vanished_group_is_recreated_by_default() -> None:
    core, player = started()
    player.reply([ErrorReply("NOGROUP No such key 's'"), EMPTY_CLAIM])
    assert player.step == XGroupCreate("s", "g", "0")
    player.reply(b"OK")
    assert core.stats.groups_recreated == 1


def test_vanished_group_policy_from_end_and_fail() -> None:
    _, player = started(
        config=dataclasses.replace(CFG, on_missing_group=GroupPolicy.RECREATE_FROM_END)
    )
    player.reply([ErrorReply("NOGROUP No such key 's'"), EMPTY_CLAIM])
    assert player.step == XGroupCreate("s", "g", "$")
    _, player = started(config=dataclasses.replace(CFG, on_missing_group=GroupPolicy.FAIL))
    with pytest.raises(GroupMissingError, match="vanished"):
        player.reply([ErrorReply("NOGROUP No such key 's'"), EMPTY_CLAIM])


def test_undecodable_entries_go_to_the_dead_letter_stream_atomically() -> None:
    core, player = started()
    delivered(player, ("9-0", b"{not json"), ("10-0", b"{}"))
    step = player.step
    assert isinstance(step, Batch)
    assert step.transaction is True
    dlq, ack = step.commands
    assert isinstance(dlq, XAdd)
    assert dlq.stream == "abe_redis:dlq:{s}:s"
    fields = dict(dlq.fields)
    assert fields[b"source_id"] == b"9-0"
    assert fields[b"data"] == b"{not json"
    assert fields[b"deliveries"] == b"1"
    assert b"not valid UTF-8 JSON" in fields[b"reason"]
    assert ack == XAck("s", "g", ("9-0",))
    player.reply([b"11-0", 1])
    assert player.step == Delivery("s", "10-0", {})
    assert core.stats.dead_lettered == 1


def test_foreign_fields_are_kept_under_a_prefix() -> None:
    _, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    player.reply([[[b"s", [[b"9-0", [b"payload", b"x"]]]]]])
    assert isinstance(player.step, Batch)
    dlq = player.step.commands[0]
    assert isinstance(dlq, XAdd)
    assert dict(dlq.fields)[b"field:payload"] == b"x"


def test_entries_delivered_too_often_are_dead_lettered_not_delivered() -> None:
    core, player = started()
    page = [b"7-0", [entry("5-0", b'{"n":5}'), entry("6-0", b'{"n":6}')], []]
    player.reply([[[b"s", []]], page])
    player.reply(counts(("5-0", 6), ("6-0", 2)))
    step = player.step
    assert isinstance(step, Batch)
    assert step.transaction
    record = dict(step.commands[0].fields)  # type: ignore[attr-defined]
    assert record[b"reason"] == b"delivered 6 times, more than max_deliveries=5"
    assert record[b"deliveries"] == b"6"
    player.reply([b"8-0", 1])
    assert player.step == Delivery("s", "6-0", {"n": 6}, 2)
    assert core.stats.reclaimed == 2


def test_reclaimed_entries_are_delivered_and_not_duplicated() -> None:
    core, player = started()
    page = [b"7-0", [entry("5-0", b'{"n":5}'), entry("5-0", b'{"n":5}')], [b"6-0"]]
    player.reply([[[b"s", []]], page])
    player.reply(counts(("5-0", 2)))
    assert player.step == Delivery("s", "5-0", {"n": 5}, 2)
    assert core.plan.cursors["s"].claim_from == "7-0"
    player.reply()
    assert player.step == Batch((XAck("s", "g", ("5-0",)), new()))


def test_claims_run_on_their_interval() -> None:
    _, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    player.reply([None], advance=1.0)  # blocking read timed out, claim not due
    assert player.step == blocked()  # drained: straight back to blocking
    player.reply([None], advance=4.5)  # 5.5 s after the last claim
    assert player.step == SMembers("reg")  # discovery is due too
    player.reply([b"s"])
    step = player.step
    assert isinstance(step, Batch)
    assert isinstance(step.commands[-1], XAutoClaim)


def test_explicit_mode_does_not_ack_on_next() -> None:
    core, player = started(config=EXPLICIT)
    delivered(player, ("1-0", b"{}"), ("2-0", b"{}"))
    player.reply()
    assert player.step == Delivery("s", "2-0", {})
    assert core.ledger.acks == {}
    assert set(core.ledger.outstanding) == {("s", "1-0"), ("s", "2-0")}
    core.ack(("s", "2-0"), now=0.0)
    assert core.ledger.acks == {"s": ["2-0"]}
    with pytest.raises(LocalProtocolError, match="settled already"):
        core.ack(("s", "2-0"), now=0.0)
    with pytest.raises(LocalProtocolError, match="never delivered"):
        core.nack(("s", "9-0"), now=0.0)


def test_nack_retries_after_a_backoff_then_redelivers_with_the_count() -> None:
    core, player = started(config=EXPLICIT)
    delivered(player, ("1-0", b'{"n":1}'))
    delay = core.nack(("s", "1-0"), now=0.0, error="boom")
    assert delay is not None
    assert 0.5 <= delay <= 1.0  # first failure: between half and all of retry_base
    player.reply()
    read = player.step
    assert isinstance(read, Batch)  # the retry is not due: block until it is
    last = read.commands[-1]
    assert isinstance(last, XReadGroup)
    assert last.block_ms is not None
    assert last.block_ms <= 1000
    player.reply([None], advance=1.0)
    assert player.step == Batch((new(), XClaimEntries("s", "g", "c", ("1-0",))))
    player.reply([None, [entry("1-0", b'{"n":1}')]])
    assert player.step == Batch((XPendingRange("s", "g", "1-0", "1-0", 17, "c"),))
    player.reply(counts(("1-0", 2)))
    assert player.step == Delivery("s", "1-0", {"n": 1}, 2)
    assert core.stats.retried == 1


def test_failing_on_the_last_allowed_delivery_dead_letters_with_the_error() -> None:
    core, player = started(config=EXPLICIT)
    player.reply([[[b"s", [entry("1-0", b'{"n":1}')]]], EMPTY_CLAIM])
    player.reply(counts(("1-0", 3)))
    assert player.step == Delivery("s", "1-0", {"n": 1}, 3)
    assert core.nack(("s", "1-0"), now=0.0, error="ValueError: bad") is None
    player.reply()
    step = player.step
    assert isinstance(step, Batch)
    record = dict(step.commands[0].fields)
    assert record[b"error"] == b"ValueError: bad"
    assert record[b"data"] == b'{"n":1}'
    assert record[b"reason"] == b"failed on delivery 3 of 3"
    assert step.commands[1] == XAck("s", "g", ("1-0",))


def test_stale_consumers_are_removed_by_an_atomic_script() -> None:
    config = dataclasses.replace(CFG, stale_consumer_ms=3_600_000)
    _, player = started(config=config)
    assert player.step == EvalSha(
        DELETE_STALE_CONSUMERS.sha, ("s",), ("g", "c", 3_600_000, "delete")
    )
    player.reply(ErrorReply("NOSCRIPT No matching script"))
    assert player.step is not None
    assert player.step.to_args()[0] == "EVAL"
    player.reply([b"old-consumer"])
    assert player.step == Batch((history(), claim()))


def test_close_acks_processed_and_in_hand_and_releases_the_rest() -> None:
    core, player = started()
    delivered(player, *((f"{i}-0", b"{}") for i in (1, 2, 3)))
    player.reply()  # 1-0 processed, 2-0 in hand, 3-0 prefetched
    player.flow.close()
    closing = Player(core.close(processed=True))
    mine = XPendingRange("s", "g", count=10_000, consumer="c")
    assert closing.step == Batch((XAck("s", "g", ("1-0", "2-0")), mine))
    closing.reply([2, [[b"3-0", b"c", 5, 1]]])
    assert closing.step == Batch((XClaimIds("s", "g", "c", ("3-0",), 30_000),))
    closing.reply([[b"3-0"]])
    assert closing.done
    assert core.state is ConsumerState.CLOSED
    assert core.stats.released == 1


def test_close_under_cancellation_releases_the_entry_in_hand() -> None:
    core, player = started()
    delivered(player, ("1-0", b"{}"))
    closing = Player(core.close(processed=False))
    assert closing.step == Batch((XPendingRange("s", "g", count=10_000, consumer="c"),))
    closing.reply([[[b"1-0", b"c", 5, 1]]])
    assert closing.step == Batch((XClaimIds("s", "g", "c", ("1-0",), 30_000),))


def test_close_survives_a_transport_error() -> None:
    core, player = started()
    delivered(player, ("1-0", b"{}"))
    closing = Player(core.close(processed=True))
    closing.throw(ConnectError("gone"))
    assert closing.done
    assert core.state is ConsumerState.CLOSED


def test_close_before_start_sends_nothing() -> None:
    core = ConsumerCore(CFG)
    assert Player(core.close(processed=True)).done
    assert core.state is ConsumerState.CLOSED


def test_leases_cover_everything_held() -> None:
    core, player = started(config=EXPLICIT)
    delivered(player, ("1-0", b"{}"), ("2-0", b"{}"))
    assert core.leases() == {"s": ("1-0", "2-0")} or core.leases() == {"s": ("2-0", "1-0")}
    version = core.held_version
    player.reply()
    core.ack(("s", "1-0"), now=0.0)
    core.ack(("s", "2-0"), now=0.0)
    player.reply()
    player.reply([2, None])
    assert core.leases() == {}
    assert core.held_version > version


def test_transition_table_is_enforced() -> None:
    core = ConsumerCore(CFG)
    with pytest.raises(LocalProtocolError, match="from new to running"):
        core._to(ConsumerState.RUNNING)
    assert set(TRANSITIONS) == set(ConsumerState)
    assert TRANSITIONS[ConsumerState.CLOSED] == frozenset()


def test_explicit_streams_skip_the_registry() -> None:
    cfg = dataclasses.replace(CFG, streams=("_probe", "x"))
    player: Player[Any] = Player(ConsumerCore(cfg).run())
    assert player.step == Batch((XGroupCreate("_probe", "g", "0"), XGroupCreate("x", "g", "0")))


def test_a_failed_payload_in_hand_is_nacked_like_an_explicit_one() -> None:
    core, player = started(config=dataclasses.replace(CFG, redelivery=RedeliveryPolicy(2)))
    delivered(player, ("1-0", b'{"n":1}'))
    assert player.step == Delivery("s", "1-0", {"n": 1})
    wait = core.fail_handed(0.0, "ValueError: boom")
    assert wait is not None
    assert core.ledger.retries[0][1:] == ("s", "1-0")
    assert core.ledger.errors[("s", "1-0")] == "ValueError: boom"
    with pytest.raises(LocalProtocolError):
        core.fail_handed(0.0, None)  # nothing in hand any more


def test_a_start_that_failed_leaves_the_consumer_new_so_it_can_start_over() -> None:
    core = ConsumerCore(CFG)
    player = Player(core.run())
    with pytest.raises(ConnectError):
        player.throw(ConnectError("refused"))
    assert core.state is ConsumerState.NEW
    again = Player(core.run())
    assert again.step == SMembers("reg")


def backlog(player: Player[None], *, pace: float = 0.001) -> list[Any]:
    """Feed a full page of 10 new entries and step until the flow does I/O again."""
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    assert player.step == blocked()
    player.reply([[[b"s", [entry(f"{i}-0", b'{"n":%d}' % i) for i in range(1, 11)]]]])
    seen: list[Any] = []
    while isinstance(player.step, Delivery):
        seen.append(player.step)
        player.reply(advance=pace)
    return seen


AHEAD = Ahead(Batch((XAck("s", "g", ("1-0", "2-0", "3-0", "4-0", "5-0")), new())))


def test_a_backlog_is_read_ahead_while_the_buffer_is_handed_out() -> None:
    core, player = started()
    handed = backlog(player)
    # Half the page handed out: the next read goes out now, with the acks.
    assert len(handed) == 5
    assert player.step == AHEAD
    player.reply("ticket", advance=0.001)
    while isinstance(player.step, Delivery):  # the rest, while Redis answers
        player.reply(advance=0.001)
    assert player.step == Collect("ticket")
    player.reply([5, [[b"s", [entry("11-0", b'{"n":11}')]]]])
    assert player.step == Delivery("s", "11-0", {"n": 11})
    assert core.stats.acked == 5  # confirmed by the collected reply


def test_no_read_ahead_when_handlers_are_slow() -> None:
    # Entries of a read in flight are not renewed; at 2 s per handler the
    # buffered ones would outlast a third of the lease interval (30 s / 9).
    _, player = started()
    backlog(player, pace=2.0)
    assert not isinstance(player.step, Ahead)


def test_a_lost_read_ahead_rereads_our_pending_entries_and_acks_again() -> None:
    _, player = started()
    backlog(player)
    player.reply("ticket")
    while isinstance(player.step, Delivery):
        player.reply(advance=0.001)
    assert player.step == Collect("ticket")
    player.throw(ConnectError("reset"))
    # The read may have delivered entries to us: history first, acks owed again.
    assert isinstance(player.step, Batch)
    acks = player.step.commands[0]
    assert isinstance(acks, XAck)
    assert set(acks.ids) == {f"{i}-0" for i in range(1, 11)}
    assert history() in player.step.commands


def test_closing_with_a_read_ahead_in_flight_sends_its_acks_again() -> None:
    core, player = started()
    backlog(player)
    player.reply("ticket")
    closing = Player(core.close(processed=True))
    assert isinstance(closing.step, Batch)
    acks = closing.step.commands[0]
    assert isinstance(acks, XAck)
    assert set(acks.ids) >= {"1-0", "2-0", "3-0", "4-0", "5-0"}
    assert core.ahead is None


UNBLOCKED_GONE = ErrorReply("UNBLOCKED the stream key no longer exists")


def test_an_unblocked_read_is_read_again_and_a_vanished_group_recreated() -> None:
    # FLUSHALL while the read waited: Redis ends it with UNBLOCKED. The
    # consumer reads its own pending entries again, meets NOGROUP, recreates
    # the group by policy and goes on; nothing is raised.
    core, player = started(config=EXPLICIT)
    delivered(player, ("1-0", b'{"n":1}'), ("2-0", b'{"n":2}'))
    player.reply()
    player.reply()  # both in the application's hands, not settled yet
    assert player.step == blocked()
    player.reply([UNBLOCKED_GONE])
    assert core.stats.unblocked == 1
    assert player.step == Batch((history(),))
    player.reply([ErrorReply("NOGROUP No such key 's'")])
    assert player.step == XGroupCreate("s", "g", "0")
    player.reply(b"OK")
    assert core.stats.groups_recreated == 1
    # Their acks can no longer land: reported once, and forgotten.
    assert core.stats.lost_with_group == 2
    assert core.ledger.held == set()
    core.ack(("s", "1-0"), 0.0)  # settling them does not raise
    assert player.step == Batch((history(),))
    player.reply([[[b"s", []]]])
    assert player.step == blocked()
    player.reply([[[b"s", [entry("5-0", b'{"n":3}')]]]])
    assert player.step == Delivery("s", "5-0", {"n": 3})
    assert core.stats.lost_with_group == 2


def test_an_unblocked_read_after_a_role_change_waits_for_a_writable_primary() -> None:
    core, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    role_change = (
        "force unblock from blocking operation, instance state changed (master -> replica?)"
    )
    player.reply([ErrorReply(f"UNBLOCKED {role_change}")])
    assert player.step == Batch((history(),))
    player.reply([ErrorReply("READONLY You can't write against a read only replica.")])
    assert isinstance(player.step, Sleep)  # retried with backoff, like an outage
    player.reply(advance=player.step.seconds)
    assert player.step == Batch((history(),))
    assert core.state is ConsumerState.RUNNING


def test_delivered_entries_still_buffered_are_handed_out_after_the_loss() -> None:
    core, player = started()
    delivered(player, ("1-0", b'{"n":1}'), ("2-0", b'{"n":2}'))
    assert player.step == Delivery("s", "1-0", {"n": 1})
    lost = core.ledger.lose_stream("s", keep={("s", "2-0")})
    assert lost == 1  # 1-0 is in the application's hands; 2-0 still buffered
    assert core.ledger.held == {("s", "2-0")}
    core.ack(("s", "1-0"), 0.0)  # settling what was handed out does not raise


def test_an_entry_larger_than_the_payload_limit_is_dead_lettered_undecoded() -> None:
    small = dataclasses.replace(CFG, max_payload_bytes=16)
    core, player = started(config=small)
    delivered(player, ("1-0", b'{"n":"' + b"x" * 40 + b'"}'), ("2-0", b'{"n":2}'))
    step = player.step
    assert isinstance(step, Batch)
    assert step.transaction  # the dead letter, first
    assert core.dead[0].reason == "'data' is 48 bytes, more than REDIS_MAX_PAYLOAD_BYTES (16)"
