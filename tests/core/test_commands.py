from __future__ import annotations

import pytest

from abe_redis._core.commands import (
    Eval,
    EvalSha,
    GroupMissing,
    Ping,
    SAdd,
    SMembers,
    Unblocked,
    XAck,
    XAdd,
    XAutoClaim,
    XClaimEntries,
    XClaimIds,
    XDel,
    XGroupCreate,
    XInfoConsumers,
    XInfoGroups,
    XLen,
    XPendingRange,
    XPendingSummary,
    XRange,
    XReadGroup,
    XTrimMaxLen,
    XTrimMinId,
)
from abe_redis._core.entries import (
    ClaimPage,
    ConsumerInfo,
    ConsumerPending,
    GroupInfo,
    PendingEntry,
    PendingSummary,
    StreamEntry,
)
from abe_redis._core.replies import ErrorKind, ErrorReply, integer
from abe_redis._core.status import ServerInfo, ServerTime
from abe_redis._core.steps import NOT_RUN, Batch, Race
from abe_redis.errors import (
    AccessDenied,
    CommandError,
    OutOfMemory,
    RemoteProtocolError,
    ServerBusy,
)

READ = XReadGroup("g", "c", "s", ">", 10)


def test_xadd_args_without_and_with_trimming() -> None:
    fields = ((b"data", b"{}"),)
    assert XAdd("s", fields).to_args() == ("XADD", "s", "*", b"data", b"{}")
    assert XAdd("s", fields, 100).to_args() == (
        "XADD",
        "s",
        "MAXLEN",
        "~",
        100,
        "*",
        b"data",
        b"{}",
    )
    assert XAdd("s", fields, 5, approximate=False).to_args()[2:5] == ("MAXLEN", "=", 5)
    assert XAdd("s", fields).parse_reply(b"1-0") == "1-0"


def test_xreadgroup_args() -> None:
    assert READ.to_args() == ("XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s", ">")
    blocking = XReadGroup("g", "c", "s", "0", 5, 1000)
    assert blocking.to_args()[6:8] == ("BLOCK", 1000)
    assert blocking.to_args()[-1] == "0"


def test_xreadgroup_parses_resp2_and_resp3() -> None:
    entries = [[b"1-0", [b"data", b'{"a":1}']], [b"2-0", [b"data", b"{}"]]]
    expected = (
        StreamEntry("s", "1-0", ((b"data", b'{"a":1}'),)),
        StreamEntry("s", "2-0", ((b"data", b"{}"),)),
    )
    assert READ.parse_reply([[b"s", entries]]) == expected
    assert READ.parse_reply({b"s": entries}) == expected


def test_xreadgroup_timeout_and_deleted_entries() -> None:
    assert READ.parse_reply(None) == ()
    assert READ.parse_reply([[b"s", [[b"3-0", None]]]]) == (StreamEntry("s", "3-0", None),)


def test_xreadgroup_nogroup_is_a_value() -> None:
    reply = ErrorReply("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP")
    assert READ.parse_reply(reply) == GroupMissing("s")


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage",
        [[b"other", []]],
        [[b"s", [[b"1-0"]]]],
        [[b"s", [[b"1-0", [b"odd"]]]]],
        [[b"s", [[b"1-0", [b"k", 5]]]]],
    ],
)
def test_xreadgroup_rejects_malformed_replies(raw: object) -> None:
    with pytest.raises(RemoteProtocolError):
        READ.parse_reply(raw)


def test_unexpected_error_reply_raises_command_error() -> None:
    with pytest.raises(CommandError, match="XREADGROUP failed: WRONGTYPE"):
        READ.parse_reply(ErrorReply("WRONGTYPE Operation against a key"))


def test_xgroup_create() -> None:
    cmd = XGroupCreate("s", "g")
    assert cmd.to_args() == ("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM")
    assert cmd.parse_reply(b"OK") is True
    assert cmd.parse_reply(ErrorReply("BUSYGROUP Consumer Group name already exists")) is False
    with pytest.raises(CommandError):
        cmd.parse_reply(ErrorReply("WRONGTYPE Operation against a key"))


def test_xautoclaim_redis7_and_redis62_shapes() -> None:
    cmd = XAutoClaim("s", "g", "me", 30_000, "0-0", 10)
    assert cmd.to_args() == ("XAUTOCLAIM", "s", "g", "me", 30_000, "0-0", "COUNT", 10)
    page = cmd.parse_reply([b"5-0", [[b"1-0", [b"data", b"{}"]]], [b"2-0"]])
    assert page == ClaimPage("5-0", (StreamEntry("s", "1-0", ((b"data", b"{}"),)),), ("2-0",))
    assert cmd.parse_reply([b"0-0", []]) == ClaimPage("0-0", (), ())
    assert cmd.parse_reply(ErrorReply("NOGROUP no group")) == GroupMissing("s")
    with pytest.raises(RemoteProtocolError):
        cmd.parse_reply([b"0-0"])


def test_xclaim_ids_and_release() -> None:
    release = XClaimIds("s", "g", "me", ("1-0", "2-0"), 30_000)
    assert release.to_args() == (
        "XCLAIM",
        "s",
        "g",
        "me",
        0,
        "1-0",
        "2-0",
        "IDLE",
        30_000,
        "JUSTID",
    )
    assert release.parse_reply([b"1-0", b"2-0"]) == ("1-0", "2-0")
    assert XClaimIds("s", "g", "me", ("1-0",)).to_args()[-2:] == ("1-0", "JUSTID")


def test_xclaim_entries_skips_deleted_ones() -> None:
    cmd = XClaimEntries("s", "g", "me", ("1-0", "2-0"))
    assert cmd.to_args() == ("XCLAIM", "s", "g", "me", 0, "1-0", "2-0")
    assert cmd.parse_reply([[b"1-0", [b"data", b"{}"]], None]) == (
        StreamEntry("s", "1-0", ((b"data", b"{}"),)),
    )
    assert cmd.parse_reply(ErrorReply("NOGROUP x")) == GroupMissing("s")


def test_xrange_xdel_xtrim() -> None:
    assert XRange("s", count=5).to_args() == ("XRANGE", "s", "-", "+", "COUNT", 5)
    assert XRange("s").parse_reply([[b"1-0", [b"a", b"b"]]]) == (
        StreamEntry("s", "1-0", ((b"a", b"b"),)),
    )
    assert XDel("s", ("1-0",)).to_args() == ("XDEL", "s", "1-0")
    assert XTrimMinId("s", "5-0").to_args() == ("XTRIM", "s", "MINID", "~", "5-0")
    assert XTrimMaxLen("s", 10).to_args() == ("XTRIM", "s", "MAXLEN", "~", 10)
    assert XTrimMinId("s", "5-0").parse_reply(3) == 3


def test_xinfo_consumers() -> None:
    row = [b"name", b"c1", b"pending", 2, b"idle", 1500]
    assert XInfoConsumers("s", "g").parse_reply([row]) == (ConsumerInfo("c1", 2, 1500, None),)
    # Redis 7.2+ says since when the consumer got nothing; -1: it never got any.
    newer = {b"name": b"c1", b"pending": 0, b"idle": 20, b"inactive": 9000}
    never = [b"name", b"c2", b"pending", 0, b"idle", 5, b"inactive", -1]
    assert XInfoConsumers("s", "g").parse_reply([newer, never]) == (
        ConsumerInfo("c1", 0, 20, 9000),
        ConsumerInfo("c2", 0, 5, None),
    )
    with pytest.raises(RemoteProtocolError):
        XInfoConsumers("s", "g").parse_reply([[b"name", b"c1"]])


def test_xack_sadd_smembers_xlen() -> None:
    assert XAck("s", "g", ("1-0", "2-0")).to_args() == ("XACK", "s", "g", "1-0", "2-0")
    assert XAck("s", "g", ("1-0",)).parse_reply(1) == 1
    assert SAdd("r", "s").parse_reply(0) == 0
    assert SMembers("r").parse_reply([b"a", b"b"]) == frozenset({"a", "b"})
    assert SMembers("r").parse_reply({b"a"}) == frozenset({"a"})
    assert XLen("s").parse_reply(3) == 3


def test_xpending_summary() -> None:
    cmd = XPendingSummary("s", "g")
    assert cmd.parse_reply([0, None, None, None]) == PendingSummary(0, None, None, ())
    assert cmd.parse_reply([3, b"1-0", b"3-0", [[b"c1", b"2"], [b"c2", b"1"]]]) == PendingSummary(
        3, "1-0", "3-0", (ConsumerPending("c1", 2), ConsumerPending("c2", 1))
    )


def test_xpending_range() -> None:
    cmd = XPendingRange("s", "g", count=10, consumer="c1")
    assert cmd.to_args() == ("XPENDING", "s", "g", "-", "+", 10, "c1")
    assert cmd.parse_reply([[b"1-0", b"c1", 1500, 2]]) == (PendingEntry("1-0", "c1", 1500, 2),)


def test_xinfo_groups_resp2_resp3_and_missing_stream() -> None:
    row = [b"name", b"g", b"consumers", 2, b"pending", 1, b"last-delivered-id", b"4-0",
           b"entries-read", 4, b"lag", 0]  # fmt: skip
    expected = (GroupInfo("g", 2, 1, "4-0", 4, 0),)
    assert XInfoGroups("s").parse_reply([row]) == expected
    as_map = {row[i]: row[i + 1] for i in range(0, len(row), 2)}
    assert XInfoGroups("s").parse_reply([as_map]) == expected
    with pytest.raises(CommandError, match="no such key"):
        XInfoGroups("s").parse_reply(ErrorReply("ERR no such key"))
    with pytest.raises(RemoteProtocolError):
        XInfoGroups("s").parse_reply([[b"name", b"g"]])


def test_batch_and_race_parse_each_member() -> None:
    pipe = Batch((SAdd("r", "s"), XAdd("s", ((b"data", b"{}"),))))
    assert pipe.parse_reply([1, b"1-0"]) == (1, "1-0")
    with pytest.raises(RemoteProtocolError):
        pipe.parse_reply([1])
    assert pipe.keys == ("r", "s")
    any_of = Race((READ, XReadGroup("g", "c", "t", ">", 10)))
    assert any_of.parse_reply([None, NOT_RUN]) == ((), NOT_RUN)


def test_integer_rejects_non_numbers() -> None:
    assert integer(b"12") == 12
    for bad in (True, b"x", None):
        with pytest.raises(RemoteProtocolError):
            integer(bad)


def test_error_replies_are_told_apart_by_code_not_wording() -> None:
    assert ErrorReply("NOGROUP No such key 's' or consumer group 'g'").kind is ErrorKind.NO_GROUP
    assert (
        ErrorReply("LOADING Redis is loading the dataset in memory").kind is ErrorKind.UNAVAILABLE
    )
    assert ErrorReply("ERR no such key").kind is ErrorKind.FAILED
    assert ErrorReply("NOPERM user has no permissions").kind is ErrorKind.REFUSED
    # fakeredis' TCP server puts ERR in front of the code.
    assert ErrorReply("ERR BUSYGROUP Consumer Group name already exists").kind is ErrorKind.EXISTS
    assert ErrorReply("ERR wrong number of arguments").code == "ERR"
    with pytest.raises(ServerBusy):
        XAck("s", "g", ("1-0",)).parse_reply(ErrorReply("TRYAGAIN Multiple keys request"))


@pytest.mark.parametrize(
    ("reply", "kind", "raised"),
    [
        (
            "READONLY You can't write against a read only replica.",
            ErrorKind.UNAVAILABLE,
            ServerBusy,
        ),
        ("NOREPLICAS Not enough good replicas to write.", ErrorKind.UNAVAILABLE, ServerBusy),
        ("MASTERDOWN Link with MASTER is down", ErrorKind.UNAVAILABLE, ServerBusy),
        ("CLUSTERDOWN The cluster is down", ErrorKind.UNAVAILABLE, ServerBusy),
        ("UNBLOCKED the stream key no longer exists", ErrorKind.UNBLOCKED, ServerBusy),
        (
            "OOM command not allowed when used memory > 'maxmemory'.",
            ErrorKind.OUT_OF_MEMORY,
            OutOfMemory,
        ),
        (
            "NOPERM this user has no permissions to run the 'xadd' command",
            ErrorKind.REFUSED,
            AccessDenied,
        ),
        (
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            ErrorKind.FAILED,
            CommandError,
        ),
    ],
)
def test_every_reply_kind_maps_to_one_error(reply: str, kind: ErrorKind, raised: type) -> None:
    error = ErrorReply(reply)
    assert error.kind is kind
    with pytest.raises(raised) as info:
        XAdd("s", ()).parse_reply(error)
    assert type(info.value) is raised
    assert reply.split()[0] in str(info.value)


def test_an_unblocked_read_is_a_value() -> None:
    read = XReadGroup("g", "c", "s", ">", 10, 1000)
    gone = ErrorReply("UNBLOCKED the stream key no longer exists")
    assert read.parse_reply(gone) == Unblocked("s", gone.message)
    assert XAdd("s", (), nomkstream=True).parse_reply(None) is None
    assert XAdd("s", (), nomkstream=True).to_args()[:3] == ("XADD", "s", "NOMKSTREAM")


def test_every_command_declares_the_keys_it_touches() -> None:
    assert XAck("s", "g", ("1-0",)).keys == ("s",)
    assert SAdd("reg", "s").keys == ("reg",)
    assert Ping().keys == ()
    assert EvalSha("sha", ("s", "m"), ()).keys == ("s", "m")
    assert Batch((SAdd("reg", "s"), XAdd("s", ()), XLen("s"))).keys == ("reg", "s")


def test_a_script_refused_a_command_by_the_acl_is_access_denied() -> None:
    # Redis 7.0 gives no NOPERM code for a command inside a script.
    refused = ErrorReply(
        "ERR The user executing the script can't run this command or subcommand "
        "script: 792c5d69, on @user_script:11."
    )
    assert refused.kind is ErrorKind.REFUSED
    with pytest.raises(AccessDenied, match="script"):
        EvalSha("792c5d69", ("k",), ()).parse_reply(refused)
    # Redis 8.0's wording.
    eight = ErrorReply(
        "ERR ACL failure in script: User app has no permissions to run the 'xadd' command "
        "script: 792c5d69, on @user_script:11."
    )
    assert eight.kind is ErrorKind.REFUSED


def test_a_refused_command_in_a_script_is_named_from_the_scripts_line() -> None:
    # Redis 7.0 names the line only; the source says what runs there.
    source = "\nlocal prior = redis.call('GET', KEYS[2])\nredis.call('XINFO', 'CONSUMERS', KEYS[1])"
    for line, named in ((2, "GET"), (3, "XINFO CONSUMERS")):
        refused = ErrorReply(
            "ERR The user executing the script can't run this command or subcommand "
            f"script: 792c5d69, on @user_script:{line}."
        )
        with pytest.raises(AccessDenied, match=f"refused {named} in a script"):
            EvalSha("792c5d69", ("k",), (), source).parse_reply(refused)
        with pytest.raises(AccessDenied, match=f"refused {named} in a script"):
            Eval(source, ("k",), ()).parse_reply(refused)
    # A line out of range, or no source: the refusal as Redis worded it.
    far = ErrorReply(
        "ERR The user executing the script can't run this command or subcommand "
        "script: 792c5d69, on @user_script:99."
    )
    with pytest.raises(AccessDenied, match="Redis refused EVALSHA: ERR"):
        EvalSha("792c5d69", ("k",), (), source).parse_reply(far)


def test_a_transaction_discarded_because_exec_was_refused_is_access_denied() -> None:
    refused = ErrorReply(
        "EXECABORT Transaction discarded because of: NOPERM this user has no permissions "
        "to run the 'exec' command"
    )
    assert refused.kind is ErrorKind.REFUSED
    with pytest.raises(AccessDenied, match="'exec'"):
        XLen("s").parse_reply(refused)
    previous = ErrorReply("EXECABORT Transaction discarded because of previous errors.")
    assert previous.kind is ErrorKind.FAILED


def test_a_refused_transaction_names_the_command_that_caused_it() -> None:
    batch = Batch((XAdd("s:dlq", ((b"data", b"{}"),)), XAck("s", "g", ("1-0",))), True)
    abort = ErrorReply("EXECABORT Transaction discarded because of previous errors.")
    nope = ErrorReply("NOPERM this user has no permissions to run the 'xack' command")
    with pytest.raises(AccessDenied, match=r"XACK.*'xack'"):
        batch.parse_reply([abort, nope])


def test_server_info_and_time_are_read_for_the_status() -> None:
    assert ServerInfo().parse_reply(b"# Server\r\nredis_version:7.0.15\r\n") == "Redis 7.0.15"
    valkey = b"# Server\r\nredis_version:7.2.4\r\nvalkey_version:9.1.2\r\n"
    assert ServerInfo().parse_reply(valkey) == "Valkey 9.1.2"
    assert ServerTime().parse_reply([b"1700000000", b"123456"]) == 1_700_000_000_123
    with pytest.raises(RemoteProtocolError):
        ServerTime().parse_reply([b"1"])
