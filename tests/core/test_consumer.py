from __future__ import annotations

from typing import Any

import pytest

from abe_redis._core.commands import (
    NOT_RUN,
    AnyOf,
    Pipeline,
    SMembers,
    XAck,
    XAdd,
    XAutoClaim,
    XClaimRelease,
    XGroupCreate,
    XReadGroup,
)
from abe_redis._core.consumer import (
    TRANSITIONS,
    ConsumerConfig,
    ConsumerCore,
    ConsumerState,
)
from abe_redis._core.entries import Delivery, ErrorReply
from abe_redis._core.steps import Interrupted, Sleep
from abe_redis.errors import ConnectError, LocalProtocolError

from .helpers import Player, entry

CFG = ConsumerConfig(group="g", consumer="c", registry_key="reg", prefetch=10)
EMPTY_CLAIM = [b"0-0", [], []]


def history(stream: str = "s") -> XReadGroup:
    return XReadGroup("g", "c", stream, "0", 10)


def new(stream: str = "s", block: int | None = None) -> XReadGroup:
    return XReadGroup("g", "c", stream, ">", 10, block)


def claim(stream: str = "s", start: str = "0-0") -> XAutoClaim:
    return XAutoClaim(stream, "g", "c", 30_000, start, 10)


def started(streams: list[bytes] | None = None) -> tuple[ConsumerCore, Player[None]]:
    """A consumer past discovery and its first (empty) pipelined read."""
    core = ConsumerCore(CFG)
    player = Player(core.run())
    assert player.step == SMembers("reg")
    player.reply(streams if streams is not None else [b"s"])
    assert isinstance(player.step, Pipeline)
    player.reply([b"OK"] * len(player.step.commands))
    return core, player


def test_start_creates_groups_from_zero_and_skips_probe_streams() -> None:
    core = ConsumerCore(CFG)
    player = Player(core.run())
    player.reply([b"s", b"_health_check", b"t"])
    assert player.step == Pipeline((XGroupCreate("s", "g", "0"), XGroupCreate("t", "g", "0")))
    player.reply([b"OK", ErrorReply("BUSYGROUP Consumer Group name already exists")])
    assert core.state is ConsumerState.RUNNING
    assert set(core.streams) == {"s", "t"}


def test_first_read_is_of_our_own_pending_entries_then_blocks_for_new() -> None:
    _, player = started()
    assert player.step == Pipeline((history(), claim()))
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    assert player.step == new(block=1000)
    player.reply([[b"s", [entry("1-0", b'{"n":1}')]]])
    assert player.step == Delivery("s", "1-0", {"n": 1})


def test_ack_only_after_the_host_asks_for_the_next_and_rides_with_the_read() -> None:
    core, player = started()
    player.reply([[[b"s", [entry("1-0", b'{"n":1}'), entry("2-0", b'{"n":2}')]]], EMPTY_CLAIM])
    assert player.step == Delivery("s", "1-0", {"n": 1})
    assert core.acks == {}
    player.reply()
    assert player.step == Delivery("s", "2-0", {"n": 2})
    assert core.acks == {"s": ["1-0"]}
    player.reply()
    # Buffer empty: the two acks go in the same round trip as the next read.
    assert player.step == Pipeline((XAck("s", "g", ("1-0", "2-0")), new()))
    player.reply([2, None])
    assert core.acks == {}
    assert core.held == set()


def test_acks_are_flushed_on_their_own_when_they_wait_too_long() -> None:
    _, player = started()
    many = [entry(f"{i}-0", b"{}") for i in range(1, 4)]
    player.reply([[[b"s", many]], EMPTY_CLAIM])
    player.reply(advance=0.1)  # 1-0 done
    assert isinstance(player.step, Delivery)
    player.reply(advance=0.2)  # 2-0 done, first ack is 0.2 s old
    assert player.step == Pipeline((XAck("s", "g", ("1-0", "2-0")),))
    player.reply([2])
    assert player.step == Delivery("s", "3-0", {})


def test_history_read_continues_until_a_short_page() -> None:
    core, player = started()
    page = [entry(f"{i}-0", b"{}") for i in range(1, 11)]
    player.reply([[[b"s", page]], EMPTY_CLAIM])
    for _ in range(10):
        assert isinstance(player.step, Delivery)
        player.reply()
    acks = XAck("s", "g", tuple(f"{i}-0" for i in range(1, 11)))
    assert player.step == Pipeline((acks,))  # ten acks reach the batch size
    player.reply([10])
    assert player.step == Pipeline((XReadGroup("g", "c", "s", "10-0", 10),))
    player.reply([[[b"s", []]]])
    assert core.streams["s"].history is False
    assert player.step == new(block=1000)


def test_no_streams_yet_sleeps_then_looks_again() -> None:
    player = Player(ConsumerCore(CFG).run())
    player.reply([b"_health_check"])
    assert isinstance(player.step, Sleep)
    player.reply(advance=2.0)
    assert player.step == SMembers("reg")
    player.reply([b"s"])
    assert player.step == Pipeline((XGroupCreate("s", "g", "0"),))


def test_streams_appearing_later_are_picked_up() -> None:
    core, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    assert player.step == new(block=1000)
    player.reply(None, advance=2.5)
    assert player.step == SMembers("reg")
    player.reply([b"s", b"t"])
    assert player.step == Pipeline((XGroupCreate("t", "g", "0"),))
    player.reply([b"OK"])
    assert player.step == Pipeline((new("s"), history("t")))
    assert set(core.streams) == {"s", "t"}


def test_several_streams_block_concurrently_and_reread_cancelled_ones() -> None:
    core, player = started([b"s", b"t"])
    player.reply([[[b"s", []]], [[b"t", []]], EMPTY_CLAIM, EMPTY_CLAIM])
    assert player.step == AnyOf((new("s", 1000), new("t", 1000)))
    player.reply([[[b"s", [entry("1-0", b"{}")]]], NOT_RUN])
    assert player.step == Delivery("s", "1-0", {})
    assert core.streams["t"].history is True


def test_one_command_never_names_two_streams() -> None:
    _, player = started([b"s", b"t"])
    assert isinstance(player.step, Pipeline)
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
    assert blocking == new(block=1000)
    player.throw(ConnectError("connection reset"))
    assert isinstance(player.step, Sleep)
    assert core.streams["s"].history is True
    player.reply(advance=0.1)
    assert player.step == blocking  # the same command, retried
    player.reply(None)
    assert player.step == Pipeline((history(),))


def test_interrupted_command_is_sent_again_without_sleeping() -> None:
    core, player = started()
    first = player.step
    player.throw(Interrupted())
    assert player.step == first
    assert core.backoff.attempts == 0


def test_vanished_group_is_recreated() -> None:
    _, player = started()
    player.reply([ErrorReply("NOGROUP No such key 's'"), EMPTY_CLAIM])
    assert player.step == XGroupCreate("s", "g", "0")


def test_undecodable_entries_go_to_the_dead_letter_stream_atomically() -> None:
    core, player = started()
    foreign = [b"9-0", [b"payload", b"x"]]
    player.reply([[[b"s", [foreign, entry("10-0", b"{}")]]], EMPTY_CLAIM])
    step = player.step
    assert isinstance(step, Pipeline)
    assert step.transaction is True
    dlq, ack = step.commands
    assert isinstance(dlq, XAdd)
    assert dlq.stream == "s:dlq"
    fields = dict(dlq.fields)
    assert fields[b"source_id"] == b"9-0"
    assert fields[b"field:payload"] == b"x"
    assert b"no 'data' field" in fields[b"reason"]
    assert ack == XAck("s", "g", ("9-0",))
    player.reply([b"11-0", 1])
    assert player.step == Delivery("s", "10-0", {})
    assert core.dead_lettered == 1


def test_reclaimed_entries_are_delivered_and_not_duplicated() -> None:
    core, player = started()
    page = [b"7-0", [entry("5-0", b'{"n":5}'), entry("5-0", b'{"n":5}')], [b"6-0"]]
    player.reply([[[b"s", []]], page])
    assert player.step == Delivery("s", "5-0", {"n": 5})
    assert core.streams["s"].claim_from == "7-0"
    player.reply()
    assert player.step == Pipeline((XAck("s", "g", ("5-0",)), new()))


def test_claims_run_on_their_interval() -> None:
    _, player = started()
    player.reply([[[b"s", []]], EMPTY_CLAIM])
    player.reply(None, advance=1.0)  # blocking read timed out, claim not due
    assert player.step == Pipeline((new(),))
    player.reply([None], advance=0.0)
    player.reply(None, advance=4.5)  # 5.5 s after the last claim
    assert player.step == SMembers("reg")  # discovery is due too
    player.reply([b"s"])
    step = player.step
    assert isinstance(step, Pipeline)
    assert isinstance(step.commands[-1], XAutoClaim)


def test_close_acks_processed_and_in_hand_and_releases_prefetched() -> None:
    core, player = started()
    player.reply([[[b"s", [entry(f"{i}-0", b"{}") for i in (1, 2, 3)]]], EMPTY_CLAIM])
    player.reply()  # 1-0 processed, 2-0 in hand, 3-0 prefetched
    player.flow.close()
    closing = Player(core.close(processed=True))
    assert closing.step == Pipeline(
        (XAck("s", "g", ("1-0", "2-0")), XClaimRelease("s", "g", "c", ("3-0",), 30_000))
    )
    closing.reply([2, [b"3-0"]])
    assert closing.done
    assert core.state is ConsumerState.CLOSED


def test_close_under_cancellation_releases_the_entry_in_hand() -> None:
    core, player = started()
    player.reply([[[b"s", [entry("1-0", b"{}")]]], EMPTY_CLAIM])
    closing = Player(core.close(processed=False))
    assert closing.step == Pipeline((XClaimRelease("s", "g", "c", ("1-0",), 30_000),))


def test_close_survives_a_transport_error() -> None:
    core, player = started()
    player.reply([[[b"s", [entry("1-0", b"{}")]]], EMPTY_CLAIM])
    closing = Player(core.close(processed=True))
    closing.throw(ConnectError("gone"))
    assert closing.done
    assert core.state is ConsumerState.CLOSED


def test_close_before_start_sends_nothing() -> None:
    core = ConsumerCore(CFG)
    assert Player(core.close(processed=True)).done
    assert core.state is ConsumerState.CLOSED


def test_transition_table_is_enforced() -> None:
    core = ConsumerCore(CFG)
    with pytest.raises(LocalProtocolError, match="from new to running"):
        core._to(ConsumerState.RUNNING)
    assert set(TRANSITIONS) == set(ConsumerState)
    assert TRANSITIONS[ConsumerState.CLOSED] == frozenset()


def test_explicit_streams_skip_the_registry() -> None:
    cfg = ConsumerConfig(group="g", consumer="c", registry_key="reg", streams=("_probe", "x"))
    player: Player[Any] = Player(ConsumerCore(cfg).run())
    assert player.step == Pipeline((XGroupCreate("_probe", "g", "0"), XGroupCreate("x", "g", "0")))
