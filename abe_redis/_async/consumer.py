"""The consuming iterators: payloads for hosts, settleable deliveries for the rest."""

from __future__ import annotations

import logging
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
from typing_extensions import Self

from .._core.consumer import ConsumerCore, ConsumerState, ConsumerStats
from .._core.entries import Delivery
from .._io.driver import Driver, cancelled, run_flow
from .._io.executor import Executor
from .leases import LeaseKeeper

if TYPE_CHECKING:
    from ..telemetry import Telemetry

logger = logging.getLogger("abe_redis")
CLOSE_TIMEOUT = 5.0


def error_text(error: BaseException | str) -> str:
    """How a handler's failure is recorded with its entry."""
    if isinstance(error, str):
        return error
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def thrown(typ: Any, val: Any = None) -> BaseException:
    """The exception of a ``throw``/``athrow`` call, given as generators take it."""
    if isinstance(typ, BaseException):
        return typ
    if isinstance(val, BaseException):
        return val
    if isinstance(typ, type) and issubclass(typ, BaseException):
        return typ() if val is None else typ(val)
    raise TypeError("throw() needs an exception class or instance")


class _Consumer:
    """Machinery shared by both iterators: drive the core, keep leases, close."""

    def __init__(
        self,
        core: ConsumerCore,
        executor: Executor,
        leases: LeaseKeeper | None = None,
        drain_timeout: float = 5.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._core = core
        self._telemetry = telemetry
        self._executor = executor
        self._leases = leases
        self._lease_version = -1
        self._driver = Driver(core.run(), executor)
        self.drain_timeout = drain_timeout
        if leases is not None:
            # A consumer dropped without closing must stop renewing, so that
            # its entries lapse and others reclaim them.
            weakref.finalize(self, leases.forget, id(self))

    @property
    def name(self) -> str:
        """This consumer's name in its group."""
        return self._core.config.consumer

    @property
    def group(self) -> str:
        """The consumer group this iterator reads for."""
        return self._core.config.group

    @property
    def stats(self) -> ConsumerStats:
        """Counters: delivered, acked, retried, reclaimed, dead-lettered, ..."""
        return self._core.stats

    @property
    def closed(self) -> bool:
        """Whether the consumer was closed (or ended by an error it cannot go on after)."""
        return self._core.state in (ConsumerState.CLOSING, ConsumerState.CLOSED)

    def _sync_leases(self) -> None:
        if self._leases is not None and self._core.held_version != self._lease_version:
            self._lease_version = self._core.held_version
            cfg = self._core.config
            self._leases.update(id(self), cfg.group, cfg.consumer, self._core.ledger.held)

    def _buffered(self) -> Delivery | None:
        """The next buffered delivery if the flow need not run for it, else None.

        The flow is parked at its last delivery: take the next buffered one
        without resuming it (no generator or driver round per message). A
        plain call, so that a payload from the buffer costs no coroutine.
        None once the consumer is closed, among other cases.
        """
        driver = self._driver
        if driver.started and driver.pending is None and not driver.finished:
            return self._core.hand_out_buffered(time.monotonic())
        return None

    async def _next(self) -> Delivery:
        delivery = self._buffered()
        if delivery is not None:
            return delivery
        if self.closed:
            raise StopAsyncIteration
        if self._leases is not None and self._leases.refused is not None:
            # Renewing what this consumer holds is refused (ACL): another
            # consumer would take it mid-handler. It never heals by itself.
            await self._close(processed=False)
            raise self._leases.refused
        driver = self._driver
        try:
            step = await driver.advance()
        except BaseException:
            if driver.finished:
                await self._flow_died()
            raise
        finally:
            self._sync_leases()
        if not isinstance(step, Delivery):
            raise StopAsyncIteration
        return step

    def _handed(self, delivery: Delivery) -> Delivery:
        """Telemetry, auto-ack mode: ``delivery`` is handed out, the one before is done."""
        telemetry = self._telemetry
        if telemetry is not None:
            telemetry.end_all(self)
            telemetry.begin(self, self._core.config.group, delivery)
        return delivery

    async def _flow_died(self) -> None:
        """The flow raised: after a failed start, a later call starts over (nothing is
        held); otherwise the error ends consuming, and what is held is released."""
        if self._core.state is ConsumerState.NEW:
            await self._driver.abandon()
            self._driver = Driver(self._core.run(), self._executor)
        else:
            await self._close(processed=False)

    async def _next_batch(self, limit: int) -> list[Delivery]:
        """The next delivery plus those already fetched, up to ``limit`` (one hop for
        the sync facade). Use on an explicit-mode consumer: handing out does not ack."""
        batch = [await self._next()]
        while len(batch) < limit and self._core.buffer:
            batch.append(await self._next())
        return batch

    async def _close(self, *, processed: bool) -> None:
        if self._telemetry is not None:
            self._telemetry.end_all(self, None if processed else "not_processed")
        if self._core.state is ConsumerState.CLOSED:
            return
        self._driver.flow.close()
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await self._driver.abandon()
                if self._leases is not None:
                    # No renewal may land after the release below.
                    await anyio.to_thread.run_sync(self._leases.forget_and_wait, id(self))
                await run_flow(self._core.close(processed=processed), self._executor)
        finally:
            if self._leases is not None:
                self._leases.forget(id(self))


class AsyncConsumer(_Consumer):
    """Async iterator of payloads for one consumer of a group (the host protocol).

    Asking for the next payload marks the previous one processed (its ack is
    batched and sent with the next read). It also behaves like an async
    generator: ``asend(None)`` is ``__anext__``, ``athrow(exc)`` reports that
    the payload just handed out failed (it is negatively acknowledged: tried
    again after a backoff, or dead-lettered with the error after
    ``max_deliveries``) and returns the next payload, and :meth:`aclose`
    closes it.

    :meth:`aclose`, or leaving ``async with``, settles what is held:
    processed entries are acknowledged; the payload in your hands is
    acknowledged too, unless the close happens under cancellation or because
    of an exception; everything else still pending for this consumer is
    released so other consumers can claim it at once. An iterator dropped
    without closing acknowledges nothing more: its leases lapse and other
    consumers reclaim its entries after the idle threshold.
    """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> dict[str, Any]:
        delivery = self._buffered() or await self._next()
        if self._telemetry is not None:
            self._handed(delivery)
        return delivery.payload

    async def next_delivery(self) -> Delivery:
        """The next delivery: payload with its stream, entry id and delivery count.

        Raises:
            StopAsyncIteration: the consumer was closed.
            ConnectError: Redis could not be reached when consuming started
                (a later call tries again).
        """
        return self._handed(await self._next())

    async def asend(self, value: None) -> dict[str, Any]:
        """The next payload, as ``__anext__`` (the value sent is ignored)."""
        return await self.__anext__()

    async def athrow(
        self, typ: Any, val: Any = None, tb: TracebackType | None = None
    ) -> dict[str, Any]:
        """Report that the payload in hand failed with this exception; the next payload.

        The failed entry is delivered again after a backoff, or, on its
        ``max_deliveries``-th delivery, moved to the dead-letter stream with
        the error. An exception that is not an ``Exception`` (cancellation,
        ``GeneratorExit``, ``KeyboardInterrupt``) closes the consumer
        without acknowledging the payload in hand, and is raised again.

        Raises:
            the exception itself: nothing is in hand (no payload was handed
                out yet, or the consumer was closed), or it is not an
                ``Exception``.
        """
        exc = thrown(typ, val)
        if not isinstance(exc, Exception):
            await self._close(processed=False)
            raise exc
        handed = self._core.ledger.handed
        if self.closed or handed is None or handed not in self._core.ledger.outstanding:
            raise exc
        text = error_text(exc)
        logger.warning("handler failed on %s of %s: %s", handed[1], handed[0], text)
        if self._telemetry is not None:
            self._telemetry.end(self, handed, type(exc).__name__)
        self._core.fail_handed(time.monotonic(), text)
        return await self.__anext__()

    async def aclose(self, *, processed: bool | None = None) -> None:
        """Stop consuming and settle held entries (see the class docstring).

        ``processed`` says whether the payload in hand was processed; by
        default it was, unless the close happens under cancellation.
        """
        await self._close(processed=not cancelled() if processed is None else processed)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(processed=exc_type is None and not cancelled())


class DeliveryView:
    """What a settleable delivery shows: payload, stream, id and delivery count."""

    __slots__ = ()

    @property
    def delivery(self) -> Delivery:
        """The delivery record: payload, stream, id and count."""
        raise NotImplementedError

    @property
    def payload(self) -> dict[str, Any]:
        """The payload, exactly as published."""
        return self.delivery.payload

    @property
    def stream(self) -> str:
        """The stream it came from."""
        return self.delivery.stream

    @property
    def id(self) -> str:
        """Its entry id."""
        return self.delivery.id

    @property
    def deliveries(self) -> int:
        """How often Redis has delivered it, this time included."""
        return self.delivery.deliveries

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(stream={self.stream!r}, id={self.id!r}, "
            f"deliveries={self.deliveries})"
        )


class AsyncDelivery(DeliveryView):
    """One delivery to settle explicitly with :meth:`ack` or :meth:`nack`."""

    __slots__ = ("_consumer", "_delivery")

    def __init__(self, consumer: AsyncDeliveries, delivery: Delivery) -> None:
        self._consumer = consumer
        self._delivery = delivery
        if consumer._telemetry is not None:
            consumer._telemetry.begin(consumer, consumer.group, delivery)

    @property
    def delivery(self) -> Delivery:
        """The delivery record: payload, stream, id and count."""
        return self._delivery

    async def ack(self) -> None:
        """Mark it processed; the XACK goes out with the consumer's next round trip.

        Raises:
            LocalProtocolError: it was settled already.
        """
        await anyio.lowlevel.checkpoint()
        self._consumer._core.ack(self.delivery.key, time.monotonic())
        if self._consumer._telemetry is not None:
            self._consumer._telemetry.end(self._consumer, self.delivery.key)

    async def nack(
        self, *, delay: float | None = None, error: BaseException | str | None = None
    ) -> float | None:
        """Mark it failed: deliver it again after ``delay`` seconds, or dead-letter it.

        Without ``delay`` the wait grows with the delivery count (exponential,
        capped, with jitter). On its last allowed delivery
        (``max_deliveries``) the entry goes to the dead-letter stream with
        ``error``. Returns the delay, or None when it was dead-lettered.

        Raises:
            LocalProtocolError: it was settled already.
        """
        await anyio.lowlevel.checkpoint()
        delay = self._consumer._core.nack(
            self.delivery.key,
            time.monotonic(),
            delay=delay,
            error=None if error is None else error_text(error),
        )
        if self._consumer._telemetry is not None:
            kind = "nack" if error is None or isinstance(error, str) else type(error).__name__
            self._consumer._telemetry.end(self._consumer, self.delivery.key, kind)
        return delay


class AsyncDeliveries(_Consumer):
    """Async iterator of :class:`AsyncDelivery` objects to settle explicitly.

    Deliveries may be handled concurrently; up to ``prefetch`` may be
    unsettled at once (asking for more waits for settlements). While a
    delivery is unsettled its lease is renewed. :meth:`aclose` (or leaving
    ``async with``) stops reading, waits up to ``drain_timeout`` for
    unsettled deliveries, acknowledges what was acked and releases the rest
    for other consumers at once.
    """

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> AsyncDelivery:
        return AsyncDelivery(self, await self._next())

    @property
    def unsettled(self) -> int:
        """How many handed-out deliveries are neither acked nor nacked."""
        return len(self._core.ledger.outstanding)

    async def aclose(self, drain_timeout: float | None = None) -> None:
        """Drain (see the class docstring), then settle and release."""
        if not self.closed and not cancelled():
            with anyio.move_on_after(
                self.drain_timeout if drain_timeout is None else drain_timeout
            ):
                while self._core.ledger.outstanding:
                    await anyio.sleep(0.01)
        await self._close(processed=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
