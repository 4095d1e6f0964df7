"""Redis Cluster key slots: which keys Redis keeps together.

Redis hashes a key's *hash tag* when it has one (the text between its first
``{`` and the first ``}`` after it, if that text is not empty) and the whole
key otherwise, with CRC16 (XMODEM, which the standard library's
``binascii.crc_hqx`` computes) modulo 16384. Keys that must be touched
together (a stream and its idempotency markers) are built with
:func:`slot_tag` so they land in the same slot.
"""

from __future__ import annotations

import binascii
import functools

SLOTS = 16384


def hash_tag(key: str) -> str | None:
    """The hash tag Redis hashes instead of ``key``, or None when it hashes all of it."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end < 0 or end == start + 1:  # no closing brace, or an empty tag: the whole key
        return None
    return key[start + 1 : end]


def key_slot(key: str) -> int:
    """The cluster slot of ``key``, by Redis' rule."""
    tag = hash_tag(key)
    data = (key if tag is None else tag).encode()
    return binascii.crc_hqx(data, 0) % SLOTS


@functools.lru_cache(maxsize=4096)
def slot_tag(key: str) -> str:
    """A tag such that any key whose first ``{...}`` is ``{tag}`` shares ``key``'s slot.

    It is ``key``'s own hash tag, or ``key`` itself when Redis hashes the
    whole key. A key that Redis hashes whole but holds a ``}`` cannot be
    wrapped in braces unchanged (the tag would end early), so it gets the
    smallest decimal number with the same slot.
    """
    tag = hash_tag(key)
    if tag is not None:
        return tag
    if "}" not in key:
        return key
    slot = key_slot(key)
    n = 0
    while binascii.crc_hqx(str(n).encode(), 0) % SLOTS != slot:
        n += 1
    return str(n)
