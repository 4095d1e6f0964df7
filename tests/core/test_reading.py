"""Read planning: which streams a consumer waits on."""

from __future__ import annotations

from abe_redis._core.entries import StreamEntry
from abe_redis._core.reading import MAX_BLOCKING_READS, ReadPlan


def plan(n: int) -> ReadPlan:
    p = ReadPlan("g", "c", prefetch=10, block_ms=1000, claim_min_idle_ms=30_000, claim_interval=5)
    for i in range(n):
        p.add(f"s{i}")
    return p


def test_a_few_streams_are_all_waited_on() -> None:
    reads = plan(3).blocking_reads(0.0, None)
    assert [r.stream for r in reads] == ["s0", "s1", "s2"]
    assert all(r.block_ms == 1000 for r in reads)


def test_many_streams_wait_on_a_bounded_set_the_busiest_last() -> None:
    # 1,000 streams must not mean 1,000 connections held by one consumer.
    p = plan(1000)
    for name in ("s500", "s7", "s999"):
        read = p.read(name)
        p.took(read, (StreamEntry(name, "1-0", ()),))
    reads = p.blocking_reads(0.0, None)
    assert len(reads) == MAX_BLOCKING_READS
    assert [r.stream for r in reads[:3]] == ["s999", "s7", "s500"]  # most recent first
    # Every stream is still read, without blocking, in every round.
    assert len(p.reads()) == 1000
