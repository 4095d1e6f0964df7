"""Cluster key slots and the tags that keep a stream's keys in its slot."""

from __future__ import annotations

import pytest

from abe_redis._core.publisher import idempotency_marker
from abe_redis._core.slots import hash_tag, key_slot, slot_tag

TRICKY = [
    "plain",
    "a{b}c",
    "a{}b",
    "{}{a}",
    "}x",
    "x}{y}",
    "{",
    "a{b",
    "{user1000}.following",
    "é{ß}",
]


def test_hash_tags_follow_redis_rule() -> None:
    assert hash_tag("plain") is None
    assert hash_tag("a{b}c") == "b"
    assert hash_tag("a{}b") is None  # an empty tag: the whole key is hashed
    assert hash_tag("{}{a}") is None  # only the first braces count
    assert hash_tag("a{b") is None
    assert hash_tag("x}{y}") == "y"


def test_key_slot_matches_the_documented_examples() -> None:
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("{user1000}.following") == key_slot("user1000")


@pytest.mark.parametrize("stream", TRICKY)
def test_idempotency_markers_share_their_stream_slot(stream: str) -> None:
    # Regression: "a{}b" got the marker "{a{}b}", whose tag Redis reads as "a{".
    assert key_slot(idempotency_marker(stream, "k{1}")) == key_slot(stream)
    assert "}" not in slot_tag(stream)


def test_markers_of_ordinary_streams_keep_their_old_names() -> None:
    assert idempotency_marker("slack_events", "E1") == "abe_redis:idem:{slack_events}:E1"
    assert idempotency_marker("a{b}c", "E1") == "abe_redis:idem:{b}:E1"
