"""Dead-letter records and the flows that list, replay and purge them."""

from __future__ import annotations

from abe_redis._core.commands import Delete, XAck, XAdd, XDel, XLen
from abe_redis._core.deadletters import (
    DeadEntry,
    burials,
    dead_letter_stream,
    purge_dead_letters,
    record,
)
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
    assert player.step == Batch((XLen("s:dlq"), Delete("s:dlq")), transaction=True)
    player.reply([7, 1])
    assert player.result == 7


def test_purging_ids_deletes_only_those() -> None:
    player = Player(purge_dead_letters("s", ("1-0", "2-0")))
    assert player.step == XDel("s:dlq", ("1-0", "2-0"))
    player.reply(2)
    assert player.result == 2
    assert Player(purge_dead_letters("s", ())).result == 0
