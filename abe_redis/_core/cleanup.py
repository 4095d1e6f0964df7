"""Consumer clean-up: other consumers of the group that are idle and hold nothing.

Every ``stale_check_interval`` a consumer deletes, on each of its streams,
the other consumers of its group idle at least ``stale_consumer_ms`` with
nothing pending (a script, so the check and the delete are one step;
deleting one with pending entries would drop them). It is housekeeping:
after a transport error it is skipped until the next interval; an ACL
refusal raises :class:`AccessDenied` (it never heals by itself).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..errors import AccessDenied, CommandError, TransportError
from .retry import Backoff
from .scripts import DELETE_STALE_CONSUMERS, call
from .steps import Flow, Interrupted, Sleep

logger = logging.getLogger("abe_redis")


def remove_stale_consumers(
    streams: Iterable[str],
    group: str,
    consumer: str,
    stale_ms: int,
    backoff: Backoff,
    now: float,
) -> Flow[int]:
    """Flow: delete stale consumers of ``group`` on each stream; returns how many went."""
    removed = 0
    for stream in list(streams):
        try:
            gone = yield from call(
                DELETE_STALE_CONSUMERS, (stream,), (group, consumer, stale_ms, "delete")
            )
        except Interrupted:
            return removed
        except TransportError as exc:
            yield Sleep(backoff.failure(exc, now))
            return removed
        except AccessDenied as exc:
            # Never heals by itself; skipping it quietly would leave dead
            # consumers piling up in every group.
            raise exc.needed("to remove stale consumers; or set REDIS_STALE_CONSUMER_MS=0") from exc
        except CommandError as exc:
            # The stream vanished since it was read (XINFO fails on a missing
            # key): housekeeping, so skip it.
            logger.debug("stale consumer check on %s skipped: %s", stream, exc)
            continue
        if gone:
            removed += len(gone)
            logger.info(
                "removed %d stale consumers of group %s on %s (idle, nothing pending)",
                len(gone),
                group,
                stream,
            )
    return removed
