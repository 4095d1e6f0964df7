"""Publishing: validate, encode, register, write (idempotently if asked), trim.

* Consumers find streams through a registry (a Redis set) instead of KEYS or
  SCAN. The first publish of a key (and again every ``REGISTRY_REFRESH``
  seconds, in case the set was lost) sends ``SADD registry key`` in a round
  trip of its own before the write, so a stream holding an entry is always
  in the registry (on a cluster too, where the set and the stream live on
  different nodes). In between, writes use ``XADD NOMKSTREAM``: a
  stream that vanished (flushed, deleted, a failover to an empty replica)
  is not recreated unregistered; nothing is written, and the write goes
  again with its SADD in front.
* Keys starting with '_' are health probes: not registered, and capped at
  ``PROBE_MAXLEN`` entries, unless they are listed for consumption.
* With an idempotency key the write is a Lua script: if a marker for that
  key exists (it lives ``idempotency_window_ms``), nothing is written and the
  original entry id is returned; otherwise XADD and the marker are set
  together. The marker shares the stream's hash tag.
* Once a publisher has reached Redis, a transport error is retried with
  backoff until ``retry_budget`` seconds after the call began, every
  attempt bounded by that deadline (:class:`~.steps.Within`), then raised.
  Before that first success it is raised at once: a wrong URL is a clear
  error, not a wait.
* A write refused because Redis is out of memory (OOM) trims the streams
  this publisher writes to, safely, and is tried once more: a drained queue
  makes room for itself. :class:`OutOfMemory` when that freed nothing.
* Every ``trim_every`` publishes (or ``trim_interval`` seconds) of a stream,
  the stream is trimmed safely (see :mod:`.trimming`), before the write.
  An ACL refusal of the trim raises :class:`AccessDenied` with nothing
  written; other trim failures wait for the next trim.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import (
    AbeRedisError,
    AccessDenied,
    NotReplicated,
    OutOfMemory,
    TransportError,
    ValidationError,
)
from .codec import MAX_PAYLOAD_BYTES, encode_payload
from .commands import Arg, Command, Eval, EvalSha, NoScript, SAdd, Wait, XAdd
from .keys import is_internal, validate_key
from .replies import text
from .retry import Backoff, fails_at_start, retrying
from .scripts import IDEMPOTENT_XADD
from .slots import slot_tag
from .steps import Batch, Flow, Within
from .trimming import safe_trim

logger = logging.getLogger("abe_redis")
T = TypeVar("T")

REGISTRY_REFRESH = 1.0
OOM_TRIM_INTERVAL = 1.0
OOM_TRIM_STREAMS = 100
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
    wait_replicas: int | None = None
    wait_ms: int = 1_000
    backoff: Backoff = field(default_factory=Backoff)
    connected: bool = False
    registered: dict[str, float] = field(default_factory=dict)
    since_trim: dict[str, int] = field(default_factory=dict)
    valid_keys: set[str] = field(default_factory=set)
    last_trim: dict[str, float] = field(default_factory=dict)
    last_oom_trim: float | None = None

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
        if not probe:
            yield from self._maybe_trim(key, now, 1)
        (entry_id,) = yield from self._write_all(key, [item], probe, register, now)
        return entry_id

    def fast_xadd(self, key: str, item: Item, now: float) -> XAdd | None:
        """The lone XADD that writes ``item``, when the write needs nothing else.

        The fast path of :meth:`write`, for the common case: a stream
        registered recently, no idempotency key, no trim due, no outage in
        progress. None means: run :meth:`write`; so does a transport error
        on the XADD (the flow retries within the budget). Call
        :meth:`fast_written` once the XADD succeeded.
        """
        fields, idem = item
        if idem is not None or self.wait_replicas:
            return None
        probe, register = self._plan(key, now)
        if probe or register or not self.connected or self.backoff.attempts:
            return None
        if self._trim_due(key, self.since_trim.get(key, 0) + 1, now):
            return None
        return XAdd(key, fields, self.maxlen, nomkstream=True)

    def fast_written(self, key: str, entry_id: str | None) -> bool:
        """Note what a :meth:`fast_xadd` did; False when it wrote nothing.

        A written one counts toward the next trim. None (the stream
        vanished, see the module docstring) means: run :meth:`write`, which
        registers the stream again first.
        """
        if entry_id is None:
            self.registered.pop(key, None)
            return False
        self.since_trim[key] = self.since_trim.get(key, 0) + 1
        return True

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
        self,
        key: Any,
        payloads: Sequence[Mapping[str, Any]],
        now: float,
        extra: tuple[tuple[bytes, bytes], ...] = (),
    ) -> Flow[list[str]]:
        """Flow that writes many payloads to one stream in pipelined chunks.

        Every payload is checked before anything is written. Payloads with an
        idempotency key (``idempotency_field``) go through the script, the
        others as plain XADD, in the same pipelines. Returns the entry ids in
        order (the original id for a duplicate). ``extra`` fields go with
        each (a trace context).
        """
        key = self._valid(key)
        items = [self._item(p, None) for p in payloads]
        if extra:
            items = [(fields + extra, idem) for fields, idem in items]
        probe, _ = self._plan(key, now)
        if not probe and items:
            yield from self._maybe_trim(key, now, len(items))
        ids: list[str] = []
        for start in range(0, len(items), MANY_CHUNK):
            chunk = items[start : start + MANY_CHUNK]
            probe, register = self._plan(key, now)
            ids += yield from self._write_all(key, chunk, probe, register, now)
        return ids

    def _write_all(
        self, key: str, items: list[Item], probe: bool, register: bool, started: float
    ) -> Flow[list[str]]:
        """Write ``items`` within the budget that began at ``started``.

        Items not written because the stream vanished go again with the
        stream registered first; an OOM refusal trims, then tries once more.
        """
        trimmed = False
        while True:
            write = functools.partial(self._write, key, items, probe, register, started)
            try:
                ids = yield from self._with_retries(write, started)
            except OutOfMemory:
                if trimmed or probe or not (yield from self._free_memory(key, started)):
                    raise
                trimmed = True
                continue
            break
        if register:
            self.registered[key] = started
        missing = [i for i, entry_id in enumerate(ids) if entry_id is None]
        if missing:
            logger.warning("stream %s vanished from Redis; registering it again", key)
            self.registered.pop(key, None)
            again = yield from self._write_all(
                key, [items[i] for i in missing], probe, True, started
            )
            for i, entry_id in zip(missing, again, strict=True):
                ids[i] = entry_id
        return [entry_id for entry_id in ids if entry_id is not None]

    def _write(
        self,
        key: str,
        items: list[Item],
        probe: bool,
        register: bool,
        started: float,
    ) -> Flow[list[str | None]]:
        """One round trip writing ``items`` (after the SADD's own, when registering).

        The registry is written first and on its own, so a stream never has
        entries before it is registered, even when the registry lives on
        another cluster node than the stream; a refused SADD writes nothing.
        That round trip comes once per ``REGISTRY_REFRESH`` a stream.
        Probe streams get an exact cap; items with an idempotency key go
        through the script (EVAL when Redis has not cached it yet). Without
        registering, a missing stream is not created: its items come back None.
        """
        nomk = not register and not probe
        deadline = started + self.retry_budget
        if register:
            sadd = SAdd(self.registry_key, key)
            sadd.parse_reply((yield Within(sadd, deadline)).reply)
        commands: list[Command[Any]] = []
        for fields, idem in items:
            if probe:
                commands.append(XAdd(key, fields, PROBE_MAXLEN, approximate=False))
            elif idem is None:
                commands.append(XAdd(key, fields, self.maxlen, nomkstream=nomk))
            else:
                args, keys = self._script_args(key, fields, idem, nomk)
                commands.append(EvalSha(IDEMPOTENT_XADD.sha, keys, args, IDEMPOTENT_XADD.source))
        wait: Wait | None = None
        if self.wait_replicas is not None and not probe:
            # Same round trip, same connection (a router places it with the
            # stream): WAIT counts the replicas that have the writes before it.
            wait = Wait(key, self.wait_replicas, self.wait_ms)
            commands.append(wait)
        # A lone command goes bare: the sequential publish path pays no pipeline.
        step: Command[Any] | Batch = commands[0] if len(commands) == 1 else Batch(tuple(commands))
        resume = yield Within(step, deadline)
        parsed = step.parse_reply(resume.reply)
        replies = [parsed] if len(commands) == 1 else list(parsed)
        last: Any = replies.pop() if wait is not None else None
        confirmed: int | None = None if last is None else int(last)
        ids: list[str | None] = []
        for (fields, idem), reply in zip(items, replies, strict=True):
            if isinstance(reply, NoScript):  # first use since a restart: send it whole
                args, keys = self._script_args(key, fields, idem or "", nomk)
                script = Eval(IDEMPOTENT_XADD.source, keys, args)
                reply = script.parse_reply((yield Within(script, deadline)).reply)
                if wait is not None:  # written after the WAIT: wait for it too
                    confirmed = wait.parse_reply((yield Within(wait, deadline)).reply)
            entry_id: str | None
            if idem is not None and not probe:
                if int(reply[0]) == 2:
                    entry_id = None  # the stream is missing: nothing written
                else:
                    entry_id = text(reply[1])
                    if not int(reply[0]):
                        logger.debug(
                            "duplicate publish to %s (idempotency key seen); kept %s",
                            key,
                            entry_id,
                        )
            else:
                entry_id = None if reply is None else str(reply)
            ids.append(entry_id)
        if wait is not None and confirmed is not None and confirmed < wait.replicas:
            written = [i for i in ids if i is not None]
            raise NotReplicated(
                f"{len(written)} entries written to {key} (last {written[-1] if written else '-'})"
                f" but {confirmed} of {wait.replicas} replicas confirmed them within "
                f"{wait.timeout_ms} ms; they may be lost if the primary fails now"
            )
        return ids

    def _script_args(
        self, key: str, fields: tuple[tuple[bytes, bytes], ...], idem: str, nomkstream: bool
    ) -> tuple[tuple[Arg, ...], tuple[str, ...]]:
        args: tuple[Arg, ...] = (
            self.idempotency_window_ms,
            "" if self.maxlen is None else self.maxlen,
            "1" if nomkstream else "0",
            *(part for pair in fields for part in pair),
        )
        return args, (key, idempotency_marker(key, idem))

    def _free_memory(self, key: str, now: float) -> Flow[int]:
        """Flow: Redis is out of memory: trim ``key`` and the other streams
        written to, safely and exactly; returns how many entries went.

        At most once per ``OOM_TRIM_INTERVAL``: publishers hitting OOM
        together do not trim in a loop.
        """
        if self.last_oom_trim is not None and now - self.last_oom_trim < OOM_TRIM_INTERVAL:
            return 0
        self.last_oom_trim = now
        streams = [key, *(s for s in self.registered if s != key)][:OOM_TRIM_STREAMS]
        removed = 0
        for stream in streams:
            try:
                removed += yield from safe_trim(stream, self.ungrouped_maxlen, exact=True)
            except AccessDenied as exc:
                raise exc.needed(f"to trim {stream} when Redis is out of memory") from exc
            except AbeRedisError as exc:
                logger.debug("trimming %s for memory failed: %s", stream, exc)
        logger.warning(
            "Redis is out of memory; trimmed %d entries every group had finished from %d streams",
            removed,
            len(streams),
        )
        self.since_trim[key] = 0
        return removed

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

    def _with_retries(self, make: Callable[[], Flow[T]], started: float) -> Flow[T]:
        """Run ``make()``; after a transport error, a fresh attempt until the
        budget that began at ``started`` is spent."""
        clock = [started]

        def fatal(exc: TransportError) -> bool:
            return not self.connected and fails_at_start(exc)

        def tick(now: float) -> None:
            clock[0] = now

        value = yield from retrying(
            make,
            self.backoff,
            lambda: clock[0],
            fatal=fatal,
            deadline=started + self.retry_budget,
            tick=tick,
        )
        self.connected = True
        return value

    def _trim_due(self, key: str, count: int, now: float) -> bool:
        """Whether the ``count``-th publish since the last trim of ``key`` trims."""
        last = self.last_trim.get(key, now)
        return count >= self.trim_every or now - last >= self.trim_interval

    def _maybe_trim(self, key: str, now: float, count: int) -> Flow[None]:
        """Flow: count ``count`` publishes of ``key`` about to be written; trim first if due.

        Before the write, so that a refusal raises with nothing written (a
        publish raising after its entry was written would be retried by its
        caller into a duplicate). Other failures skip this trim and the next
        one tries again; an ACL refusal never heals by itself, so it raises,
        and again at every publish until the permission is granted.
        """
        count += self.since_trim.get(key, 0)
        self.last_trim.setdefault(key, now)
        if not self._trim_due(key, count, now):
            self.since_trim[key] = count
            return
        try:
            removed = yield from safe_trim(key, self.ungrouped_maxlen)
        except AccessDenied as exc:
            raise exc.needed(f"to trim {key} safely") from exc
        except AbeRedisError as exc:
            logger.debug("trimming %s skipped: %s", key, exc)
            removed = 0
        self.since_trim[key] = 0
        self.last_trim[key] = now
        if removed:
            logger.debug("trimmed %d fully consumed entries from %s", removed, key)
