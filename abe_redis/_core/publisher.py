"""Publishing: validate, encode, and register the stream in the same round trip.

Consumers find streams through a registry (a Redis set) instead of KEYS or
SCAN. The first publish of a key (and again every ``REGISTRY_REFRESH``
seconds, in case the set was flushed) sends ``SADD registry key`` and the
``XADD`` in one pipeline, SADD first, so a stream holding an entry is always
in the registry. Keys starting with '_' are health probes: not registered,
and capped at ``PROBE_MAXLEN`` entries so they cannot grow without bound,
unless they are listed for consumption (``consumed``), which makes them
ordinary streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .codec import encode_payload, is_internal, validate_key
from .commands import Pipeline, SAdd, XAdd
from .steps import Flow

REGISTRY_REFRESH = 60.0
PROBE_MAXLEN = 100


@dataclass(slots=True)
class Publisher:
    """Per-backend publishing state: which keys were registered, and when."""

    registry_key: str
    maxlen: int | None = None
    consumed: tuple[str, ...] = ()
    registered: dict[str, float] = field(default_factory=dict)

    def publish(self, key: Any, payload: Mapping[str, Any], now: float) -> Flow[str]:
        """Flow that writes one payload and returns its entry id.

        The key and payload are checked when the flow starts, before it
        yields any command: a bad one raises and nothing is written.
        """
        key = validate_key(key, reserved=self.registry_key)
        fields = encode_payload(payload)
        if is_internal(key) and key not in self.consumed:
            xadd = XAdd(key, fields, PROBE_MAXLEN, approximate=False)
            resume = yield xadd
            return xadd.parse_reply(resume.reply)
        xadd = XAdd(key, fields, self.maxlen)
        since = self.registered.get(key)
        if since is not None and now - since < REGISTRY_REFRESH:
            resume = yield xadd
            return xadd.parse_reply(resume.reply)
        pipe = Pipeline((SAdd(self.registry_key, key), xadd))
        resume = yield pipe
        _, entry_id = pipe.parse_reply(resume.reply)
        self.registered[key] = resume.now
        return str(entry_id)
