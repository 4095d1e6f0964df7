"""Helpers shared by the facade and integration tests."""

from __future__ import annotations

from typing import Any

import anyio

from abe_redis import AsyncConsumer


async def take(consumer: AsyncConsumer, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next ``n`` payloads, failing the test if they take over ``timeout`` seconds."""
    out = []
    with anyio.fail_after(timeout):
        for _ in range(n):
            out.append(await consumer.__anext__())
    return out
