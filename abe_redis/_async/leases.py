"""Lease renewal for entries a consumer holds, from one background thread.

While a handler runs, the consumer's code does not (the host is busy with
the payload), so renewal cannot ride on the consumer's own round trips. A
thread is loop-agnostic (asyncio, trio, blocking code) and keeps renewing
while the event loop is busy with a CPU-bound handler.

Timing contract (``claim_min_idle`` = REDIS_CLAIM_MIN_IDLE_MS):

* every ``claim_min_idle / 3`` the thread resets the idle time of every
  entry each live consumer holds, with a script that touches only entries
  still pending for that consumer; so a live consumer's entries never reach
  the claim threshold;
* a dead consumer's entries stop being renewed and are reclaimed after
  ``claim_min_idle`` (within one more claim check);
* an entry is renewed for at most ``max_lease`` after it was fetched; a
  handler stuck longer loses it to another consumer (nothing stuck forever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .._core.commands import Command
from .._core.scripts import RENEW_LEASES, call
from ..errors import AbeRedisError
from .driver import run_flow_blocking

logger = logging.getLogger("abe_redis")


class LeaseKeeper:
    """Renews what each registered consumer holds; see the module docstring."""

    def __init__(
        self, execute: Callable[[Command[Any]], Any], interval: float, max_lease: float
    ) -> None:
        self._execute = execute
        self.interval = interval
        self.max_lease = max_lease
        self._lock = threading.Lock()
        # Held for a whole renewal, so that forget_and_wait() can be sure none
        # lands after it returns (a renewal resets idle times).
        self._renewing = threading.Lock()
        # token -> (group, consumer, {stream: {id: first seen}})
        self._held: dict[int, tuple[str, str, dict[str, dict[str, float]]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewed = 0

    def update(
        self, token: int, group: str, consumer: str, leases: dict[str, tuple[str, ...]]
    ) -> None:
        """Record what consumer ``token`` holds now (from the loop's thread)."""
        now = time.monotonic()
        with self._lock:
            if not leases:
                self._held.pop(token, None)
                return
            old = self._held.get(token, (group, consumer, {}))[2]
            self._held[token] = (
                group,
                consumer,
                {
                    stream: {i: old.get(stream, {}).get(i, now) for i in ids}
                    for stream, ids in leases.items()
                },
            )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="abe-redis-leases", daemon=True
                )
                self._thread.start()

    def forget(self, token: int) -> None:
        """Stop renewing for consumer ``token`` (a renewal in flight may still land)."""
        with self._lock:
            self._held.pop(token, None)

    def forget_and_wait(self, token: int) -> None:
        """Stop renewing for ``token``, and wait out a renewal in flight.

        A closing consumer calls this before it releases its entries: a
        renewal landing after the release would make them look busy again.
        """
        self.forget(token)
        with self._renewing:
            pass

    def _snapshot(self, now: float) -> list[tuple[str, str, str, tuple[str, ...]]]:
        with self._lock:
            return [
                (group, consumer, stream, fresh)
                for group, consumer, streams in self._held.values()
                for stream, ids in streams.items()
                if (fresh := tuple(i for i, since in ids.items() if now - since < self.max_lease))
            ]

    def renew_once(self) -> int:
        """Renew every lease now; returns how many entries were renewed."""
        with self._renewing:
            return self._renew()

    def _renew(self) -> int:
        count = 0
        for group, consumer, stream, ids in self._snapshot(time.monotonic()):
            flow = call(RENEW_LEASES, (stream,), (group, consumer, *ids))
            try:
                count += int(run_flow_blocking(flow, self._execute) or 0)
            except AbeRedisError as exc:
                # Quiet: the consumer itself reports outages; a missed renewal
                # only matters if it lasts past the claim threshold.
                logger.debug("lease renewal on %s failed: %s", stream, exc)
        self.renewed += count
        return count

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.renew_once()

    def stop(self) -> None:
        """Stop the thread (returns at once; the thread ends within one renewal)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
