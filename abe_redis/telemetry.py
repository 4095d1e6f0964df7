"""OpenTelemetry metrics and traces, on when ``REDIS_OTEL=true`` (the ``otel`` extra).

Off, nothing here is imported or called: a backend holds None and each
publish or delivery checks one attribute. On, it uses the global tracer
and meter providers (set them up as your application does; the SDK is
yours to choose), with the messaging semantic conventions (v1.44):

* ``messaging.client.sent.messages`` and ``messaging.client.consumed.messages``
  (counters), ``messaging.client.operation.duration`` (publishing, seconds)
  and ``messaging.process.duration`` (from a payload handed out to its
  settling: the handler's time, seconds); attributes ``messaging.system``
  (``redis``), ``messaging.destination.name`` (the stream),
  ``messaging.consumer.group.name`` and, on failures, ``error.type``.
* Gauges no peer exports, observed from :meth:`~abe_redis.RedisMessageQueueBackend.status`
  when the meter collects (at most every :data:`GAUGE_REFRESH` seconds,
  on a connection of their own): ``abe_redis.group.lag``,
  ``abe_redis.group.pending``, ``abe_redis.group.oldest_pending_age`` (s)
  and ``abe_redis.stream.dead_letters``.
* A ``publish <stream>`` span (kind producer) per publish, whose context
  travels inside the entry (a ``traceparent`` field beside ``data``), and a
  ``process <stream>`` span (kind consumer) per delivery, its child, from
  handing out to settling: one trace from the publisher to the handler,
  across processes.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ._core.codec import TRACE_FIELD
from ._core.entries import Delivery
from ._core.status import QueueStatus
from .errors import ConfigError

T = TypeVar("T")
GAUGE_REFRESH = 10.0
SYSTEM = {"messaging.system": "redis"}
Fields = tuple[tuple[bytes, bytes], ...]
Observed = tuple[float, dict[str, str]]


def telemetry_for(otel: bool, status: Callable[[], QueueStatus]) -> Telemetry | None:
    """A :class:`Telemetry` when ``otel`` is on, else None.

    Raises:
        ConfigError: it is on and opentelemetry-api is not installed.
    """
    if not otel:
        return None
    try:
        import opentelemetry  # noqa: F401
    except ImportError:
        raise ConfigError(
            "REDIS_OTEL=true needs opentelemetry: pip install 'abe-redis[otel]'"
        ) from None
    return Telemetry(status)


class Telemetry:
    """The instruments of one backend; see the module docstring.

    ``status`` reads the queue's status, blocking; the gauges call it from
    the meter's collecting thread.
    """

    def __init__(self, status: Callable[[], QueueStatus]) -> None:
        from opentelemetry import metrics, propagate, trace

        from . import __version__

        self._trace, self._propagate = trace, propagate
        self.tracer = trace.get_tracer("abe_redis", __version__)
        meter = metrics.get_meter("abe_redis", __version__)
        self.sent = meter.create_counter(
            "messaging.client.sent.messages", unit="{message}", description="Messages published"
        )
        self.consumed = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Messages handed to the application",
        )
        self.operation = meter.create_histogram(
            "messaging.client.operation.duration", unit="s", description="Publishing time"
        )
        self.process = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="From a message handed out to its settling",
        )
        self._status = status
        self._cached: tuple[float, QueueStatus | None] = (0.0, None)
        self._lock = threading.Lock()
        gauges = [
            ("abe_redis.group.lag", "{message}", "Entries not delivered to the group yet", _lag),
            ("abe_redis.group.pending", "{message}", "Delivered, not acknowledged", _pending),
            ("abe_redis.group.oldest_pending_age", "s", "Age of the oldest pending", _oldest),
            ("abe_redis.stream.dead_letters", "{message}", "Dead letters of the stream", _dead),
        ]
        for name, unit, description, read in gauges:
            meter.create_observable_gauge(
                name, callbacks=[self._observer(read)], unit=unit, description=description
            )
        # Per consumer, its deliveries in the application's hands: (handed
        # out at, span, attributes); one in auto-ack mode. Weakly keyed: a
        # consumer dropped without closing takes its entries with it.
        self._open: weakref.WeakKeyDictionary[
            object, dict[tuple[str, str], tuple[float, Any, dict[str, str]]]
        ] = weakref.WeakKeyDictionary()

    # -- publishing ------------------------------------------------------------

    async def publish(self, stream: str, count: int, send: Callable[[Fields], Awaitable[T]]) -> T:
        """Run ``send(extra_fields)`` in a ``publish`` span; count and time it."""
        attrs = {**SYSTEM, "messaging.destination.name": stream, "messaging.operation.name": "send"}
        kind = self._trace.SpanKind.PRODUCER
        started = time.perf_counter()
        with self.tracer.start_as_current_span(f"publish {stream}", kind=kind) as span:
            span.set_attributes({**attrs, "messaging.batch.message_count": count})
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier)
            extra = tuple(
                (k.encode(), v.encode()) for k, v in carrier.items() if k.encode() == TRACE_FIELD
            )
            try:
                result = await send(extra)
            except BaseException as exc:
                failed = {**attrs, "error.type": type(exc).__name__}
                self.operation.record(time.perf_counter() - started, failed)
                raise
        self.operation.record(time.perf_counter() - started, attrs)
        self.sent.add(count, attrs)
        return result

    # -- consuming -------------------------------------------------------------

    def begin(self, owner: object, group: str, delivery: Delivery) -> None:
        """``delivery`` was handed out by ``owner``: its ``process`` span starts."""
        attrs = {
            **SYSTEM,
            "messaging.destination.name": delivery.stream,
            "messaging.consumer.group.name": group,
            "messaging.operation.name": "process",
        }
        self.consumed.add(1, attrs)
        parent = None
        if delivery.traceparent is not None:
            parent = self._propagate.extract({"traceparent": delivery.traceparent})
        span = self.tracer.start_span(
            f"process {delivery.stream}",
            context=parent,
            kind=self._trace.SpanKind.CONSUMER,
            attributes={**attrs, "messaging.message.id": delivery.id},
        )
        self._open.setdefault(owner, {})[delivery.key] = (time.perf_counter(), span, attrs)

    def end(self, owner: object, key: tuple[str, str], error: str | None = None) -> None:
        """The delivery ``key`` of ``owner`` was settled (``error``: it failed)."""
        opened = self._open.get(owner, {}).pop(key, None)
        if opened is not None:
            self._finish(*opened, error)

    def end_all(self, owner: object, error: str | None = None) -> None:
        """Whatever ``owner`` handed out and did not settle ends now (the one
        before, in auto-ack mode; everything, when it closes)."""
        for opened in self._open.pop(owner, {}).values():
            self._finish(*opened, error)

    def _finish(self, started: float, span: Any, attrs: dict[str, str], error: str | None) -> None:
        if error is not None:
            attrs = {**attrs, "error.type": error}
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
            span.set_attribute("error.type", error)
        self.process.record(time.perf_counter() - started, attrs)
        span.end()

    # -- gauges ----------------------------------------------------------------

    def _observer(self, read: Callable[[QueueStatus], Iterator[Observed]]) -> Any:
        from opentelemetry.metrics import Observation

        def observe(options: Any) -> list[Any]:
            found = self._current()
            if found is None:
                return []
            return [Observation(value, attrs) for value, attrs in read(found)]

        return observe

    def _current(self) -> QueueStatus | None:
        with self._lock:
            at, found = self._cached
            if found is None or time.monotonic() - at >= GAUGE_REFRESH:
                try:
                    found = self._status()
                except Exception:
                    return found
                self._cached = (time.monotonic(), found)
            return found


def _groups(found: QueueStatus) -> Iterator[tuple[Any, dict[str, str]]]:
    for stream in found.streams:
        for group in stream.groups:
            yield (
                group,
                {
                    **SYSTEM,
                    "messaging.destination.name": stream.name,
                    "messaging.consumer.group.name": group.name,
                },
            )


def _lag(found: QueueStatus) -> Iterator[Observed]:
    for group, attrs in _groups(found):
        yield group.lag, attrs


def _pending(found: QueueStatus) -> Iterator[Observed]:
    for group, attrs in _groups(found):
        yield group.pending, attrs


def _oldest(found: QueueStatus) -> Iterator[Observed]:
    for group, attrs in _groups(found):
        yield (group.oldest_pending_age_ms or 0) / 1000, attrs


def _dead(found: QueueStatus) -> Iterator[Observed]:
    for stream in found.streams:
        yield stream.dead_letters, {**SYSTEM, "messaging.destination.name": stream.name}
