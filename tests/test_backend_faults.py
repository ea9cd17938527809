"""A backend that is down, hung or dies between calls: what the caller, the logs, the
stats and the proxy see. Real servers (own ones, killed and restarted) and loopback
sockets that refuse, close or never answer; no mocks. Time bounds are generous upper
bounds (a 0.5 s timeout must return within seconds, not hang), never exact timings.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from semcache import Cache
from semcache_testing.servers import RedisStackServer

from .proxy_helpers import ask

SLACK_S = 10.0  # a 0.5 s timeout (one retry) must answer well within this


def q(text: str) -> dict:
    return {"model": "m", "messages": ask(text)}


def _fault_lines(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "semcache" and word in r.getMessage()]


@pytest.fixture
def own_redis():
    server = RedisStackServer().start()
    yield server
    server.stop()


def _until_hit(cache: Cache, request: dict, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hit = cache.lookup(**request)
        if hit is not None:
            return hit
        time.sleep(0.1)
    return None


# ---------------------------------------------------------------- fault logging
def test_recovery_is_logged_and_a_second_outage_is_logged_again(own_redis, caplog):
    """Once per burst means once per *outage*: after the backend came back (and that was
    logged), the next outage is news and must be logged, even within the quiet period."""
    cache = Cache(type="redis", redis_url=own_redis.url, socket_timeout=0.5,
                  socket_connect_timeout=0.5)
    key = cache.add_cache({"kept": True}, **q("q"))
    with caplog.at_level(logging.WARNING, logger="semcache"):
        own_redis.kill()
        assert cache.lookup(**q("q")) is None
        assert asyncio.run(cache.alookup(**q("q"))) is None
        assert len(_fault_lines(caplog, "failed")) == 1  # one outage, one line
        own_redis.start()
        hit = _until_hit(cache, q("q"))
        assert hit is not None and hit.key == key  # nothing stored was lost
        recovered = _fault_lines(caplog, "recovered")
        assert len(recovered) == 1 and "store (redis)" in recovered[0]
        own_redis.kill()
        assert asyncio.run(cache.alookup(**q("q"))) is None
        failed = _fault_lines(caplog, "failed")
        assert len(failed) == 2 and all("store (redis)" in m for m in failed)
    assert cache.stats()["errors"]["store"] == 3
    cache.close()
