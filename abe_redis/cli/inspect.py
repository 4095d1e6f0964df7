"""``status``, ``pending``, ``health`` and ``consumers prune``."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from .._core.ids import id_ms
from .._core.status import GroupStatus, QueueStatus, StreamStatus
from .._sync.backend import SyncRedisQueue
from .output import (
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_OK,
    confirmed,
    console,
    duration,
    plain,
    plural,
    table,
    when,
)


def status_view(found: QueueStatus, target: str) -> Group:
    """The status as a heading and one table row per stream and group."""
    server = found.server
    heading = Text(
        f"{server.version} ({server.role}, {server.topology}) at {target}, {when(found.time_ms)}",
        style="bold",
    )
    figures = (
        "length", "lag", "pending", "oldest pending", "consumers", "dead letters",
        "oldest dead letter",
    )  # fmt: skip
    shown = table("stream", "group", *figures, right=figures)
    for stream in found.streams:
        rows: list[GroupStatus | None] = list(stream.groups) or [None]
        for group in rows:
            shown.add_row(*_status_row(stream, group))
    if not found.streams:
        shown.add_row("(no streams registered yet)", *[""] * 8)
    return Group(heading, shown)


def _status_row(stream: StreamStatus, group: GroupStatus | None) -> list[str]:
    dead = [str(stream.dead_letters), duration(stream.oldest_dead_letter_age_ms)]
    length = str(stream.length) if stream.exists else "(missing)"
    if group is None:
        return [stream.name, "-", length, "-", "-", "-", "-", *dead]
    lag = f"{group.lag}" if group.lag_exact else f"≥{group.lag}"
    alive = sum(1 for c in group.consumers if c.idle_ms < 60_000)
    return [
        stream.name,
        group.name,
        length,
        lag,
        str(group.pending),
        duration(group.oldest_pending_age_ms),
        f"{len(group.consumers)} ({alive} active)",
        *dead,
    ]


def status(queue: SyncRedisQueue, args: argparse.Namespace) -> int:
    streams = args.stream or None
    if args.json:
        found = queue.status(streams)
        print(json.dumps({"url": queue.settings.redacted_url, **plain(found)}, indent=2))
        return EXIT_OK
    out = console()
    target = queue.settings.redacted_url
    if args.watch is None:
        out.print(status_view(queue.status(streams), target))
        return EXIT_OK
    with Live(console=out, auto_refresh=False, transient=False) as live:
        try:
            while True:
                live.update(status_view(queue.status(streams), target), refresh=True)
                time.sleep(args.watch)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _groups(queue: SyncRedisQueue, args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    """(stream, group) for ``--stream`` (default: every stream) and ``--group``
    (default: every group of each)."""
    for stream in args.stream or queue.streams():
        groups = [args.group] if args.group else [g.name for g in queue.groups(stream)]
        for group in groups:
            yield stream, group


def pending(queue: SyncRedisQueue, args: argparse.Namespace) -> int:
    out = console()
    now_ms = queue.status(()).time_ms
    held = table("stream", "group", "entry", "consumer", "idle", "age", "deliveries")
    rows = 0
    for stream, group in _groups(queue, args):
        for entry in queue.pending_entries(stream, group, count=args.count):
            held.add_row(
                stream,
                group,
                entry.id,
                entry.consumer,
                duration(entry.idle_ms),
                duration(max(0, now_ms - id_ms(entry.id))),
                str(entry.deliveries),
            )
            rows += 1
    if rows:
        out.print(held)
    else:
        out.print("nothing pending")
    return EXIT_OK


def health(queue: SyncRedisQueue, args: argparse.Namespace) -> int:
    """One line; exit 0 healthy, 1 a threshold crossed (2, unreachable, is the caller's)."""
    found = queue.status(args.stream or None)
    problems = []
    worst_lag: tuple[int, str] = (0, "")
    worst_age: tuple[int, str] = (0, "")
    dead = 0
    for stream in found.streams:
        dead += stream.dead_letters
        if args.max_dlq is not None and stream.dead_letters > args.max_dlq:
            problems.append(f"{stream.dead_letters} dead letters > {args.max_dlq} on {stream.name}")
        for group in stream.groups:
            where = f"{stream.name}/{group.name}"
            worst_lag = max(worst_lag, (group.lag, where))
            age = group.oldest_pending_age_ms or 0
            worst_age = max(worst_age, (age, where))
            if args.max_lag is not None and group.lag > args.max_lag:
                problems.append(f"lag {group.lag} > {args.max_lag} on {where}")
            limit = args.max_pending_age
            if limit is not None and age > limit * 1000:
                problems.append(
                    f"oldest pending {duration(age)} > {duration(limit * 1000)} on {where}"
                )
    groups = sum(len(s.groups) for s in found.streams)
    summary = (
        f"{plural(len(found.streams), 'stream')}, {plural(groups, 'group')}; "
        f"max lag {worst_lag[0]}"
        + (f" ({worst_lag[1]})" if worst_lag[1] else "")
        + (f", oldest pending {duration(worst_age[0])} ({worst_age[1]})" if worst_age[0] else "")
        + f", dead letters {dead}"
    )
    if problems:
        print(f"UNHEALTHY: {'; '.join(problems)} ({summary})")
        return EXIT_FAILED
    print(f"OK: {summary}")
    return EXIT_OK


def consumers(queue: SyncRedisQueue, args: argparse.Namespace, out: Console) -> int:
    """One row per consumer of the groups selected."""
    figures = ("pending", "idle", "inactive")
    listed = table("stream", "group", "consumer", *figures, right=figures)
    rows = 0
    for stream in queue.status(args.stream or None).streams:
        for group in stream.groups:
            if args.group and group.name != args.group:
                continue
            for consumer in group.consumers:
                listed.add_row(
                    stream.name,
                    group.name,
                    consumer.name,
                    str(consumer.pending),
                    duration(consumer.idle_ms),
                    duration(consumer.inactive_ms),
                )
                rows += 1
    if rows:
        out.print(listed)
        out.print(
            "idle: since it last asked for entries; inactive: since it last got one "
            "(Redis 7.2+, '-' where not known)",
            style="dim",
        )
    else:
        out.print("no consumers")
    return EXIT_OK


def prune(queue: SyncRedisQueue, args: argparse.Namespace, out: Console) -> int:
    idle_ms = int(args.idle * 1000)
    plan: list[tuple[str, str, tuple[str, ...]]] = []
    for stream, group in _groups(queue, args):
        names = queue.remove_idle_consumers(stream, idle_ms, group, dry_run=True)
        if names:
            plan.append((stream, group, names))
    total = sum(len(names) for _, _, names in plan)
    for stream, group, names in plan:
        out.print(f"{stream}/{group}: {', '.join(names)}")
    if not total:
        out.print(f"no consumer idle for {duration(idle_ms)} with nothing pending")
        return EXIT_OK
    if args.dry_run:
        out.print(f"dry run: {plural(total, 'consumer')} would be deleted")
        return EXIT_OK
    if not confirmed(args, f"Delete {plural(total, 'consumer')}?", out):
        return EXIT_ERROR
    gone = 0
    for stream, group, _ in plan:
        # The script checks again: one that read or took an entry since stays.
        gone += len(queue.remove_idle_consumers(stream, idle_ms, group))
    out.print(f"deleted {plural(gone, 'consumer')} (idle, nothing pending)")
    return EXIT_OK
