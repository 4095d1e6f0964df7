"""The anyio facade: runs the core's flows on asyncio and trio."""
