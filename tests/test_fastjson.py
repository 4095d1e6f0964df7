"""orjson decoding gives exactly what the standard library gives, or defers to it."""

from __future__ import annotations

import json
from typing import Any

import orjson  # the tests session installs the orjson extra
import pytest

from abe_redis import Settings, fastjson
from abe_redis._core.codec import Undecodable, decode_entry, encode_payload, stdlib_loads
from abe_redis._core.entries import Delivery, StreamEntry
from abe_redis.errors import ConfigError

FAST = fastjson.loads_for("orjson")

SAME = [
    b'{"type":"message","text":"h\\u00e9llo \\u2713","n":3,"f":1.5,"ok":true,"none":null}',
    b'{"a":1,"a":2}',  # duplicate keys: the last wins in both
    b'{"big":12345678901234567890}',  # 20 digits: orjson would keep it, we defer anyway
    b'{"neg":-9223372036854775809}',  # beyond 64 bits: orjson alone returns a float
    b'{"huge":123456789012345678901234567890}',
    b'{"ts":"1700000000.000123","id":"C0123456789012345678901"}',
    b'{"emoji":"\\ud83d\\ude00","lone":"\\ud800"}',  # orjson rejects the lone surrogate
    b'{"nan":NaN,"inf":Infinity}',  # orjson rejects; json accepts
    b'{"over":1E400,"under":1e-400,"neg0":-0.0}',
    b' {"spaced" : [1, 2, {"x": []}]} ',
]


@pytest.mark.parametrize("loads", [stdlib_loads, FAST], ids=["stdlib_loads", "orjson"])
@pytest.mark.parametrize("raw", SAME)
def test_results_match_the_standard_library(raw: bytes, loads: Any) -> None:
    expected = json.loads(raw)
    got = loads(raw)
    assert repr(got) == repr(expected)  # repr: NaN != NaN, and int vs float shows
    assert type(got) is type(expected)


def test_the_guard_is_needed() -> None:
    # Why the 19-digit check exists: orjson alone would change the value.
    assert orjson.loads(b"-9223372036854775809") != -9223372036854775809
    assert FAST(b'{"n":-9223372036854775809}') == {"n": -9223372036854775809}


@pytest.mark.parametrize("loads", [stdlib_loads, FAST], ids=["stdlib_loads", "orjson"])
@pytest.mark.parametrize(
    "raw", [b"{not json", b"\xff\xfe", b'{"a":1} extra', b"", b" ", b"[" * 100_000]
)
def test_errors_are_the_standard_librarys(raw: bytes, loads: Any) -> None:
    with pytest.raises((ValueError, RecursionError)) as fast_error:
        loads(raw)
    with pytest.raises((ValueError, RecursionError)) as std_error:
        json.loads(raw.decode("utf-8"))
    assert type(fast_error.value) is type(std_error.value)
    assert str(fast_error.value) == str(std_error.value)


@pytest.mark.parametrize("loads", [stdlib_loads, FAST], ids=["stdlib", "orjson"])
def test_deep_foreign_entries_are_undecodable_not_a_crash(loads: Any) -> None:
    entry = StreamEntry("s", "1-0", ((b"data", b"[" * 100_000),))
    result = decode_entry(entry, 1, loads)
    assert isinstance(result, Undecodable)


def test_entries_decode_the_same_either_way() -> None:
    payload = {"text": "x" * 100, "n": [1, 2.5, None], "nested": {"deep": {"k": True}}}
    entry = StreamEntry("s", "1-0", encode_payload(payload))
    assert (
        decode_entry(entry, 2, FAST) == decode_entry(entry, 2) == Delivery("s", "1-0", payload, 2)
    )


def test_auto_falls_back_to_the_standard_library(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastjson.loads_for("stdlib") is stdlib_loads
    assert fastjson.loads_for("auto") is not stdlib_loads  # orjson is installed here
    monkeypatch.setattr(fastjson, "_orjson", lambda: None)
    assert fastjson.loads_for("auto") is stdlib_loads
    with pytest.raises(ImportError, match="abe-redis\\[orjson\\]"):
        fastjson.loads_for("orjson")
    with pytest.raises(ConfigError, match="abe-redis\\[orjson\\]"):
        Settings(json="orjson")


def test_setting_is_read_and_validated() -> None:
    assert Settings().json == "auto"
    assert Settings.from_env({"REDIS_JSON": "STDLIB"}).json == "stdlib"
    with pytest.raises(ConfigError, match="REDIS_JSON must be one of auto, stdlib, orjson"):
        Settings.from_env({"REDIS_JSON": "simdjson"})
