"""Publishing: validate, encode, register, write (idempotently if asked), trim.

* Consumers find streams through a registry (a Redis set) instead of KEYS or
  SCAN. The first publish of a key (and again every ``REGISTRY_REFRESH``
  seconds, in case the set was flushed) sends ``SADD registry key`` in the
  same round trip as the write, SADD first, so a stream holding an entry is
  always in the registry.
* Keys starting with '_' are health probes: not registered, and capped at
  ``PROBE_MAXLEN`` entries, unless they are listed for consumption.
* With an idempotency key the write is a Lua script: if a marker for that
  key exists (it lives ``idempotency_window_ms``), nothing is written and the
  original entry id is returned; otherwise XADD and the marker are set
  together. The marker shares the stream's hash tag.
* Once a publisher has reached Redis, a transport error is retried with
  backoff for ``retry_budget`` seconds, then raised. Before that first
  success it is raised at once: a wrong URL is a clear error, not a wait.
* Every ``trim_every`` publishes (or ``trim_interval`` seconds) of a stream,
  the stream is trimmed safely (see :mod:`.trimming`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import AbeRedisError, TransportError, ValidationError
from .codec import MAX_PAYLOAD_BYTES, encode_payload
from .commands import Arg, Command, Eval, EvalSha, NoScript, SAdd, XAdd
from .keys import is_internal, validate_key
from .replies import text
from .retry import Backoff, fails_at_start, retrying
from .scripts import IDEMPOTENT_XADD
from .slots import slot_tag
from .steps import Batch, Flow, once
from .trimming import safe_trim

logger = logging.getLogger("abe_redis")
T = TypeVar("T")

REGISTRY_REFRESH = 60.0
MANY_CHUNK = 1000
PROBE_MAXLEN = 100
Item = tuple[tuple[tuple[bytes, bytes], ...], str | None]
"""One payload to write: its encoded fields and its idempotency key (or None)."""
MAX_IDEMPOTENCY_KEY = 256


def idempotency_marker(stream: str, idempotency_key: str) -> str:
    """The key remembering an idempotency key; same cluster slot as ``stream``."""
    return f"abe_redis:idem:{{{slot_tag(stream)}}}:{idempotency_key}"


@dataclass(slots=True)
class Publisher:
    """Per-backend publishing state and rules (see the module docstring)."""

    registry_key: str
    maxlen: int | None = None
    consumed: tuple[str, ...] = ()
    idempotency_field: str | None = None
    idempotency_window_ms: int = 600_000
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    retry_budget: float = 5.0
    trim_every: int = 1000
    trim_interval: float = 60.0
    ungrouped_maxlen: int | None = 1_000_000
    backoff: Backoff = field(default_factory=Backoff)
    connected: bool = False
    registered: dict[str, float] = field(default_factory=dict)
    since_trim: dict[str, int] = field(default_factory=dict)
    valid_keys: set[str] = field(default_factory=set)
    last_trim: dict[str, float] = field(default_factory=dict)

    def publish(
        self,
        key: Any,
        payload: Mapping[str, Any],
        now: float,
        idempotency_key: str | None = None,
    ) -> Flow[str]:
        """Flow that writes one payload and returns its entry id.

        The key, payload and idempotency key are checked when the flow
        starts, before it yields any command: a bad one raises and nothing
        is written.
        """
        key, item = self.checked(key, payload, idempotency_key)
        return (yield from self.write(key, item, now))

    def checked(
        self, key: Any, payload: Mapping[str, Any], idempotency_key: str | None = None
    ) -> tuple[str, Item]:
        """Validate and encode one publish: the stream key and what to write.

        Raises:
            StreamKeyError, PayloadError, ValidationError: as :meth:`publish`.
        """
        return self._valid(key), self._item(payload, idempotency_key)

    def write(self, key: str, item: Item, now: float) -> Flow[str]:
        """Flow that writes one :meth:`checked` item and returns its entry id."""
        probe, register = self._plan(key, now)
        ids = yield from self._with_retries(
            functools.partial(self._write, key, [item], probe, register), now
        )
        if register:
            self.registered[key] = now
        if not probe:
            yield from self._maybe_trim(key, now)
        return ids[0]

    def fast_xadd(self, key: str, item: Item, now: float) -> XAdd | None:
        """The lone XADD that writes ``item``, when the write needs nothing else.

        The fast path of :meth:`write`, for the common case: a stream
        registered recently, no idempotency key, no trim due, no outage in
        progress. None means: run :meth:`write`; so does a transport error
        on the XADD (the flow retries within the budget). Call
        :meth:`fast_written` once the XADD succeeded.
        """
        fields, idem = item
        if idem is not None:
            return None
        probe, register = self._plan(key, now)
        if probe or register or not self.connected or self.backoff.attempts:
            return None
        if self._trim_due(key, self.since_trim.get(key, 0) + 1, now):
            return None
        return XAdd(key, fields, self.maxlen)

    def fast_written(self, key: str) -> None:
        """Count a :meth:`fast_xadd` that was written (toward the next trim)."""
        self.since_trim[key] = self.since_trim.get(key, 0) + 1

    def _item(self, payload: Mapping[str, Any], idempotency_key: str | None) -> Item:
        return (
            encode_payload(payload, self.max_payload_bytes),
            self._idempotency_key(payload, idempotency_key),
        )

    def _plan(self, key: str, now: float) -> tuple[bool, bool]:
        """(probe, register): a capped probe stream, and whether SADD goes along."""
        probe = is_internal(key) and key not in self.consumed
        since = self.registered.get(key)
        return probe, not probe and (since is None or now - since >= REGISTRY_REFRESH)

    def _valid(self, key: Any) -> str:
        # Checked once per key: the checks walk every character.
        if type(key) is str and key in self.valid_keys:
            return str(key)
        valid = validate_key(key, reserved=self.registry_key)
        if len(self.valid_keys) < 10_000:
            self.valid_keys.add(valid)
        return valid

    def publish_many(
        self, key: Any, payloads: Sequence[Mapping[str, Any]], now: float
    ) -> Flow[list[str]]:
        """Flow that writes many payloads to one stream in pipelined chunks.

        Every payload is checked before anything is written. Payloads with an
        idempotency key (``idempotency_field``) go through the script, the
        others as plain XADD, in the same pipelines. Returns the entry ids in
        order (the original id for a duplicate).
        """
        key = self._valid(key)
        items = [self._item(p, None) for p in payloads]
        probe = False
        ids: list[str] = []
        for start in range(0, len(items), MANY_CHUNK):
            chunk = items[start : start + MANY_CHUNK]
            probe, register = self._plan(key, now)
            ids += yield from self._with_retries(
                functools.partial(self._write, key, chunk, probe, register), now
            )
            if register:
                self.registered[key] = now
        if not probe and items:
            self.since_trim[key] = self.since_trim.get(key, 0) + len(items) - 1
            yield from self._maybe_trim(key, now)
        return ids

    def _write(
        self,
        key: str,
        items: list[Item],
        probe: bool,
        register: bool,
    ) -> Flow[list[str]]:
        """One round trip writing ``items`` (SADD first when registering).

        Probe streams get an exact cap; items with an idempotency key go
        through the script (EVAL when Redis has not cached it yet).
        """
        commands: list[Command[Any]] = [SAdd(self.registry_key, key)] if register else []
        for fields, idem in items:
            if probe:
                commands.append(XAdd(key, fields, PROBE_MAXLEN, approximate=False))
            elif idem is None:
                commands.append(XAdd(key, fields, self.maxlen))
            else:
                args, keys = self._script_args(key, fields, idem)
                commands.append(EvalSha(IDEMPOTENT_XADD.sha, keys, args))
        # A lone command goes bare: the sequential publish path pays no pipeline.
        step: Command[Any] | Batch = commands[0] if len(commands) == 1 else Batch(tuple(commands))
        resume = yield step
        parsed = step.parse_reply(resume.reply)
        replies = [parsed] if len(commands) == 1 else list(parsed[1 if register else 0 :])
        ids = []
        for (fields, idem), reply in zip(items, replies, strict=True):
            if isinstance(reply, NoScript):  # first use since a restart: send it whole
                args, keys = self._script_args(key, fields, idem or "")
                reply = yield from once(Eval(IDEMPOTENT_XADD.source, keys, args))
            if idem is not None and not probe:
                entry_id = text(reply[1])
                if not int(reply[0]):
                    logger.debug(
                        "duplicate publish to %s (idempotency key seen); kept %s", key, entry_id
                    )
            else:
                entry_id = str(reply)
            ids.append(entry_id)
        return ids

    def _script_args(
        self, key: str, fields: tuple[tuple[bytes, bytes], ...], idem: str
    ) -> tuple[tuple[Arg, ...], tuple[str, ...]]:
        args: tuple[Arg, ...] = (
            self.idempotency_window_ms,
            "" if self.maxlen is None else self.maxlen,
            *(part for pair in fields for part in pair),
        )
        return args, (key, idempotency_marker(key, idem))

    def _idempotency_key(self, payload: Mapping[str, Any], given: str | None) -> str | None:
        value: Any = given
        source = "idempotency_key"
        if value is None and self.idempotency_field is not None:
            value = payload.get(self.idempotency_field)
            source = f"payload field {self.idempotency_field!r}"
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError(f"{source} must be a str or int, got {type(value).__name__}")
        idem = str(value)
        if not idem or len(idem) > MAX_IDEMPOTENCY_KEY:
            raise ValidationError(f"{source} must be 1 to {MAX_IDEMPOTENCY_KEY} characters long")
        return idem

    def _with_retries(self, make: Callable[[], Flow[T]], now: float) -> Flow[T]:
        """Run ``make()``; after a transport error, a fresh attempt (within budget)."""
        started = now
        clock = [now]

        def fatal(exc: TransportError) -> bool:
            return not self.connected and fails_at_start(exc)

        def over_budget(delay: float) -> bool:
            return clock[0] + delay - started > self.retry_budget

        def tick(now: float) -> None:
            clock[0] = now

        value = yield from retrying(
            make, self.backoff, lambda: clock[0], fatal=fatal, over_budget=over_budget, tick=tick
        )
        self.connected = True
        return value

    def _trim_due(self, key: str, count: int, now: float) -> bool:
        """Whether the ``count``-th publish since the last trim of ``key`` trims."""
        last = self.last_trim.get(key, now)
        return count >= self.trim_every or now - last >= self.trim_interval

    def _maybe_trim(self, key: str, now: float) -> Flow[None]:
        count = self.since_trim.get(key, 0) + 1
        self.since_trim[key] = count
        self.last_trim.setdefault(key, now)
        if not self._trim_due(key, count, now):
            return
        self.since_trim[key] = 0
        self.last_trim[key] = now
        try:
            removed = yield from safe_trim(key, self.ungrouped_maxlen)
        except AbeRedisError as exc:
            # The entry is written: a failed trim must not make the publish
            # raise (a caller retrying it would write a duplicate).
            logger.debug("trimming %s skipped: %s", key, exc)
            return
        if removed:
            logger.debug("trimmed %d fully consumed entries from %s", removed, key)
