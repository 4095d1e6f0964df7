from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest

from abe_redis._core.codec import (
    MAX_DEPTH,
    Undecodable,
    decode_entry,
    encode_payload,
)
from abe_redis._core.entries import Delivery, StreamEntry, new_delivery
from abe_redis._core.keys import is_internal, validate_key
from abe_redis.errors import PayloadError, StreamKeyError


def roundtrip(payload: dict[str, Any]) -> dict[str, Any] | Undecodable:
    fields = encode_payload(payload)
    decoded = decode_entry(StreamEntry("s", "1-0", fields))
    return decoded.payload if isinstance(decoded, Delivery) else decoded


def test_roundtrip_keeps_the_payload_exactly() -> None:
    payload = {"type": "message", "n": 3, "f": 1.5, "ok": True, "none": None,
               "nested": {"list": [1, "two", {"three": 3}]}, "text": "héllo ✓"}  # fmt: skip
    assert roundtrip(payload) == payload


def test_encoding_is_compact_json_under_data() -> None:
    assert encode_payload({"a": [1, 2], "b": "é"}) == ((b"data", '{"a":[1,2],"b":"é"}'.encode()),)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([1, 2], "must be a dict"),
        ("text", "must be a dict"),
        (None, "must be a dict"),
        ({"s": {1, 2}}, "not JSON-serializable"),
        ({"b": b"bytes"}, "not JSON-serializable"),
        ({"d": datetime.datetime(2026, 1, 1)}, "not JSON-serializable"),
        ({"x": float("nan")}, "not JSON-serializable"),
        ({"x": float("inf")}, "not JSON-serializable"),
        ({1: "int key"}, "key of type int"),
        ({"deep": {2: "x"}}, "key of type int"),
        ({"list": [{None: 1}]}, "key of type NoneType"),
    ],
)
def test_bad_payloads_raise_payload_error(payload: Any, match: str) -> None:
    with pytest.raises(PayloadError, match=match) as info:
        encode_payload(payload)
    assert isinstance(info.value, ValueError)


def test_nesting_is_bounded() -> None:
    ok: dict[str, Any] = {}
    node = ok
    for _ in range(MAX_DEPTH - 1):
        node["n"] = {}
        node = node["n"]
    encode_payload(ok)
    with pytest.raises(PayloadError, match="deeper than"):
        encode_payload({"n": ok})
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(PayloadError, match="deeper than"):
        encode_payload({"x": deep})


def test_entries_written_by_the_old_plugin_decode() -> None:
    # abe-redis 0.1.0 wrote json.dumps(payload) under the field "data".
    raw = json.dumps({"type": "message", "text": "hi"}).encode()
    decoded = decode_entry(StreamEntry("slack_events", "1-0", ((b"data", raw),)))
    assert decoded == Delivery("slack_events", "1-0", {"type": "message", "text": "hi"})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (None, "deleted"),
        ((), "no 'data' field"),
        (((b"payload", b"{}"),), "no 'data' field (fields: payload)"),
        (((b"data", b"{not json"),), "not valid UTF-8 JSON"),
        (((b"data", b"\xff\xfe\x00"),), "not valid UTF-8 JSON"),
        (((b"data", b"[1,2]"),), "JSON list, not an object"),
    ],
)
def test_foreign_entries_are_undecodable_values(
    fields: tuple[tuple[bytes, bytes], ...] | None, reason: str
) -> None:
    result = decode_entry(StreamEntry("s", "1-0", fields))
    assert isinstance(result, Undecodable)
    assert reason in result.reason


@pytest.mark.parametrize(("key", "match"), [("", "empty"), (None, "str"), (b"s", "str"),
                                            (5, "str"), ("reg", "reserved")])  # fmt: skip
def test_bad_keys(key: Any, match: str) -> None:
    with pytest.raises(StreamKeyError, match=match):
        validate_key(key, reserved="reg")


def test_internal_keys() -> None:
    assert is_internal("_health_check")
    assert not is_internal("slack_events")
    assert validate_key("slack_events", reserved="reg") == "slack_events"


def test_a_payload_holding_itself_is_refused_not_a_recursion_error() -> None:
    loop: dict[str, Any] = {"a": 1}
    loop["self"] = loop
    with pytest.raises(PayloadError, match="nests deeper"):
        encode_payload(loop)
    items: list[Any] = []
    items.append(items)
    with pytest.raises(PayloadError, match="nests deeper"):
        encode_payload({"items": items})


def test_encoding_matches_the_standard_librarys_compact_form() -> None:
    payload = {"text": 'héllo ✓ "quoted"\n', "n": [1, 2.5, None, True], "e": {}}
    ((name, data),) = encode_payload(payload)
    assert name == b"data"
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert data == expected.encode()


def test_the_fast_delivery_constructor_makes_the_same_frozen_value() -> None:
    fast = new_delivery("s", "1-0", {"a": 1}, 2)
    assert fast == Delivery("s", "1-0", {"a": 1}, 2)
    assert type(fast) is Delivery
    assert (fast.stream, fast.id, fast.payload, fast.deliveries) == ("s", "1-0", {"a": 1}, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.id = "2-0"  # type: ignore[misc]
