"""OpenTelemetry (REDIS_OTEL=true), checked with the SDK's in-memory reader
and exporter against a real redis-server: the messaging metrics, the gauges
of lag, pending and dead letters, and one trace from the publisher to the
handler, across two processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from abe_redis import ConfigError, RedisMessageQueueBackend, Settings, SyncRedisQueue
from abe_redis.embedded import RedisServer, free_port

from ..helpers import admin, clean_env, take

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers() -> None:
    """The global providers, set once for the process (OTel allows one set)."""
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(tracing)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(params=["asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def url(server: RedisServer) -> str:
    with admin(server.url) as client:
        client.flushall()
    SPANS.clear()
    return server.url


def points(name: str) -> list[Any]:
    """Every data point of metric ``name`` collected now."""
    data = READER.get_metrics_data()
    assert data is not None
    found = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += list(metric.data.data_points)
    return found


def at(found: list[Any], **attributes: str) -> list[Any]:
    return [p for p in found if all(p.attributes.get(k) == v for k, v in attributes.items())]


async def test_metrics_gauges_and_spans_of_publish_and_process(url: str) -> None:
    settings = Settings(url=url, otel=True, block_ms=100, max_deliveries=1, stale_consumer_ms=None)
    async with RedisMessageQueueBackend(settings) as backend:
        for n in range(3):
            await backend.publish("traced", {"n": n})
        events = backend.consume(group="g")
        assert await take(events, 1) == [{"n": 0}]
        # n=0 failed (dead-lettered: max_deliveries=1); n=1 in hand.
        assert await events.athrow(ValueError("bad")) == {"n": 1}
        assert await events.__anext__() == {"n": 2}  # n=1 done
        await events.aclose()  # n=2 processed on close
        where = {"messaging.destination.name": "traced", "messaging.system": "redis"}
        (sent,) = at(points("messaging.client.sent.messages"), **where)
        assert sent.value == 3
        (timed,) = at(points("messaging.client.operation.duration"), **where)
        assert timed.count == 3
        consumed = at(points("messaging.client.consumed.messages"), **where)
        assert sum(p.value for p in consumed) == 3
        assert consumed[0].attributes["messaging.consumer.group.name"] == "g"
        processed = at(points("messaging.process.duration"), **where)
        outcomes = {p.attributes.get("error.type", "ok"): p.count for p in processed}
        assert outcomes == {"ok": 2, "ValueError": 1}
        group = {**where, "messaging.consumer.group.name": "g"}
        (lag,) = at(points("abe_redis.group.lag"), **group)
        (pending,) = at(points("abe_redis.group.pending"), **group)
        (dead,) = at(points("abe_redis.stream.dead_letters"), **where)
        assert (lag.value, pending.value, dead.value) == (0, 0, 1)
        assert at(points("abe_redis.group.oldest_pending_age"), **group)
    spans = SPANS.get_finished_spans()
    publish = [s for s in spans if s.name == "publish traced"]
    process = [s for s in spans if s.name == "process traced"]
    assert len(publish) == 3
    assert len(process) == 3
    assert all(s.kind is trace.SpanKind.PRODUCER for s in publish)
    assert all(s.kind is trace.SpanKind.CONSUMER for s in process)
    by_id = {s.context.span_id: s for s in publish}
    for span in process:  # each handler's span is its publish span's child
        assert span.parent is not None
        assert span.parent.span_id in by_id
        assert span.context.trace_id == by_id[span.parent.span_id].context.trace_id
    failed = [s for s in process if s.status.status_code is trace.StatusCode.ERROR]
    assert [dict(s.attributes or {}).get("error.type") for s in failed] == ["ValueError"]


PUBLISHER = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from abe_redis import Settings, SyncRedisQueue

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    with SyncRedisQueue(Settings(url=sys.argv[1], otel=True)) as queue:
        queue.publish("across", {"hello": "from another process"})
    (span,) = spans.get_finished_spans()
    print(json.dumps({"trace": span.context.trace_id, "span": span.context.span_id}))
    """
)


async def test_one_trace_runs_from_a_publisher_process_to_the_handler(url: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", PUBLISHER, url],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    published = json.loads(run.stdout)
    settings = Settings(url=url, otel=True, block_ms=100)
    async with (
        RedisMessageQueueBackend(settings) as backend,
        backend.deliveries(group="g") as deliveries,
    ):
        with anyio.fail_after(10):
            delivery = await deliveries.__anext__()
        assert delivery.payload == {"hello": "from another process"}
        await delivery.ack()
    (span,) = [s for s in SPANS.get_finished_spans() if s.name == "process across"]
    assert span.context.trace_id == published["trace"]
    assert span.parent is not None
    assert span.parent.span_id == published["span"]


def test_the_sync_face_traces_what_it_hands_out(url: str) -> None:
    settings = Settings(url=url, otel=True, block_ms=100)
    with SyncRedisQueue(settings) as queue:
        queue.publish_many("batch", [{"n": 1}, {"n": 2}])
        with queue.consume(group="g") as events:
            assert [next(events), next(events)] == [{"n": 1}, {"n": 2}]
    spans = SPANS.get_finished_spans()
    (publish,) = [s for s in spans if s.name == "publish batch"]
    assert dict(publish.attributes or {})["messaging.batch.message_count"] == 2
    process = [s for s in spans if s.name == "process batch"]
    assert len(process) == 2
    assert {s.parent.span_id for s in process if s.parent} == {publish.context.span_id}


def test_off_by_default_nothing_goes_into_the_entries(url: str) -> None:
    with SyncRedisQueue(Settings(url=url)) as queue:
        assert queue._backend._telemetry is None
        queue.publish("plain", {"n": 1})
    with admin(url) as client:
        entries: Any = client.xrange("plain")
    ((_, fields),) = entries
    assert list(fields) == [b"data"]


def test_on_without_opentelemetry_is_a_config_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigError, match=r"abe-redis\[otel\]"):
        RedisMessageQueueBackend(Settings(url=url, otel=True))


PROMETHEUS_RUN = """
import urllib.request

from abe_redis import SyncRedisQueue

with SyncRedisQueue.from_env() as queue:
    for n in range(3):
        queue.publish("slack_events", {"n": n})
    events = queue.consume(group="workers")
    assert next(events) == {"n": 0}
    assert next(events) == {"n": 1}  # settles the first: a process duration
    scraped = urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=10)
    print(scraped.read().decode())
    events.close()
"""


def operations_example(heading: str) -> str:
    """The first Python block after ``heading`` on the Operations page."""
    page = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    after = page[page.index(heading) :]
    start = after.index("```python\n") + len("```python\n")
    return after[start : after.index("```", start)]


def test_the_prometheus_example_of_the_docs_is_scraped(url: str) -> None:
    """The Operations page's Prometheus set-up, run as written (on a loopback
    port), then scraped: the gauges and the messaging metrics are there."""
    example = operations_example("Prometheus, through")
    assert "start_http_server(9464)" in example
    port = free_port()
    script = example.replace(
        "start_http_server(9464)", f"PORT = {port}\nstart_http_server(PORT, addr='127.0.0.1')"
    )
    run = subprocess.run(
        [sys.executable, "-c", script + PROMETHEUS_RUN],
        env={**clean_env(), "REDIS_URL": url, "REDIS_OTEL": "true", "REDIS_BLOCK_MS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    samples = {}
    for line in run.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)

    def values(metric: str, labels: str = "") -> list[float]:
        return [v for k, v in samples.items() if k.startswith(metric) and labels in k]

    group = 'messaging_consumer_group_name="workers",messaging_destination_name="slack_events"'
    assert values("abe_redis_group_lag", group) == [0.0]  # the consumer has read all three
    # The first's ack may be in; the third is read ahead.
    assert values("abe_redis_group_pending", group) in ([1.0], [2.0], [3.0])
    assert values("messaging_process_duration_seconds_count") == [1.0]
    assert sum(values("messaging_client_consumed_messages_total")) == 2
