"""A host-style worker for the fault suite: consume(group) and print what it handled.

Prints ``H <i>`` after handling each event, flushing at once, so the test
knows exactly what was handled before the process was killed.
"""

from __future__ import annotations

import sys

import anyio

from abe_redis import RedisMessageQueueBackend


async def main() -> None:
    async with RedisMessageQueueBackend.from_env() as backend:
        print("ready", flush=True)
        async for event in backend.consume():
            await anyio.sleep(0.001)  # the handler's work
            sys.stdout.write(f"H {event['i']}\n")
            sys.stdout.flush()


anyio.run(main)
