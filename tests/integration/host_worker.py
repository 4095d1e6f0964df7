"""A host worker as the Slack MCP server runs one: loader, then consume forever.

Prints each handled event's number on its own line, after handling it.
"""

from __future__ import annotations

import asyncio
import os

from abe.backends.message_queue.loader import load_backend


async def main() -> None:
    backend = load_backend()
    print(f"ready {type(backend).__name__}", flush=True)
    async for event in backend.consume(group=os.environ.get("HOST_GROUP")):
        await asyncio.sleep(0.002)  # the handler's work
        print(event["i"], flush=True)


asyncio.run(main())
