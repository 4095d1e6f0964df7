"""Redis Sentinel as data and rules: asking for the master, checking it, and
which replies mean it moved.

The I/O side (:mod:`abe_redis._io.sentinel`) asks the sentinels in turn for
the master of a service (``SENTINEL GET-MASTER-ADDR-BY-NAME``), checks with
``ROLE`` that the address named really is a master (a sentinel can lag
behind a failover), and sends every round trip there. It looks again when
:func:`points_elsewhere` says a reply came from a server that is no longer
the master, or when a round trip to it fails; at most once per
:data:`~.cluster.REFRESH_INTERVAL`, however many callers notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import RemoteProtocolError
from .cluster import Node
from .commands import Arg, Command, _check, _NoKey
from .replies import ErrorReply, integer, text


@dataclass(frozen=True, slots=True)
class SentinelMaster(_NoKey, Command["Node | None"]):
    """SENTINEL GET-MASTER-ADDR-BY-NAME: the master of ``service``, or None
    when this sentinel does not know the service."""

    name: ClassVar[str] = "SENTINEL GET-MASTER-ADDR-BY-NAME"
    service: str

    def to_args(self) -> tuple[Arg, ...]:
        return ("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)

    def parse_reply(self, raw: Any) -> Node | None:
        raw = _check(self, raw)
        if raw is None:
            return None
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise RemoteProtocolError("SENTINEL GET-MASTER-ADDR-BY-NAME reply is not [host, port]")
        return Node(text(raw[0]), integer(raw[1]))


@dataclass(frozen=True, slots=True)
class Role(_NoKey, Command[str]):
    """ROLE: ``master``, ``slave`` (a replica) or ``sentinel``."""

    name: ClassVar[str] = "ROLE"

    def to_args(self) -> tuple[Arg, ...]:
        return ("ROLE",)

    def parse_reply(self, raw: Any) -> str:
        raw = _check(self, raw)
        if not isinstance(raw, list | tuple) or not raw:
            raise RemoteProtocolError("ROLE reply is not a list")
        return text(raw[0])


def points_elsewhere(reply: ErrorReply) -> bool:
    """Whether an error reply means the server is not the master any more:
    READONLY (a replica now), NOREPLICAS, or a blocking read ended by a role
    change (``UNBLOCKED force unblock ... (master -> replica?)``)."""
    code = reply.code
    if code in ("READONLY", "NOREPLICAS", "MASTERDOWN"):
        return True
    return code == "UNBLOCKED" and "master" in reply.message.lower()


def any_points_elsewhere(raw: Any) -> bool:
    """:func:`points_elsewhere` of a raw reply (a command's, or a batch's)."""
    if type(raw) is ErrorReply:
        return points_elsewhere(raw)
    if isinstance(raw, Sequence) and not isinstance(raw, bytes | str):
        return any(type(r) is ErrorReply and points_elsewhere(r) for r in raw)
    return False
