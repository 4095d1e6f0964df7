"""Safe trimming: never delete an entry some group has not delivered and acknowledged.

The floor of a stream is the smallest, over its groups, of the group's
oldest pending id, or its last-delivered id when nothing is pending. Every
entry below the floor was delivered to every group and acknowledged, so
``XTRIM MINID ~ floor`` loses nothing. The floor only moves forward while
the trim is computed (acks and deliveries advance it), so the round trips
need no transaction. Streams no group reads yet are capped at
``ungrouped_maxlen`` entries (None: never).
"""

from __future__ import annotations

from collections.abc import Sequence

from .commands import Exists, XInfoGroups, XPendingSummary, XTrimMaxLen, XTrimMinId
from .entries import GroupInfo, PendingSummary
from .ids import id_order
from .steps import Batch, Flow, once, run_batch


def group_infos(stream: str) -> Flow[tuple[GroupInfo, ...]]:
    """Flow: the groups of ``stream``; none when the stream does not exist.

    XINFO GROUPS fails on a missing key, so EXISTS asks first, in the same
    round trip: whether the stream exists is a value, not an error text. Not
    in MULTI: Redis refuses every command queued in MULTI once it is out of
    memory, and trimming is how a publisher makes room then. (A stream
    deleted between the two makes XINFO fail: the trim is skipped.)
    """
    exists, info = Exists(stream), XInfoGroups(stream)
    resume = yield Batch((exists, info))
    raw = resume.reply
    if not exists.parse_reply(raw[0]):
        return ()
    return info.parse_reply(raw[1])


def trim_floor(groups: Sequence[GroupInfo], pending: Sequence[PendingSummary]) -> str | None:
    """The id below which every group is done, or None when nothing can go."""
    marks = [
        p.min_id if p.count and p.min_id is not None else g.last_delivered_id
        for g, p in zip(groups, pending, strict=True)
    ]
    if not marks:
        return None
    floor = min(marks, key=id_order)
    return None if id_order(floor) == (0, 0) else floor


def safe_trim(stream: str, ungrouped_maxlen: int | None, *, exact: bool = False) -> Flow[int]:
    """Flow: trim ``stream`` as far as is safe; returns how many entries went.

    ``exact`` trims to the entry (to free memory); otherwise whole nodes only
    (``~``), which is cheaper for Redis.
    """
    groups = yield from group_infos(stream)
    if not groups:
        if ungrouped_maxlen is None:
            return 0
        return (yield from once(XTrimMaxLen(stream, ungrouped_maxlen)))
    summaries = yield from run_batch(Batch(tuple(XPendingSummary(stream, g.name) for g in groups)))
    floor = trim_floor(groups, summaries)
    if floor is None:
        return 0
    return (yield from once(XTrimMinId(stream, floor, approximate=not exact)))
