"""A restricted ACL user, as an operator would set one up: the documented rule
sets are enough, and a missing permission is a typed error naming it, at the
first call that needs it, never a silent failure or a retry loop."""

from __future__ import annotations

import anyio
import pytest

from abe_redis import AccessDenied, RedisMessageQueueBackend, Settings
from abe_redis.embedded import RedisServer

from ..helpers import admin

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# The rule sets of the Deployment page, for streams named app:*.
KEYS = ["~app:*", "~abe_redis:*"]
PRODUCER = "+xadd +sadd +evalsha +eval +get +set +exists +xinfo|groups +xpending +xtrim"
CONSUMER = (
    "+smembers +xgroup|create +xgroup|delconsumer +xreadgroup +xack +xautoclaim +xclaim "
    "+xpending +xinfo|consumers +xadd +multi +exec +evalsha +eval"
)
TOOLS = "+xrange +xlen +xdel +del +xadd +multi +exec"
BOTH = ["+ping", "+cluster|slots"]
RULES = sorted({*PRODUCER.split(), *CONSUMER.split(), *TOOLS.split(), *BOTH})


@pytest.fixture(params=["asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


def restrict(server: RedisServer, rules: list[str]) -> str:
    """Flush data and scripts, make user ``app`` with exactly ``rules``; its URL.

    Group ``g`` of ``app:s`` already has a consumer, idle and holding
    nothing: a stale one for the consumer's housekeeping to remove.
    """
    with admin(server.url) as client:
        client.flushall()
        client.script_flush()  # the first script call is an EVAL, not an EVALSHA
        client.xgroup_create("app:s", "g", "0", mkstream=True)
        client.xgroup_createconsumer("app:s", "g", "gone")
        client.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", "app", "reset", "on", ">pw", "resetchannels", "-@all", *KEYS, *rules
        )
    return server.url.replace("redis://", "redis://app:pw@")


async def everything(url: str) -> tuple[int, int, int]:
    """Publish (plain, idempotent, many), consume with ack and nack (removing
    the stale consumer), publish enough to trim, dead letters and their
    tools; (dead letters, replayed, purged)."""
    settings = Settings(
        url=url,
        block_ms=100,
        max_deliveries=1,
        idempotency_field="eid",
        claim_min_idle_ms=1000,
        stale_consumer_ms=1,
    )
    async with RedisMessageQueueBackend(settings) as backend:
        assert await backend.ping()
        await backend.publish("app:s", {"n": 1, "eid": "x"})
        await backend.publish("app:s", {"n": 1, "eid": "x"})  # a duplicate: not written
        await backend.publish_many("app:s", [{"n": 2}, {"n": 3}])
        async with backend.deliveries(group="g") as deliveries:
            with anyio.fail_after(10):
                first = await deliveries.__anext__()
                await first.ack()
                second = await deliveries.__anext__()
                await second.nack(error="boom")  # max_deliveries=1: dead-lettered
                third = await deliveries.__anext__()
                await third.ack()
            with anyio.move_on_after(0.5):
                await deliveries.__anext__()
        # The 1,000th publish since the last trim trims first (group g is there).
        await backend.publish_many("app:s", [{"n": n} for n in range(1000)])
        dead = await backend.dead_letter_count("app:s")
        replayed = (await backend.replay_dead_letters("app:s")).replayed
        purged = await backend.purge_dead_letters("app:s")
    return dead, replayed, purged


async def test_the_documented_rules_are_enough(server: RedisServer) -> None:
    assert await everything(restrict(server, RULES)) == (1, 1, 0)


@pytest.mark.parametrize(
    "refused",
    [
        "+xadd",
        "+sadd",
        "+smembers",
        "+xgroup|create",
        "+xreadgroup",
        "+xack",
        "+xautoclaim",
        "+multi",
        "+exec",
        "+evalsha",
        "+xlen",
        "+xrange",
        "+xdel",
        "+del",
        "+ping",
        "+eval",
        "+get",
        "+set",
        "+exists",
        "+xinfo|groups",
        "+xinfo|consumers",
        "+xgroup|delconsumer",
        "+xpending",
        "+xtrim",
    ],
)
async def test_a_missing_permission_is_named_at_the_first_call_needing_it(
    server: RedisServer, refused: str
) -> None:
    url = restrict(server, [r for r in RULES if r != refused])
    with anyio.fail_after(15), pytest.raises(AccessDenied) as raised:
        await everything(url)
    # NOPERM names the command (or subcommand); a refusal inside a script,
    # which Redis 7.0 gives as a line number, is named from the script's line.
    message = str(raised.value).lower()
    name = refused[1:]
    assert f"'{name}'" in message or f"refused {name.replace('|', ' ')} in a script" in message


async def test_a_refused_lease_renewal_ends_the_consumer_with_its_reason(
    server: RedisServer,
) -> None:
    # Without xclaim the keeper cannot renew what a handler holds, and
    # another consumer would take it mid-handler: the consumer says so.
    url = restrict(server, [r for r in RULES if r != "+xclaim"])
    settings = Settings(url=url, block_ms=100, claim_min_idle_ms=600)
    async with RedisMessageQueueBackend(settings) as backend:
        await backend.publish_many("app:s", [{"n": 1}, {"n": 2}])
        async with backend.consume(group="g") as events:
            with anyio.fail_after(10):
                assert await events.__anext__() == {"n": 1}
                await anyio.sleep(1.0)  # a slow handler: renewals run and are refused
                assert await events.__anext__() == {"n": 2}  # fetched with the first
                with pytest.raises(AccessDenied, match=r"script|xclaim"):
                    await events.__anext__()
