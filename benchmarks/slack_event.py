"""The benchmark's event, for scripts that run in venvs without our package.

The same event as ``abe_redis.cli.slack_event`` (about 325 bytes of JSON);
old_plugin.py and peers.py run where only their library is installed, so
they import it from here, beside them.
"""

from __future__ import annotations


def event(i: int) -> dict[str, object]:
    return {
        "token": "demo-verification-token",
        "team_id": "T0DEMO0001",
        "api_app_id": "A0DEMO0001",
        "type": "event_callback",
        "event_id": f"Ev{i:010d}",
        "event_time": 1_700_000_000 + i,
        "event": {
            "type": "message",
            "channel": "C0DEMO0001",
            "user": "U0DEMO0001",
            "text": f"hello from the abe-redis demo, message {i}",
            "ts": f"{1_700_000_000 + i}.000100",
        },
    }
