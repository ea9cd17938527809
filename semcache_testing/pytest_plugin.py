"""Session-scoped fixtures that start the real servers (each at most once per session).

Register with ``pytest_plugins = ["semcache_testing.pytest_plugin"]`` in a conftest.

==============================  =====================================================
fixture                         value
==============================  =====================================================
``redis_stack_server``          ``RedisStackServer`` (kill()/start() for fault tests)
``redis_stack_url``             ``"redis://127.0.0.1:PORT"`` (RediSearch + RedisJSON)
``redis_cluster_server``        ``RedisClusterServer`` (3 masters)
``redis_cluster_nodes``         ``[{"host": "127.0.0.1", "port": P}, ...]`` for
                                ``redis_startup_nodes``
``s3_server`` / ``s3_endpoint`` moto; ``"http://127.0.0.1:PORT"`` (path-style, any keys)
``gcs_server`` /                fake-gcs-server; ``"http://127.0.0.1:PORT"`` for
``gcs_endpoint``                ``gcs_endpoint_url`` (anonymous credentials)
``azurite_server`` /            Azurite blob service; its full connection string for
``azurite_connection_string``   ``azure_connection_string``
==============================  =====================================================

The URL stays valid across ``server.kill(); server.start()`` (same port, same data).
A server that cannot start FAILS the tests that need it, with its log tail: a missing
binary is a setup bug to fix (``bash scripts/services.sh install``), never a skip.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from .servers import (
    AzuriteServer,
    GCSServer,
    RedisClusterServer,
    RedisStackServer,
    S3Server,
    Server,
    ServerError,
)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # A SIGTERM (CI time limit, `timeout`) would otherwise end pytest without running
    # atexit, leaving the servers it started running. Treat it as Ctrl-C: pytest stops
    # the session and tears the session fixtures (and so the servers) down.
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _terminate)


def start_or_fail(server: Server) -> Server:
    """Start ``server``; on failure fail the test loudly with the server's log tail."""
    try:
        server.start()
    except ServerError as exc:
        server.cleanup()
        pytest.fail(f"could not start the {server.kind} test server:\n{exc}", pytrace=False)
    return server


def _serve(server: Server) -> Iterator[Any]:
    start_or_fail(server)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_stack_server() -> Iterator[RedisStackServer]:
    yield from _serve(RedisStackServer())


@pytest.fixture(scope="session")
def redis_stack_url(redis_stack_server: RedisStackServer) -> str:
    return redis_stack_server.url


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[RedisClusterServer]:
    yield from _serve(RedisClusterServer())


@pytest.fixture(scope="session")
def redis_cluster_nodes(redis_cluster_server: RedisClusterServer) -> list[dict[str, Any]]:
    return redis_cluster_server.startup_nodes


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    yield from _serve(S3Server())


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> str:
    return s3_server.url


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GCSServer]:
    yield from _serve(GCSServer())


@pytest.fixture(scope="session")
def gcs_endpoint(gcs_server: GCSServer) -> str:
    return gcs_server.url


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    yield from _serve(AzuriteServer())


@pytest.fixture(scope="session")
def azurite_connection_string(azurite_server: AzuriteServer) -> str:
    return azurite_server.connection_string
