from __future__ import annotations

from typing import Any

import pytest

from abe_redis._core.commands import (
    Eval,
    EvalSha,
    Exists,
    SAdd,
    Wait,
    XAdd,
    XInfoGroups,
    XPendingSummary,
    XTrimMaxLen,
    XTrimMinId,
)
from abe_redis._core.entries import GroupInfo, PendingSummary
from abe_redis._core.publisher import PROBE_MAXLEN, REGISTRY_REFRESH, Publisher, idempotency_marker
from abe_redis._core.replies import ErrorReply
from abe_redis._core.scripts import IDEMPOTENT_XADD
from abe_redis._core.steps import Batch, DeadlinePassed, Sleep
from abe_redis._core.trimming import safe_trim, trim_floor
from abe_redis.errors import (
    AccessDenied,
    CommandError,
    ConnectError,
    NotReplicated,
    OutOfMemory,
    PayloadError,
    ServerBusy,
    StreamKeyError,
    TransportTimeout,
    ValidationError,
)

from .helpers import Player

DATA = ((b"data", b'{"a":1}'),)


def test_first_publish_registers_the_stream_before_it_writes() -> None:
    # In a round trip of its own: on a cluster the registry and the stream
    # live on different nodes, and a stream must never hold entries before
    # it is registered.
    pub = Publisher("reg")
    player = Player(pub.publish("events", {"a": 1}, now=0.0))
    assert player.step == SAdd("reg", "events")
    player.reply(1)
    assert player.step == XAdd("events", DATA)
    player.reply(b"1-0")
    assert player.done
    assert player.result == "1-0"


def test_later_publishes_send_xadd_alone_until_the_refresh() -> None:
    pub = Publisher("reg")
    first = Player(pub.publish("events", {"a": 1}, now=0.0))
    first.reply(1)
    first.reply(b"1-0")
    second = Player(pub.publish("events", {"a": 1}, now=0.5))
    assert second.step == XAdd("events", DATA, nomkstream=True)
    second.reply(b"2-0")
    assert second.result == "2-0"
    later = Player(pub.publish("events", {"a": 1}, now=REGISTRY_REFRESH + 1))
    assert later.step == SAdd("reg", "events")


def test_maxlen_is_applied_only_when_configured() -> None:
    player = Player(Publisher("reg", maxlen=1000).publish("e", {"a": 1}, 0.0))
    player.reply(1)
    assert player.step == XAdd("e", DATA, 1000)


def test_probe_keys_are_capped_and_not_registered() -> None:
    player = Player(Publisher("reg").publish("_health_check", {"a": 1}, 0.0))
    assert player.step == XAdd("_health_check", DATA, PROBE_MAXLEN, approximate=False)


def test_probe_keys_listed_for_consumption_are_ordinary_streams() -> None:
    player = Player(Publisher("reg", consumed=("_audit",)).publish("_audit", {"a": 1}, 0.0))
    assert player.step == SAdd("reg", "_audit")
    player.reply(1)
    assert player.step == XAdd("_audit", DATA)


@pytest.mark.parametrize(
    ("key", "payload", "error"),
    [
        ("", {"a": 1}, StreamKeyError),
        (7, {"a": 1}, StreamKeyError),
        ("reg", {}, StreamKeyError),
        ("e", {"a": {1, 2}}, PayloadError),
        ("e", ["x"], PayloadError),
    ],
)
def test_bad_input_raises_before_any_command(
    key: Any, payload: Any, error: type[Exception]
) -> None:
    flow = Publisher("reg").publish(key, payload, 0.0)
    with pytest.raises(error):
        next(flow)


def connected(pub: Publisher) -> Publisher:
    """A publisher that has reached Redis once (so it retries)."""
    flow = Player(pub.publish("warm", {"a": 1}, 0.0))
    flow.reply(1)
    flow.reply(b"0-1")
    return pub


def test_idempotent_publish_uses_the_script_with_a_marker_in_the_same_slot() -> None:
    pub = Publisher("reg", idempotency_window_ms=60_000)
    player = Player(pub.publish("events", {"a": 1}, 0.0, idempotency_key="Ev1"))
    assert player.step == SAdd("reg", "events")
    player.reply(1)
    script = player.step
    assert isinstance(script, EvalSha)
    assert script.sha == IDEMPOTENT_XADD.sha
    assert script.keys == ("events", "abe_redis:idem:{events}:Ev1")
    assert script.args == (60_000, "", "0", b"data", b'{"a":1}')  # "0": may create it
    player.reply([1, b"5-0"])
    assert player.result == "5-0"


def test_a_duplicate_returns_the_original_id() -> None:
    pub = connected(Publisher("reg"))
    pub.registered["events"] = 0.0
    player = Player(pub.publish("events", {"a": 1}, 0.5, idempotency_key="Ev1"))
    assert isinstance(player.step, EvalSha)
    assert player.step.args[2] == "1"  # registered: a vanished stream is not recreated
    player.reply(ErrorReply("NOSCRIPT No matching script"))
    assert isinstance(player.step, Eval)  # not cached yet: sent in full
    player.reply([0, b"5-0"])
    assert player.result == "5-0"


def test_the_idempotency_key_can_come_from_a_payload_field() -> None:
    pub = Publisher("reg", idempotency_field="event_id")
    player = Player(pub.publish("events", {"event_id": "Ev9"}, 0.0))
    player.reply(1)
    script = player.step
    assert isinstance(script, EvalSha)
    assert script.keys[1] == "abe_redis:idem:{events}:Ev9"


def test_the_marker_follows_an_existing_hash_tag() -> None:
    assert idempotency_marker("{tenant1}.events", "k") == "abe_redis:idem:{tenant1}:k"


@pytest.mark.parametrize("bad", ["", "x" * 300, 1.5, True])
def test_bad_idempotency_keys_are_refused(bad: Any) -> None:
    with pytest.raises(ValidationError, match="idempotency_key"):
        next(Publisher("reg").publish("e", {"a": 1}, 0.0, idempotency_key=bad))


def test_oversize_payloads_are_refused_before_writing() -> None:
    pub = Publisher("reg", max_payload_bytes=100)
    with pytest.raises(PayloadError, match="more than the limit of 100"):
        next(pub.publish("e", {"a": "x" * 200}, 0.0))


@pytest.mark.parametrize("key", ["has space", "tab\there", "nl\n", "x" * 257, "a:dlq", "\x00"])
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(StreamKeyError):
        next(Publisher("reg").publish(key, {"a": 1}, 0.0))


def test_first_publish_raises_transport_errors_at_once() -> None:
    player = Player(Publisher("reg").publish("e", {"a": 1}, 0.0))
    with pytest.raises(ConnectError):
        player.throw(ConnectError("refused"))


def test_a_connected_publisher_retries_within_its_budget_then_raises() -> None:
    pub = connected(Publisher("reg", retry_budget=1.0))
    player = Player(pub.publish("warm", {"a": 2}, 0.0))
    first = player.step
    assert player.deadline == 1.0  # every attempt is bounded by the budget
    player.throw(ConnectError("reset"))
    wait_out(player)
    assert player.step == first  # a fresh attempt of the same write
    with pytest.raises(ConnectError):  # noqa: PT012 - the budget runs out inside the loop
        for _ in range(20):
            player.throw(ConnectError("still down"))
            wait_out(player)
    assert player.now <= 1.0 + 1e-9  # never slept past the budget


def test_a_loading_server_is_retried_even_before_the_first_success() -> None:
    # It answered, so the URL is right: wait for its data set, within budget.
    player = Player(Publisher("reg", retry_budget=1.0).publish("e", {"a": 1}, 0.0))
    first = player.step
    assert first == SAdd("reg", "e")
    loading = ErrorReply("LOADING Redis is loading the dataset in memory")
    player.reply(loading)
    wait_out(player)
    assert player.step == first
    player.reply(1)
    player.reply(b"1-0")
    assert player.done
    assert player.result == "1-0"


def test_a_server_loading_past_the_budget_raises_server_busy() -> None:
    player = Player(Publisher("reg", retry_budget=1.0).publish("e", {"a": 1}, 0.0))
    loading = ErrorReply("LOADING Redis is loading the dataset in memory")
    with pytest.raises(ServerBusy, match="LOADING"):  # noqa: PT012 - raised inside the loop
        for _ in range(20):
            player.reply(loading)
            wait_out(player)


def test_a_first_publish_cut_off_while_loading_raises_server_busy() -> None:
    # Seen on CI (Valkey 9.1): LOADING, then the next attempt cut off by the
    # driver at the deadline. The cut-off is ours, not a sign of a wrong URL,
    # so it is not raised "at once" as a first-contact failure; the caller
    # hears what Redis last said.
    player = Player(Publisher("reg", retry_budget=0.3).publish("e", {"a": 1}, 0.0))
    loading = ErrorReply("LOADING Valkey is loading the dataset in memory")
    player.reply(loading)
    wait_out(player)
    assert player.step == SAdd("reg", "e")  # a second attempt, before the deadline
    player.now = 0.3
    with pytest.raises(ServerBusy, match="LOADING"):
        player.throw(DeadlinePassed("no reply within the budget"))


def test_an_error_reply_to_the_write_is_raised_not_retried() -> None:
    player = Player(Publisher("reg").publish("e", {"a": 1}, 0.0))
    player.reply(1)
    with pytest.raises(CommandError, match="WRONGTYPE"):
        player.reply(ErrorReply("WRONGTYPE Operation against a key holding the wrong kind"))


def test_streams_are_trimmed_safely_every_n_publishes() -> None:
    pub = Publisher("reg", trim_every=2)
    pub.registered["e"] = 0.0
    first = Player(pub.publish("e", {"a": 1}, 0.0))
    first.reply(b"1-0")
    assert first.done
    # The trim comes first: a refusal then raises with nothing written.
    second = Player(pub.publish("e", {"a": 1}, 0.1))
    assert second.step == Batch((Exists("e"), XInfoGroups("e")))
    row = [b"name", b"g", b"consumers", 1, b"pending", 1, b"last-delivered-id", b"9-0"]
    second.reply([1, [row]])
    assert second.step == Batch((XPendingSummary("e", "g"),))
    second.reply([[1, b"4-0", b"4-0", [[b"c", b"1"]]]])
    assert second.step == XTrimMinId("e", "4-0")
    second.reply(3)
    assert second.step == XAdd("e", DATA, nomkstream=True)
    second.reply(b"2-0")
    assert second.result == "2-0"


def test_a_trim_the_acl_refuses_raises_before_writing_and_stays_due() -> None:
    pub = Publisher("reg", trim_every=1)
    pub.registered["e"] = 0.0
    nope = ErrorReply("NOPERM this user has no permissions to run the 'xtrim' command")
    for now in (0.0, 0.1):  # every publish asks again: it never heals by itself
        player = Player(pub.publish("e", {"a": 1}, now))
        assert player.step == Batch((Exists("e"), XInfoGroups("e")))
        player.reply([1, []])
        assert player.step == XTrimMaxLen("e", 1_000_000)
        with pytest.raises(AccessDenied, match=r"xtrim.*needed to trim e safely"):
            player.reply(nope)
    # Another failure only skips this trim: the entry is written.
    player = Player(pub.publish("e", {"a": 1}, 0.2))
    player.reply([1, ErrorReply("ERR no such key")])
    assert player.step == XAdd("e", DATA, nomkstream=True)
    assert pub.since_trim["e"] == 0


def test_streams_without_groups_are_capped() -> None:
    flow = Player(safe_trim("e", ungrouped_maxlen=1000))
    flow.reply([1, []])
    assert flow.step == XTrimMaxLen("e", 1000)
    assert Player(safe_trim("e", None)).reply([1, []]) is None


def test_a_missing_stream_has_no_groups_whatever_the_error_says() -> None:
    # XINFO GROUPS fails on a missing key; EXISTS in the same MULTI says so.
    flow = Player(safe_trim("e", None))
    flow.reply([0, ErrorReply("ERR something else entirely")])
    assert flow.done
    assert flow.result == 0


def test_trim_floor_is_the_slowest_groups_oldest_unfinished_entry() -> None:
    fast = GroupInfo("fast", 1, 0, "100-0", 100, 0)
    slow = GroupInfo("slow", 1, 2, "40-0", 40, 60)
    idle = GroupInfo("new", 0, 0, "0-0", 0, 100)
    none = PendingSummary(0, None, None, ())
    some = PendingSummary(2, "30-0", "40-0", ())
    assert trim_floor([fast, slow], [none, some]) == "30-0"
    assert trim_floor([fast], [none]) == "100-0"
    assert trim_floor([fast, idle], [none, none]) is None  # a group that read nothing yet
    assert trim_floor([], []) is None


def test_publish_many_pipelines_after_checking_everything() -> None:
    pub = Publisher("reg")
    player = Player(pub.publish_many("e", [{"a": 1}, {"a": 2}], 0.0))
    assert player.step == SAdd("reg", "e")
    player.reply(1)
    assert player.step == Batch((XAdd("e", DATA), XAdd("e", ((b"data", b'{"a":2}'),))))
    player.reply([b"1-0", b"2-0"])
    assert player.result == ["1-0", "2-0"]
    with pytest.raises(PayloadError):
        next(pub.publish_many("e", [{"a": 1}, {"a": {1}}], 0.0))


def test_publish_many_dedupes_by_field_through_the_script() -> None:
    pub = Publisher("reg", idempotency_field="event_id")
    pub.registered["e"] = 0.0
    player = Player(pub.publish_many("e", [{"event_id": "A"}, {"x": 1}], 0.0))
    step = player.step
    assert isinstance(step, Batch)
    assert isinstance(step.commands[0], EvalSha)
    assert isinstance(step.commands[1], XAdd)
    player.reply([ErrorReply("NOSCRIPT No matching script"), b"2-0"])
    assert isinstance(player.step, Eval)
    player.reply([0, b"1-0"])
    assert player.result == ["1-0", "2-0"]


def wait_out(player: Player[Any]) -> None:
    """Answer the sleeps a retry yields (the clock check, then the backoff)."""
    while isinstance(player.step, Sleep):
        player.reply(advance=player.step.seconds)


def fast(pub: Publisher, key: str, payload: Any, now: float, idem: str | None = None) -> Any:
    """What the facades do first: validate and encode, then try the fast path."""
    stream, item = pub.checked(key, payload, idem)
    return pub.fast_xadd(stream, item, now)


def test_fast_path_gives_the_lone_xadd_once_the_stream_is_registered() -> None:
    pub = Publisher("reg", maxlen=500)
    assert fast(pub, "events", {"a": 1}, 0.0) is None  # not registered: the flow
    flow = Player(pub.publish("events", {"a": 1}, 0.0))
    flow.reply(1)
    flow.reply(b"1-0")
    assert fast(pub, "events", {"a": 1}, 0.5) == XAdd("events", DATA, 500, nomkstream=True)
    assert pub.since_trim["events"] == 1  # counted once written, not when asked
    assert pub.fast_written("events", "2-0")
    assert pub.since_trim["events"] == 2  # counted like a publish through the flow
    assert fast(pub, "events", {"a": 1}, REGISTRY_REFRESH + 1) is None  # refresh due


def test_fast_path_leaves_idempotency_probes_trims_and_outages_to_the_flow() -> None:
    pub = connected(Publisher("reg", trim_every=3, idempotency_field="event_id"))
    flow = Player(pub.publish("e", {"a": 1}, 0.0))
    flow.reply(1)
    flow.reply(b"1-0")
    assert fast(pub, "e", {"a": 1}, 0.1) is not None
    assert pub.fast_written("e", "2-0")
    assert fast(pub, "e", {"a": 1, "event_id": "E1"}, 0.1) is None
    assert fast(pub, "e", {"a": 1}, 0.1, idem="k") is None
    assert fast(pub, "_health_check", {"a": 1}, 0.1) is None
    assert fast(pub, "e", {"a": 1}, 0.2) is None  # the third publish trims
    pub.since_trim["e"] = 0
    pub.backoff.failure(ConnectError("down"), 0.3)
    assert fast(pub, "e", {"a": 1}, 0.3) is None  # the flow logs the recovery


def test_the_fast_path_writes_what_the_flow_would() -> None:
    pub = connected(Publisher("reg"))
    flow = Player(pub.publish("e", {"a": 1}, 0.0))
    flow.reply(1)
    flow.reply(b"1-0")
    stream, item = pub.checked("e", {"a": 1})
    through_flow = Player(pub.write(stream, item, 0.5))
    assert through_flow.step == fast(pub, "e", {"a": 1}, 0.5)


@pytest.mark.parametrize(
    ("key", "payload", "error"),
    [("", {"a": 1}, StreamKeyError), ("e", {"a": {1, 2}}, PayloadError), ("e", [1], PayloadError)],
)
def test_checked_validates_like_publish(key: str, payload: Any, error: type[Exception]) -> None:
    pub = connected(Publisher("reg"))
    pub.registered["e"] = 0.0
    with pytest.raises(error):
        pub.checked(key, payload)
    with pytest.raises(error):
        Player(pub.publish(key, payload, 0.0))


def test_a_fast_xadd_that_failed_is_counted_once_through_the_flow() -> None:
    # Regression: the fast path counted the publish toward the next trim,
    # then the flow that retried it counted it again.
    pub = connected(Publisher("reg", trim_every=1000))
    pub.registered["e"] = 0.0
    stream, item = pub.checked("e", {"a": 1})
    assert pub.fast_xadd(stream, item, 0.5) is not None  # sent; it fails
    retry = Player(pub.write(stream, item, 0.5))
    retry.reply(b"5-0")
    assert retry.result == "5-0"
    assert pub.since_trim["e"] == 1


def test_a_trim_cut_off_by_a_lost_connection_does_not_fail_the_publish() -> None:
    pub = connected(Publisher("reg"))
    pub.trim_every = 1
    pub.registered["e"] = 0.0
    player = Player(pub.publish("e", {"a": 1}, 0.0))
    assert player.step == Batch((Exists("e"), XInfoGroups("e")))
    player.throw(ConnectError("connection lost"))  # the trim is skipped
    assert player.step == XAdd("e", DATA, nomkstream=True)
    player.reply(b"1-0")
    assert player.result == "1-0"


OOM = ErrorReply("OOM command not allowed when used memory > 'maxmemory'.")


def test_a_vanished_stream_is_registered_again_before_it_is_written() -> None:
    # FLUSHALL, or the stream deleted: XADD NOMKSTREAM writes nothing, and
    # the write goes again with the SADD in front, in the same call.
    pub = connected(Publisher("reg"))
    pub.registered["e"] = 0.0
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    assert player.step == XAdd("e", DATA, nomkstream=True)
    player.reply(None)
    assert player.step == SAdd("reg", "e")
    player.reply(1)
    assert player.step == XAdd("e", DATA)
    player.reply(b"7-0")
    assert player.result == "7-0"
    assert pub.registered["e"] == 0.5


def test_a_fast_xadd_that_found_no_stream_leaves_the_write_to_the_flow() -> None:
    pub = connected(Publisher("reg"))
    pub.registered["e"] = 0.0
    stream, item = pub.checked("e", {"a": 1})
    assert pub.fast_xadd(stream, item, 0.5) is not None
    assert not pub.fast_written("e", None)
    player = Player(pub.write(stream, item, 0.5))
    assert player.step == SAdd("reg", "e")


def test_the_registry_is_refreshed_every_second_before_the_write() -> None:
    pub = connected(Publisher("reg"))
    pub.registered["e"] = 0.0
    assert REGISTRY_REFRESH == 1.0
    player = Player(pub.publish("e", {"a": 1}, 1.0))
    assert player.step == SAdd("reg", "e")
    player.reply(1)
    assert player.step == XAdd("e", DATA)


def test_an_idempotent_write_to_a_vanished_stream_goes_again_registered() -> None:
    pub = connected(Publisher("reg"))
    pub.registered["e"] = 0.0
    player = Player(pub.publish("e", {"a": 1}, 0.5, idempotency_key="k"))
    assert isinstance(player.step, EvalSha)
    player.reply([2])  # the script found no stream: nothing written, no marker
    assert player.step == SAdd("reg", "e")
    player.reply(1)
    step = player.step
    assert isinstance(step, EvalSha)
    assert step.args[2] == "0"
    player.reply([1, b"8-0"])
    assert player.result == "8-0"


def only(stream: str) -> Publisher:
    """A connected publisher that has written to ``stream`` only."""
    pub = connected(Publisher("reg"))
    pub.registered.clear()
    pub.registered[stream] = 0.0
    return pub


GROUP_DONE = [[b"name", b"g", b"consumers", 1, b"pending", 0, b"last-delivered-id", b"90-0"]]


def test_out_of_memory_trims_what_every_group_finished_then_writes() -> None:
    pub = only("e")
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    player.reply(OOM)
    # The safe trim, exact this time: memory is what it is for.
    assert player.step == Batch((Exists("e"), XInfoGroups("e")))
    player.reply([1, GROUP_DONE])
    assert player.step == Batch((XPendingSummary("e", "g"),))
    player.reply([[0, None, None, None]])
    assert player.step == XTrimMinId("e", "90-0", approximate=False)
    player.reply(11_550)
    assert player.step == XAdd("e", DATA, nomkstream=True)  # once more
    player.reply(b"91-0")
    assert player.result == "91-0"


def test_out_of_memory_that_trimming_cannot_fix_is_raised_typed() -> None:
    pub = only("e")
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    player.reply(OOM)
    player.reply([1, GROUP_DONE])
    player.reply([[3, b"1-0", b"3-0", [[b"c", b"3"]]]])  # a group still holds the oldest
    assert player.step == XTrimMinId("e", "1-0", approximate=False)
    with pytest.raises(OutOfMemory, match="out of memory"):
        player.reply(0)  # nothing could go: raised at once, not written


def test_out_of_memory_again_after_a_trim_is_raised() -> None:
    pub = only("e")
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    player.reply(OOM)
    player.reply([1, GROUP_DONE])
    player.reply([[0, None, None, None]])
    player.reply(5)
    assert player.step == XAdd("e", DATA, nomkstream=True)
    with pytest.raises(OutOfMemory):
        player.reply(OOM)
    # Another publish within a second does not trim again.
    again = Player(pub.publish("e", {"a": 1}, 0.9))
    with pytest.raises(OutOfMemory):
        again.reply(OOM)


def test_refused_permissions_are_access_denied_not_retried() -> None:
    pub = connected(Publisher("reg"))
    pub.registered["e"] = 0.0
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    with pytest.raises(AccessDenied, match="NOPERM"):
        player.reply(ErrorReply("NOPERM User app has no permissions to run the 'xadd' command"))


def test_the_budget_bounds_the_whole_call_with_slow_attempts() -> None:
    # Each attempt took its full socket timeout (thrown in after 2 s): the
    # call ends at the budget, not after budget + attempts.
    pub = connected(Publisher("reg", retry_budget=5.0))
    pub.registered["e"] = 0.0
    player = Player(pub.publish("e", {"a": 1}, 10.0))
    assert player.deadline == 15.0
    with pytest.raises(TransportTimeout):  # noqa: PT012 - raised inside the loop
        for _ in range(10):
            assert player.deadline == 15.0
            # The driver cuts an attempt short at the deadline (Within).
            player.now = min(player.now + 2.0, player.deadline)
            player.throw(TransportTimeout("no reply"))
            wait_out(player)
    assert player.now <= 15.0


def test_a_durable_publish_waits_for_its_replicas_in_the_same_round_trip() -> None:
    pub = connected(Publisher("reg", wait_ms=500))
    pub.wait_replicas = 1
    pub.registered["e"] = 0.0
    stream, item = pub.checked("e", {"a": 1})
    assert pub.fast_xadd(stream, item, 0.5) is None  # the flow sends the WAIT
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    assert player.step == Batch((XAdd("e", DATA, nomkstream=True), Wait("e", 1, 500)))
    assert player.step.keys == ("e",)  # a router keeps WAIT with its write
    player.reply([b"3-0", 1])
    assert player.result == "3-0"


def test_a_durable_publish_too_few_replicas_confirmed_is_not_replicated() -> None:
    pub = connected(Publisher("reg", wait_ms=500))
    pub.wait_replicas = 2
    pub.registered["e"] = 0.0
    player = Player(pub.publish("e", {"a": 1}, 0.5))
    with pytest.raises(NotReplicated, match=r"3-0.* 1 of 2 replicas"):
        player.reply([b"3-0", 1])  # written, not retried: a retry would write it twice
