"""``dlq list|show|replay|purge``: the dead-letter workflow (inspect, fix, replay).

Replay and purge go in chunks, each record atomically (one MULTI per
record, server side): an interruption (Ctrl-C) between or inside chunks
leaves every record either done or untouched, never lost or doubled.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .._core.entries import DeadLetter
from .._core.ids import id_ms
from .._sync.backend import SyncRedisQueue
from .output import EXIT_ERROR, EXIT_OK, confirmed, plain, plural, time_bound, when

PAGE = 500
CHUNK = 100


def matching(queue: SyncRedisQueue, args: argparse.Namespace) -> Iterator[DeadLetter]:
    """The dead letters the filters select, stream by stream, oldest first."""
    now_ms = queue.status(()).time_ms
    since = None if args.since is None else time_bound(args.since, now_ms)
    until = None if args.until is None else time_bound(args.until, now_ms)
    ids = set(args.id or ())
    reason = (args.reason or "").lower()
    for stream in args.stream or queue.streams():
        after, finished = ("-" if since is None else f"{since}-0"), False
        while not finished:
            page = queue.dead_letters(stream, count=PAGE, after=after)
            for record in page:
                if until is not None and id_ms(record.id) > until:
                    finished = True
                    break
                if (
                    (not ids or record.id in ids or record.source_id in ids)
                    and (args.group is None or record.group == args.group)
                    and (not reason or reason in f"{record.reason} {record.error}".lower())
                ):
                    yield record
            finished = finished or len(page) < PAGE
            if page:
                after = "(" + page[-1].id


def list_(queue: SyncRedisQueue, args: argparse.Namespace, out: Console) -> int:
    records = []
    for record in matching(queue, args):
        records.append(record)
        if len(records) >= args.limit:
            break
    if args.json:
        print(json.dumps([_record(r) for r in records], indent=2))
        return EXIT_OK
    if not records:
        out.print("no dead letters match")
        return EXIT_OK
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in (
        "stream",
        "dead letter",
        "dead-lettered",
        "entry",
        "group",
        "deliveries",
        "reason",
    ):
        table.add_column(name, no_wrap=name != "reason")
    for r in records:
        table.add_row(
            r.source_stream,
            r.id,
            when(id_ms(r.id)),
            r.source_id,
            r.group,
            str(r.deliveries),
            r.reason + (f": {r.error}" if r.error else ""),
        )
    out.print(table)
    if len(records) >= args.limit:
        out.print(f"(first {args.limit}; --limit for more)")
    return EXIT_OK


def _record(r: DeadLetter) -> dict[str, object]:
    shown = plain(r)
    del shown["fields"]
    shown["dead_lettered_at"] = when(id_ms(r.id))
    return dict(shown)


def show(queue: SyncRedisQueue, args: argparse.Namespace, out: Console) -> int:
    args.id, args.stream = [args.record], [args.stream] if args.stream else None
    args.since = args.until = args.reason = args.group = None
    for record in matching(queue, args):
        print(json.dumps(_record(record), indent=2))
        return EXIT_OK
    out.print(f"no dead letter {args.record}")
    return EXIT_ERROR


def act(queue: SyncRedisQueue, args: argparse.Namespace, out: Console, *, replay: bool) -> int:
    """Replay or purge what the filters select, after a dry run or a confirmation."""
    chosen = list(matching(queue, args))
    verb, done_verb, doing = (
        ("replay", "replayed", "replaying") if replay else ("purge", "purged", "purging")
    )
    streams = sorted({r.source_stream for r in chosen})
    if not chosen:
        out.print("no dead letters match")
        return EXIT_OK
    out.print(f"{plural(len(chosen), 'dead letter')} of {', '.join(streams)} match")
    if args.dry_run:
        out.print(f"dry run: {len(chosen)} would be {done_verb}; nothing changed")
        return EXIT_OK
    what = "re-published to their streams" if replay else "deleted for good"
    question = f"{verb.capitalize()} {plural(len(chosen), 'dead letter')} ({what})?"
    if not confirmed(args, question, out):
        return EXIT_ERROR
    done = skipped = 0
    columns = (TextColumn(doing), BarColumn(), MofNCompleteColumn())
    progress = Progress(*columns, console=out, transient=True, disable=not out.is_terminal)
    try:
        with progress:
            task = progress.add_task(verb, total=len(chosen))
            for stream in streams:
                ids = [r.id for r in chosen if r.source_stream == stream]
                for start in range(0, len(ids), CHUNK):
                    chunk = ids[start : start + CHUNK]
                    if replay:
                        result = queue.replay_dead_letters(stream, chunk)
                        done, skipped = done + result.replayed, skipped + result.skipped
                    else:
                        done += queue.purge_dead_letters(stream, chunk)
                    progress.advance(task, len(chunk))
    except KeyboardInterrupt:
        out.print(
            f"interrupted after {done} {done_verb}: each record is either {done_verb} or "
            "still a dead letter (each moves whole); run it again for the rest"
        )
        return 130
    note = f", {skipped} skipped (not written by abe-redis: left in place)" if skipped else ""
    out.print(f"{plural(done, 'dead letter')} {done_verb}{note}")
    return EXIT_OK
