"""Where and how to connect, read once from the settings.

The URL is parsed by redis-py's rules (the one thing redis-py does for us:
``redis://``, ``rediss://`` and ``unix://``, credentials, the db, and TLS
options in the query string). TLS uses the standard library's
``ssl.SSLContext``: certificates are verified against the system's CAs or
``ssl_ca_certs``, host names are checked, and only ``ssl_verify=False``
(``REDIS_SSL_VERIFY=false``, or ``ssl_cert_reqs=none`` in the URL) turns
that off.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from .._core.commands import Auth, ClientSetName, Command, Hello, Select
from ..config import Settings
from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Address:
    """One server to connect to, and what to say once connected."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None
    tls: ssl.SSLContext | None = None
    tls_hostname: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    protocol: int = 2
    client_name: str | None = None
    target: str = ""
    """How the server is named in logs and errors (no password)."""

    def handshake(self) -> tuple[Command[Any], ...]:
        """What a new connection sends before anything else, in one round trip."""
        commands: list[Command[Any]] = []
        if self.protocol == 3:
            commands.append(Hello(3, self.username, self.password))
        elif self.password is not None:
            commands.append(Auth(self.password, self.username))
        if self.db:
            commands.append(Select(self.db))
        if self.client_name:
            commands.append(ClientSetName(self.client_name))
        return tuple(commands)


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "no", "off", "none")


def tls_context(settings: Settings, options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context for ``settings`` (URL query options first, then the fields).

    Raises:
        ConfigError: a CA file, certificate or key cannot be loaded.
    """
    ca = options.get("ssl_ca_certs") or settings.ssl_ca_certs
    certfile = options.get("ssl_certfile") or settings.ssl_certfile
    keyfile = options.get("ssl_keyfile") or settings.ssl_keyfile
    verify = settings.ssl_verify
    reqs = options.get("ssl_cert_reqs")
    if reqs is not None:
        verify = str(reqs).lower() not in ("none", "cert_none")
    check_hostname = _flag(options.get("ssl_check_hostname"))
    try:
        context = ssl.create_default_context(cafile=ca)
        if certfile:
            context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files given in the settings: {exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif check_hostname is False:
        context.check_hostname = False
    return context


def address(settings: Settings) -> Address:
    """The server ``settings`` point at."""
    options = settings.url_options()
    tls = None
    if settings.effective_url.lower().startswith("rediss://"):
        tls = tls_context(settings, options)
    host = options.get("host") or "localhost"
    return Address(
        host=host,
        port=int(options.get("port") or 6379),
        path=options.get("path"),
        tls=tls,
        tls_hostname=host if tls is not None else None,
        username=options.get("username"),
        password=options.get("password") or settings.password,
        db=int(options.get("db") or 0),
        protocol=int(options.get("protocol") or settings.protocol),
        client_name=settings.client_name,
        target=settings.redacted_url,
    )
