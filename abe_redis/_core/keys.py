"""Stream keys: what a caller may name, and which keys are not consumed."""

from __future__ import annotations

from typing import Any

from ..errors import StreamKeyError
from .deadletters import DLQ_PREFIX, LEGACY_DLQ_SUFFIX

MAX_KEY_LENGTH = 256


def validate_key(key: Any, *, reserved: str) -> str:
    """Check a stream key given by a caller.

    Raises:
        StreamKeyError: not a str, empty, longer than ``MAX_KEY_LENGTH``,
            holding whitespace or control characters, the registry's own key,
            or a dead-letter stream's name (current or legacy).
    """
    if not isinstance(key, str):
        raise StreamKeyError(f"stream key must be a str, got {type(key).__name__}")
    if not key:
        raise StreamKeyError("stream key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise StreamKeyError(
            f"stream key is {len(key)} characters long, more than {MAX_KEY_LENGTH}"
        )
    if any(c.isspace() or not c.isprintable() for c in key):
        raise StreamKeyError(f"stream key {key[:40]!r} holds whitespace or control characters")
    if key == reserved:
        raise StreamKeyError(f"stream key {key!r} is reserved for the stream registry")
    if key.startswith(DLQ_PREFIX) or key.endswith(LEGACY_DLQ_SUFFIX):
        raise StreamKeyError(
            f"stream key {key!r} starts with {DLQ_PREFIX!r} or ends with "
            f"{LEGACY_DLQ_SUFFIX!r}, reserved for dead letters"
        )
    return key


def is_internal(key: str) -> bool:
    """Keys starting with '_' (health probes and the like) are not consumed by default."""
    return key.startswith("_")
