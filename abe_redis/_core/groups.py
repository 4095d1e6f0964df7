"""Finding the streams to read, and recovering a consumer group that vanished.

* Discovery: the streams are ``REDIS_STREAMS`` when set, or else every
  stream in the registry set except internal ones (keys starting with
  ``_``). The group is created on each new one from id ``0``, so entries
  published before any worker ran are delivered. ``BUSYGROUP`` means it
  exists: a value, not an error.
* Recovery: a read answered NOGROUP (the stream was deleted, the group
  destroyed, or the server restarted without its data). By the
  :class:`GroupPolicy` the group is created again from the start or the
  end of the stream, or :class:`GroupMissingError` ends consuming.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from ..errors import AccessDenied, CommandError, GroupMissingError
from .commands import Exists, SMembers, XGroupCreate, XInfoGroups
from .keys import is_internal
from .policy import GroupPolicy
from .steps import Batch, Flow, RoundTrip

logger = logging.getLogger("abe_redis")
Call = Callable[[RoundTrip], Flow[Any]]
"""How a consumer runs one round trip (with its retries)."""


def discover(
    call: Call,
    group: str,
    registry_key: str,
    configured: tuple[str, ...] | None,
    known: Collection[str],
) -> Flow[list[str]]:
    """Flow: the streams to read that are not in ``known``, with their group created."""
    if configured is not None:
        wanted: list[str] = list(configured)
    else:
        members: frozenset[str] = yield from call(SMembers(registry_key))
        wanted = sorted(m for m in members if not is_internal(m))
    new = [s for s in wanted if s not in known]
    if not new:
        return new
    created = yield from call(Batch(tuple(XGroupCreate(s, group, "0") for s in new)))
    ready = []
    for stream, outcome in zip(new, created, strict=True):
        # None: out of memory, XGROUP CREATE is refused before Redis looks.
        # Read the stream only if its group is there already; else try again
        # at the next discovery (reading is what frees memory).
        if outcome is None and not (yield from _has_group(call, stream, group)):
            logger.warning(
                "cannot create group %s on %s: Redis is out of memory; will try again",
                group,
                stream,
            )
            continue
        ready.append(stream)
    return ready


def _has_group(call: Call, stream: str, group: str) -> Flow[bool]:
    """Flow: whether ``stream`` has ``group``, asked with commands OOM allows."""
    if not (yield from call(Exists(stream))):
        return False
    try:
        infos = yield from call(XInfoGroups(stream))
    except AccessDenied:
        raise
    except CommandError:  # deleted in between
        return False
    return any(info.name == group for info in infos)


def recover(call: Call, stream: str, group: str, policy: GroupPolicy) -> Flow[bool]:
    """Flow: recreate the vanished ``group`` of ``stream`` as ``policy`` says.

    Returns False when Redis is out of memory and the group could not be
    created yet (the caller reads the stream again later).

    Raises:
        GroupMissingError: the policy is ``fail``.
    """
    if policy is GroupPolicy.FAIL:
        raise GroupMissingError(f"consumer group {group!r} of stream {stream!r} vanished")
    logger.warning(
        "consumer group %s of stream %s vanished; recreating it from %s",
        group,
        stream,
        "the start of the stream" if policy is GroupPolicy.RECREATE_FROM_START else "its end",
    )
    created = yield from call(XGroupCreate(stream, group, policy.value))
    return created is not None
