"""`tailor serve [--host H] [--port N]`: run the HTTP API until SIGTERM / SIGINT.

One process, one event loop (uvloop), one Redis pool; uvicorn parses HTTP with httptools.
Before listening it compares its id mode with the one the worker recorded, as `tailor
inspect` does: a pseudonymous deployment served with raw ids (or another key) would answer
every user with a fallback, so a mismatch stops it (exit 2). An unreachable Redis does not:
the API starts, and ``/readyz`` says not ready until Redis answers.
"""

from __future__ import annotations

import logging
import socket

import redis
import uvicorn

from tailor.flows.forget import check_id_mode
from tailor.flows.serve.app import build_app
from tailor.flows.settings import ConfigError, Settings

__all__ = ["address", "check_ids", "listen", "serve", "server"]

log = logging.getLogger("tailor")


def check_ids(config: Settings, secret: bytes | None) -> None:
    """Raise `ConfigError` when this process would name users otherwise than the worker."""
    client = redis.Redis.from_url(config.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        check_id_mode(client, config.prefix, secret, command="serve")
    except (redis.ConnectionError, redis.TimeoutError):
        log.warning("Redis cannot be reached yet: /readyz says not ready until it answers")
    finally:
        client.close()


def address(config: Settings, host: str | None, port: int | None) -> tuple[str, int]:
    """Where to listen: the command line's host and port, else `serve.host` and `serve.port`."""
    return (
        config.serve.host if host is None else host,
        config.serve.port if port is None else port,
    )


def server(config: Settings, host: str, port: int) -> uvicorn.Server:
    """The uvicorn server of the app, not started."""
    secret = config.pseudonym_secret()
    check_ids(config, secret)
    settings = uvicorn.Config(
        build_app(config, secret),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,  # client addresses are never used
    )
    return uvicorn.Server(settings)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is a configuration error (exit
    2, naming the setting) rather than uvicorn's own exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"serve.port: cannot listen on {host}:{port} ({exc.strerror})") from exc
    return sock


def serve(config: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve until a signal; logs where."""
    host, port = address(config, host, port)
    sock = listen(host, port)
    log.info("tailor serve on http://%s:%d (prefix %r)", host, sock.getsockname()[1], config.prefix)
    server(config, host, port).run(sockets=[sock])
