"""Lease renewal for entries consumers hold, from one thread with its own loop.

While a handler runs, the consumer's code does not (the host is busy with
the payload, maybe with blocking work), so renewal cannot ride on the
consumer's own round trips or share its event loop. The keeper runs the same
async code as everything else (the driver, the wire) on an asyncio loop of
its own, in one thread per backend, with a small pool of its own: it works
the same under asyncio, trio and blocking code, and keeps renewing while
the caller's loop is busy.

Timing contract (``claim_min_idle`` = REDIS_CLAIM_MIN_IDLE_MS):

* every ``claim_min_idle / 3`` the keeper resets the idle time of every
  entry each live consumer holds, with a script that touches only entries
  still pending for that consumer; so a live consumer's entries never reach
  the claim threshold;
* a dead consumer's entries stop being renewed and are reclaimed after
  ``claim_min_idle`` (within one more claim check);
* an entry is renewed for at most ``max_lease`` after it was fetched; a
  handler stuck longer loses it to another consumer (nothing stuck forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

import anyio

from .._core.scripts import RENEW_LEASES, call
from .._io.driver import run_flow
from .._io.executor import Executor
from ..errors import AbeRedisError, AccessDenied

logger = logging.getLogger("abe_redis")

OpenExecutor = Callable[[], Any]
"""Makes the keeper's executor, on the keeper's loop (it may have ``aclose``)."""


class LeaseKeeper:
    """Renews what each registered consumer holds; see the module docstring."""

    def __init__(self, open_executor: OpenExecutor, interval: float, max_lease: float) -> None:
        self._open_executor = open_executor
        self.interval = interval
        self.max_lease = max_lease
        self._lock = threading.Lock()
        # token -> (group, consumer, {(stream, id): first seen})
        self._held: dict[int, tuple[str, str, dict[tuple[str, str], float]]] = {}
        # Renewals in flight, so that forget_and_wait() can be sure none that
        # saw a forgotten consumer lands after it returns.
        self._in_flight = 0
        self._settled = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._wake: anyio.Event | None = None
        self._serial: anyio.Lock | None = None
        self._executor: Executor | None = None
        self.renewed = 0
        self.refused: AccessDenied | None = None
        """Set when Redis refused a renewal (an ACL without ``xclaim``): the
        consumers raise it, since it never heals by itself."""

    def update(
        self, token: int, group: str, consumer: str, held: AbstractSet[tuple[str, str]]
    ) -> None:
        """Record what consumer ``token`` holds now, as (stream, id) pairs (from any thread).

        Only the changes are walked (set differences): a consumer calls this
        once per batch it fetches or settles.
        """
        now = time.monotonic()
        with self._lock:
            if not held:
                self._held.pop(token, None)
                return
            since = self._held.setdefault(token, (group, consumer, {}))[2]
            for key in since.keys() - held:
                del since[key]
            for key in held - since.keys():
                since[key] = now
        self._start()

    def forget(self, token: int) -> None:
        """Stop renewing for consumer ``token`` (a renewal in flight may still land)."""
        with self._lock:
            self._held.pop(token, None)

    def forget_and_wait(self, token: int) -> None:
        """Stop renewing for ``token``, and wait out renewals in flight.

        A closing consumer calls this before it releases its entries: a
        renewal landing after the release would make them look busy again.
        """
        with self._lock:
            self._held.pop(token, None)
            while self._in_flight:
                self._settled.wait()

    def renew_once(self) -> int:
        """Renew every lease now, on the keeper's loop (from another thread);
        returns how many entries were renewed."""
        self._start()
        self._started.wait()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._renew(), self._loop).result()

    def stop(self) -> None:
        """Stop the thread and close its connections (waits for it, at most 10 s)."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._started.wait()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(wake.set)
        thread.join(timeout=10)

    # -- the keeper's thread ------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="abe-redis-leases", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            anyio.run(self._main, backend="asyncio")
        finally:
            self._started.set()  # never leave stop() or renew_once() waiting

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = anyio.Event()
        self._serial = anyio.Lock()
        self._executor = self._open_executor()
        self._started.set()
        try:
            while not self._stop.is_set():
                with anyio.move_on_after(self.interval):
                    await self._wake.wait()
                if not self._stop.is_set():
                    await self._renew()
        finally:
            closing = getattr(self._executor, "aclose", None)
            if closing is not None:
                with anyio.CancelScope(shield=True):
                    await closing()

    def _snapshot(self, now: float) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """What to renew: (group, consumer, stream, ids) of leases younger than max_lease."""
        work: dict[tuple[str, str, str], list[str]] = {}
        for group, consumer, since in self._held.values():
            for (stream, entry_id), first in since.items():
                if now - first < self.max_lease:
                    work.setdefault((group, consumer, stream), []).append(entry_id)
        return [(g, c, s, tuple(ids)) for (g, c, s), ids in work.items()]

    async def _renew(self) -> int:
        assert self._serial is not None
        assert self._executor is not None
        async with self._serial:
            with self._lock:
                self._in_flight += 1
                work = self._snapshot(time.monotonic())
            count = 0
            try:
                for group, consumer, stream, ids in work:
                    flow = call(RENEW_LEASES, (stream,), (group, consumer, *ids))
                    try:
                        count += int(await run_flow(flow, self._executor) or 0)
                    except AccessDenied as exc:
                        if self.refused is None:
                            logger.warning("lease renewal on %s refused: %s", stream, exc)
                        self.refused = exc
                    except AbeRedisError as exc:
                        # Quiet: the consumer itself reports outages; a missed
                        # renewal only matters if it lasts past the threshold.
                        logger.debug("lease renewal on %s failed: %s", stream, exc)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._settled.notify_all()
            self.renewed += count
            return count
