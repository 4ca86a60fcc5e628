"""How uvicorn runs a Sluice app: the same options for `sluice serve` and for the tests' in-process servers."""

from __future__ import annotations

from typing import Any

from sluice.config import Settings
from sluice.server.protocol import ConnectionLimits, guarded_protocol

GRACEFUL_SHUTDOWN_SECONDS = 30  # in-flight requests and streams get this long after SIGTERM


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    server = settings.server
    return {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": guarded_protocol(
            ConnectionLimits(
                server.header_timeout_seconds,
                server.max_connections,
                server.reserved_connections,
                server.max_connections_per_client,
                tuple(server.trusted_proxies),
                server.max_header_bytes,
                server.max_header_count,
            )
        ),
        "lifespan": "on",
        "access_log": False,
        "log_level": settings.logging.level,
        # uvicorn's records go through Sluice's own handler (configure_logging), not uvicorn's formatters.
        "log_config": None,
        "timeout_keep_alive": server.keep_alive_seconds,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "server_header": False,
        # X-Forwarded-For is Sluice's to judge (server.trusted_proxies), never uvicorn's: by default uvicorn
        # would believe it from any local peer.
        "proxy_headers": False,
    }
