"""Payload <-> stream fields.

A payload is a JSON object of JSON values (str keys all the way down, no
NaN or infinities, nesting bounded). It is stored as compact JSON under one
field, ``data``, which is also what abe-redis 0.1.0 wrote, so entries from
that plugin are read as they are. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import PayloadError
from .entries import Delivery, StreamEntry, new_delivery

FIELD = b"data"
TRACE_FIELD = b"traceparent"
"""The field beside ``data`` that carries the publisher's trace context, when traced."""
MAX_DEPTH = 64
MAX_PAYLOAD_BYTES = 1_048_576
_CONTAINERS = (dict, list, tuple)
# Leaves that need no walk (exact types: subclasses take the slow branch).
_SCALARS = frozenset({str, int, float, bool, type(None)})
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_dumps: Callable[[Any], str] = _encoder.encode
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
if _c_make_encoder is not None:
    # The same C encoder JSONEncoder.encode uses, built once instead of per
    # call. No cycle markers: _check_tree bounds the depth first, so a cycle
    # is a PayloadError before it gets here.
    _c_encode = _c_make_encoder(
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def _dumps(payload: Any) -> str:
        return "".join(_c_encode(payload, 0))


_decode = json.JSONDecoder().decode

Loads = Callable[[bytes], Any]
"""Turns a ``data`` field into a value; raises ValueError (or UnicodeDecodeError,
RecursionError) on what is not JSON."""


_scan: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009 (not in typeshed)


def stdlib_loads(raw: bytes) -> Any:
    """The default :data:`Loads`: the standard library's json."""
    text = raw.decode("utf-8")
    # The scanner alone, as JSONDecoder.decode calls it, minus the two
    # whitespace regexes around it; anything else (leading or trailing
    # whitespace, extra data, invalid input) goes through decode().
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _decode(text)
    if end != len(text):
        return _decode(text)
    return value


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An entry we cannot turn into a payload, and why."""

    entry: StreamEntry
    reason: str


def _check_tree(value: Any, depth: int) -> None:
    # json.dumps alone would accept int keys (turning them into strings) and
    # recurse until RecursionError, so keys and depth are checked here.
    # Exact type checks (not isinstance) keep this cheap on the publish hot
    # path; subclasses of dict/list still get checked by the slow branch.
    if depth > MAX_DEPTH:
        raise PayloadError(f"payload nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise PayloadError(
                    f"payload has a key of type {type(key).__name__} ({key!r:.40}); "
                    "JSON keys are strings"
                )
            kind = type(item)
            if kind in _SCALARS:
                continue
            if kind is dict or kind is list or kind is tuple or isinstance(item, _CONTAINERS):
                _check_tree(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            kind = type(item)
            if kind in _SCALARS:
                continue
            if kind is dict or kind is list or kind is tuple or isinstance(item, _CONTAINERS):
                _check_tree(item, depth + 1)


def encode_payload(
    payload: Any, max_bytes: int = MAX_PAYLOAD_BYTES
) -> tuple[tuple[bytes, bytes], ...]:
    """Encode a payload into stream fields.

    Raises:
        PayloadError: the payload is not a dict, holds a value JSON cannot
            carry exactly (sets, bytes, datetimes, NaN, non-str keys, ...),
            nests too deep, or encodes to more than ``max_bytes``.
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a dict (a JSON object), got {type(payload).__name__}")
    _check_tree(payload, 1)
    try:
        data = _dumps(payload)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON-serializable: {exc}") from exc
    encoded = data.encode()
    if len(encoded) > max_bytes:
        raise PayloadError(
            f"payload is {len(encoded)} bytes encoded, more than the limit of {max_bytes}"
        )
    return ((FIELD, encoded),)


def decode_entry(
    entry: StreamEntry,
    deliveries: int = 1,
    loads: Loads = stdlib_loads,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Delivery | Undecodable:
    """Decode a stream entry into a delivery, or say why it cannot be decoded.

    A ``data`` field larger than ``max_bytes`` is not decoded at all: its
    decoded form can take many times its size (someone else wrote it; we
    never publish one).
    """
    fields = entry.fields
    if fields is None:
        return Undecodable(entry, "entry was deleted from the stream")
    raw = traceparent = None
    if len(fields) == 1 and fields[0][0] == FIELD:
        raw = fields[0][1]  # hot path: the entries we write
    else:
        for name, value in fields:
            if name == FIELD and raw is None:
                raw = value
            elif name == TRACE_FIELD:
                traceparent = value.decode("ascii", "replace")
    if raw is None:
        names = ", ".join(n.decode("utf-8", "replace") for n, _ in fields[:5])
        return Undecodable(entry, f"entry has no 'data' field (fields: {names or 'none'})")
    if len(raw) > max_bytes:
        return Undecodable(
            entry, f"'data' is {len(raw)} bytes, more than REDIS_MAX_PAYLOAD_BYTES ({max_bytes})"
        )
    try:
        payload = loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return Undecodable(entry, f"'data' is not valid UTF-8 JSON: {exc}")
    except RecursionError:
        return Undecodable(entry, "'data' nests too deeply to decode")
    if type(payload) is not dict:
        return Undecodable(entry, f"'data' holds a JSON {type(payload).__name__}, not an object")
    return new_delivery(entry.stream, entry.id, payload, deliveries, traceparent)
