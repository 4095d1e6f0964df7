"""Stream ids: ``<ms>-<seq>``, ordered as numbers, not as text."""

from __future__ import annotations


def id_order(entry_id: str) -> tuple[int, int]:
    """The sort key of a stream id (``"10-0"`` comes after ``"9-5"``)."""
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


def id_ms(entry_id: str) -> int:
    """The time part of a stream id, in ms: when the entry was added."""
    return id_order(entry_id)[0]
