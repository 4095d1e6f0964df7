"""Dead-letter records and the flows that list, replay and purge them."""

from __future__ import annotations

from abe_redis._core.commands import Delete, XAck, XAdd, XDel, XLen, XRange
from abe_redis._core.deadletters import (
    DeadEntry,
    burials,
    count_dead_letters,
    dead_letter_stream,
    purge_dead_letters,
    record,
)
from abe_redis._core.slots import key_slot
from abe_redis._core.steps import Batch

from .helpers import Player

DEAD = DeadEntry("s", "1-0", ((b"data", b"{}"), (b"x", b"y")), "undecodable", 3, "E" * 2000)


def test_records_keep_the_payload_replayable_and_the_error_bounded() -> None:
    fields = dict(record(DEAD, "g", "c"))
    assert fields[b"data"] == b"{}"  # under its own name: replay is exact
    assert fields[b"field:x"] == b"y"  # foreign fields are kept, marked
    assert fields[b"source_id"] == b"1-0"
    assert len(fields[b"error"]) == 1000


def test_a_burial_moves_and_acks_in_one_transaction() -> None:
    ((batch, entries),) = burials([DEAD], "g", "c")
    assert batch.transaction
    assert batch.commands == (
        XAdd(dead_letter_stream("s"), record(DEAD, "g", "c")),
        XAck("s", "g", ("1-0",)),
    )
    assert entries == (DEAD,)


def test_purging_everything_counts_what_it_deletes_atomically() -> None:
    # Regression: XLEN then DEL in two round trips could report records
    # added in between, which were deleted unreported.
    player = Player(purge_dead_letters("s"))
    player.reply(0)  # no legacy dead-letter stream to adopt
    dlq = "abe_redis:dlq:{s}:s"
    assert player.step == Batch((XLen(dlq), Delete(dlq)), transaction=True)
    player.reply([7, 1])
    assert player.result == 7


def test_purging_ids_deletes_only_those() -> None:
    player = Player(purge_dead_letters("s", ("1-0", "2-0")))
    player.reply(0)  # no legacy dead-letter stream to adopt
    assert player.step == XDel("abe_redis:dlq:{s}:s", ("1-0", "2-0"))
    player.reply(2)
    assert player.result == 2
    nothing = Player(purge_dead_letters("s", ()))
    nothing.reply(0)
    assert nothing.result == 0


def test_dead_letters_share_their_streams_cluster_slot() -> None:
    for stream in ("orders", "{tenant}.orders", "a}b", "t1:events"):
        dlq = dead_letter_stream(stream)
        assert key_slot(dlq) == key_slot(stream), stream
        assert dlq.startswith("abe_redis:dlq:")
        assert dlq.endswith(stream)


def test_legacy_dead_letters_are_adopted_one_multi_per_record() -> None:
    # Versions before 0.3 wrote `<stream>:dlq`; the tools move those
    # records to the current name before they list, count, replay or purge.
    player = Player(count_dead_letters("s"))
    assert player.step == XLen("s:dlq")
    player.reply(1)
    assert player.step == XRange("s:dlq", "-", "+", 100)
    fields = [b"reason", b"old", b"source_stream", b"s", b"source_id", b"1-0"]
    player.reply([[b"5-0", fields]])
    moved = player.step
    assert isinstance(moved, Batch)
    assert moved.transaction
    assert moved.commands == (
        XAdd("abe_redis:dlq:{s}:s", tuple(zip(fields[::2], fields[1::2], strict=True))),
        XDel("s:dlq", ("5-0",)),
    )
    player.reply([b"9-0", 1])
    assert player.step == XLen("abe_redis:dlq:{s}:s")
    player.reply(1)
    assert player.result == 1
