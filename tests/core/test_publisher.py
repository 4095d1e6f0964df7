from __future__ import annotations

from typing import Any

import pytest

from abe_redis._core.commands import Pipeline, SAdd, XAdd
from abe_redis._core.publisher import PROBE_MAXLEN, REGISTRY_REFRESH, Publisher
from abe_redis.errors import PayloadError, StreamKeyError

from .helpers import Player

DATA = ((b"data", b'{"a":1}'),)


def test_first_publish_registers_the_stream_in_the_same_round_trip() -> None:
    pub = Publisher("reg")
    player = Player(pub.publish("events", {"a": 1}, now=0.0))
    assert player.step == Pipeline((SAdd("reg", "events"), XAdd("events", DATA)))
    player.reply([1, b"1-0"])
    assert player.done
    assert player.result == "1-0"


def test_later_publishes_send_xadd_alone_until_the_refresh() -> None:
    pub = Publisher("reg")
    first = Player(pub.publish("events", {"a": 1}, now=0.0))
    first.reply([1, b"1-0"])
    second = Player(pub.publish("events", {"a": 1}, now=1.0))
    assert second.step == XAdd("events", DATA)
    second.reply(b"2-0")
    assert second.result == "2-0"
    later = Player(pub.publish("events", {"a": 1}, now=REGISTRY_REFRESH + 1))
    assert isinstance(later.step, Pipeline)


def test_maxlen_is_applied_only_when_configured() -> None:
    step = Player(Publisher("reg", maxlen=1000).publish("e", {"a": 1}, 0.0)).step
    assert isinstance(step, Pipeline)
    assert step.commands[1] == XAdd("e", DATA, 1000)


def test_probe_keys_are_capped_and_not_registered() -> None:
    player = Player(Publisher("reg").publish("_health_check", {"a": 1}, 0.0))
    assert player.step == XAdd("_health_check", DATA, PROBE_MAXLEN, approximate=False)


def test_probe_keys_listed_for_consumption_are_ordinary_streams() -> None:
    player = Player(Publisher("reg", consumed=("_audit",)).publish("_audit", {"a": 1}, 0.0))
    assert player.step == Pipeline((SAdd("reg", "_audit"), XAdd("_audit", DATA)))


@pytest.mark.parametrize(
    ("key", "payload", "error"),
    [
        ("", {"a": 1}, StreamKeyError),
        (7, {"a": 1}, StreamKeyError),
        ("reg", {}, StreamKeyError),
        ("e", {"a": {1, 2}}, PayloadError),
        ("e", ["x"], PayloadError),
    ],
)
def test_bad_input_raises_before_any_command(
    key: Any, payload: Any, error: type[Exception]
) -> None:
    flow = Publisher("reg").publish(key, payload, 0.0)
    with pytest.raises(error):
        next(flow)
