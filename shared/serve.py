"""The `python -m services.<name>` entry point shared by the HTTP services."""

from __future__ import annotations

import argparse

import uvicorn

from shared.http_protocol import GuardedHttpToolsProtocol
from shared.logs import configure_logging
from shared.settings import get_settings


def serve(service: str, factory: str, default_port: int) -> None:
    """Parse --host/--port (defaults from AUTOMATEOS_HOST/PORT) and run uvicorn on the factory."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port or default_port)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    configure_logging(service, args.log_level.upper())
    trusted = [item.strip() for item in settings.trusted_proxies.split(",") if item.strip()]
    uvicorn.run(
        factory,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        # Accept connections until the load balancer stops sending, then finish in-flight ones.
        timeout_graceful_shutdown=20,
        server_header=False,
        # Head size/count limits and read deadlines uvicorn lacks (shared/http_protocol.py).
        http=GuardedHttpToolsProtocol,
        # X-Forwarded-For/-Proto only from the configured proxies (uvicorn would otherwise trust
        # 127.0.0.1): the client address is what login throttling counts by.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
    )
