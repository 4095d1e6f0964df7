"""Payload <-> stream fields.

A payload is a JSON object of JSON values (str keys all the way down, no
NaN or infinities, nesting bounded). It is stored as compact JSON under one
field, ``data``, which is also what abe-redis 0.1.0 wrote, so entries from
that plugin are read as they are. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import PayloadError, StreamKeyError
from .entries import Delivery, StreamEntry

FIELD = b"data"
MAX_DEPTH = 64
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_decode = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class Undecodable:
    """An entry we cannot turn into a payload, and why."""

    entry: StreamEntry
    reason: str


def _check_tree(value: Any, depth: int) -> None:
    # json.dumps alone would accept int keys (turning them into strings) and
    # recurse until RecursionError, so keys and depth are checked here.
    if depth > MAX_DEPTH:
        raise PayloadError(f"payload nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(
                    f"payload has a key of type {type(key).__name__} ({key!r:.40}); "
                    "JSON keys are strings"
                )
            if isinstance(item, dict | list | tuple):
                _check_tree(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, dict | list | tuple):
                _check_tree(item, depth + 1)


def encode_payload(payload: Any) -> tuple[tuple[bytes, bytes], ...]:
    """Encode a payload into stream fields.

    Raises:
        PayloadError: the payload is not a dict, or holds a value JSON cannot
            carry exactly (sets, bytes, datetimes, NaN, non-str keys, ...).
    """
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a dict (a JSON object), got {type(payload).__name__}")
    _check_tree(payload, 1)
    try:
        data = _encoder.encode(payload)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"payload is not JSON-serializable: {exc}") from exc
    return ((FIELD, data.encode()),)


def decode_entry(entry: StreamEntry) -> Delivery | Undecodable:
    """Decode a stream entry into a delivery, or say why it cannot be decoded."""
    if entry.fields is None:
        return Undecodable(entry, "entry was deleted from the stream")
    raw = None
    for name, value in entry.fields:
        if name == FIELD:
            raw = value
            break
    if raw is None:
        names = ", ".join(n.decode("utf-8", "replace") for n, _ in entry.fields[:5])
        return Undecodable(entry, f"entry has no 'data' field (fields: {names or 'none'})")
    try:
        payload = _decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Undecodable(entry, f"'data' is not valid UTF-8 JSON: {exc}")
    if not isinstance(payload, dict):
        return Undecodable(entry, f"'data' holds a JSON {type(payload).__name__}, not an object")
    return Delivery(entry.stream, entry.id, payload)


def validate_key(key: Any, *, reserved: str) -> str:
    """Check a stream key given by a caller.

    Raises:
        StreamKeyError: not a str, empty, or the registry's own key.
    """
    if not isinstance(key, str):
        raise StreamKeyError(f"stream key must be a str, got {type(key).__name__}")
    if not key:
        raise StreamKeyError("stream key must not be empty")
    if key == reserved:
        raise StreamKeyError(f"stream key {key!r} is reserved for the stream registry")
    return key


def is_internal(key: str) -> bool:
    """Keys starting with '_' (health probes and the like) are not consumed by default."""
    return key.startswith("_")
