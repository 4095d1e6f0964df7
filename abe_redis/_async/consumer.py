"""The consuming iterator that ``consume()`` returns."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import anyio

from .._core.consumer import ConsumerCore, ConsumerState
from .._core.entries import Delivery
from .driver import Driver, cancelled, run_flow
from .transport import Transport

CLOSE_TIMEOUT = 5.0


class AsyncConsumer:
    """Async iterator of payloads for one consumer of a group.

    Asking for the next payload marks the previous one processed (its ack is
    batched and sent with the next read). :meth:`aclose`, or leaving
    ``async with``, settles what is held: processed entries are
    acknowledged; the payload in your hands is acknowledged too, unless the
    close happens under cancellation or because of an exception; prefetched
    entries are released so other consumers can claim them at once. An
    iterator dropped without closing acknowledges nothing more, and its
    entries are reclaimed by other consumers after the idle threshold.
    """

    def __init__(self, core: ConsumerCore, transport: Transport) -> None:
        self._core = core
        self._transport = transport
        self._driver = Driver(core.run(), transport)

    @property
    def name(self) -> str:
        """This consumer's name in its group."""
        return self._core.config.consumer

    @property
    def group(self) -> str:
        """The consumer group this iterator reads for."""
        return self._core.config.group

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has run (or the consumer failed to start)."""
        return self._core.state in (ConsumerState.CLOSING, ConsumerState.CLOSED)

    def __aiter__(self) -> AsyncConsumer:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return (await self.next_delivery()).payload

    async def next_delivery(self) -> Delivery:
        """The next delivery: payload with its stream and entry id.

        Raises:
            StopAsyncIteration: the consumer was closed.
            ConnectError: Redis could not be reached when consuming started.
        """
        if self.closed:
            raise StopAsyncIteration
        step = await self._driver.advance()
        if not isinstance(step, Delivery):
            raise StopAsyncIteration
        return step

    async def aclose(self) -> None:
        """Stop consuming and settle held entries (see the class docstring)."""
        await self._close(processed=not cancelled())

    async def _close(self, *, processed: bool) -> None:
        if self._core.state is ConsumerState.CLOSED:
            return
        self._driver.flow.close()
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            await run_flow(self._core.close(processed=processed), self._transport)

    async def __aenter__(self) -> AsyncConsumer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(processed=exc_type is None and not cancelled())
