"""Safe trimming: never delete an entry some group has not delivered and acknowledged.

The floor of a stream is the smallest, over its groups, of the group's
oldest pending id, or its last-delivered id when nothing is pending. Every
entry below the floor was delivered to every group and acknowledged, so
``XTRIM MINID ~ floor`` loses nothing. The floor only moves forward while
the trim is computed (acks and deliveries advance it), so the three round
trips need no transaction. Streams no group reads yet are capped at
``ungrouped_maxlen`` entries (None: never).
"""

from __future__ import annotations

from collections.abc import Sequence

from .commands import Pipeline, XInfoGroups, XPendingSummary, XTrimMaxLen, XTrimMinId
from .entries import GroupInfo, PendingSummary
from .steps import Flow


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


def trim_floor(groups: Sequence[GroupInfo], pending: Sequence[PendingSummary]) -> str | None:
    """The id below which every group is done, or None when nothing can go."""
    marks = [
        p.min_id if p.count and p.min_id is not None else g.last_delivered_id
        for g, p in zip(groups, pending, strict=True)
    ]
    if not marks:
        return None
    floor = min(marks, key=_order)
    return None if _order(floor) == (0, 0) else floor


def safe_trim(stream: str, ungrouped_maxlen: int | None) -> Flow[int]:
    """Flow: trim ``stream`` as far as is safe; returns how many entries went."""
    info = XInfoGroups(stream)
    resume = yield info
    groups = info.parse_reply(resume.reply)
    if not groups:
        if ungrouped_maxlen is None:
            return 0
        cap = XTrimMaxLen(stream, ungrouped_maxlen)
        resume = yield cap
        return cap.parse_reply(resume.reply)
    summaries = Pipeline(tuple(XPendingSummary(stream, g.name) for g in groups))
    resume = yield summaries
    floor = trim_floor(groups, summaries.parse_reply(resume.reply))
    if floor is None:
        return 0
    trim = XTrimMinId(stream, floor)
    resume = yield trim
    return trim.parse_reply(resume.reply)
