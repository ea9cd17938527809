"""A backend that is down, hung or dies between calls: what the caller, the logs, the
stats and the proxy see. Real servers (own ones, killed and restarted) and loopback
sockets that refuse, close or never answer; no mocks. Time bounds are generous upper
bounds (a 0.5 s timeout must return within seconds, not hang), never exact timings.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from semcache import BackendError, Cache
from semcache_testing.fake_openai import FakeOpenAI
from semcache_testing.servers import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    HungServer,
    RedisStackServer,
    free_port,
)

from .proxy_helpers import MASTER, Proxies, ask, master, openai_client
from .writers_support import Hashing

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


def _params(kind: str, port: int) -> dict:
    url = f"http://127.0.0.1:{port}"
    redis = {"host": "127.0.0.1", "port": port, "socket_timeout": 0.5,
             "socket_connect_timeout": 0.5}
    return {
        "redis": {"type": "redis", **redis},
        "redis-cluster": {"type": "redis", "socket_timeout": 0.5,
                          "socket_connect_timeout": 0.5,
                          "redis_startup_nodes": [{"host": "127.0.0.1", "port": port}]},
        "redis-semantic": {"type": "redis-semantic", "embedder": Hashing(), **redis},
        "qdrant-server": {"type": "qdrant-semantic", "qdrant_api_base": url,
                          "qdrant_timeout": 0.5, "embedder": Hashing()},
        "s3": {"type": "s3", "s3_bucket_name": "b", "s3_endpoint_url": url,
               "s3_region_name": "us-east-1", "s3_aws_access_key_id": "t",
               "s3_aws_secret_access_key": "t", "s3_timeout": 0.5},
        "gcs": {"type": "gcs", "gcs_bucket_name": "b", "gcs_endpoint_url": url,
                "gcs_timeout": 0.5},
        "azure": {"type": "azure_blob", "azure_blob_container": "b", "azure_timeout": 0.5,
                  "azure_connection_string":
                      f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                      f"AccountKey={AZURITE_KEY};BlobEndpoint={url}/{AZURITE_ACCOUNT};"},
    }[kind]


KINDS = ["redis", "redis-cluster", "redis-semantic", "qdrant-server", "s3", "gcs", "azure"]


# ---------------------------------------------------------------- timeouts on every path
@pytest.mark.parametrize("kind", KINDS)
def test_a_hung_backend_is_cut_off_on_every_path(kind):
    """A server that accepts and never answers: lookups and adds, sync and async, fail
    open (a counted miss, a skipped write) and delete/flush raise a typed error, each
    within the configured 0.5 s timeout plus slack (the existing test covers one sync
    lookup on three backends)."""
    with HungServer() as hung:
        cache = Cache(**_params(kind, hung.port))

        def bounded(fn):
            t = time.monotonic()
            out = fn()
            assert time.monotonic() - t < SLACK_S
            return out

        hit, meta = bounded(lambda: cache.lookup_with_metadata(**q("q")))
        assert hit is None and "Timeout" in meta["errors"][0]
        assert bounded(lambda: cache.add_cache({"a": 1}, **q("q"))) is None
        hit, meta = bounded(lambda: asyncio.run(cache.alookup_with_metadata(**q("q"))))
        assert hit is None and meta["errors"]
        assert bounded(lambda: asyncio.run(cache.async_add_cache({"a": 1}, **q("q")))) is None
        for op in (lambda: cache.delete([f"{cache.namespace}:k"]),
                   lambda: asyncio.run(cache.aflush())):
            with pytest.raises(BackendError):
                bounded(op)
        s = cache.stats()
        assert s["misses"] == 2 and s["stores"] == 0 and s["errors"]["store"] == 4
        assert hung.accepted >= 1  # it was this server that hung, not a refused port


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


# ---------------------------------------------------------------- the proxy
@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


@pytest.fixture
def proxies(fake):
    fake.reset()
    p = Proxies(fake.base_url)
    yield p
    p.stop()


@pytest.mark.parametrize("server", ["refused", "hung"])
def test_proxy_management_on_a_down_store_is_a_503_not_a_500(proxies, fake, server):
    """The chat endpoint fails open; /cache/delete and /cache/flush cannot (the caller
    must know nothing was removed) and answer a 503 naming the backend, in bounded time."""
    hung = HungServer() if server == "hung" else None
    port = hung.port if hung is not None else free_port()
    try:
        cache = Cache(type="redis", host="127.0.0.1", port=port, socket_timeout=0.5,
                      socket_connect_timeout=0.5)
        proxy = proxies.start(cache=cache)
        c = openai_client(proxy.base_url, MASTER)
        t = time.monotonic()
        raw = c.chat.completions.with_raw_response.create(model="chat", messages=ask("hi"))
        assert raw.headers["x-semcache-stage"] == "miss"
        assert raw.parse().choices[0].message.content.startswith("echo: hi")
        for path, body in (("/cache/delete", {"keys": ["default:abc"]}),
                           ("/cache/flush", {}), ("/cache/flushall", {}),
                           # a down store is not the client's fault: not a 400 either
                           ("/cache/ttl", {"keys": ["default:abc"], "ttl": 60})):
            r = httpx.post(proxy.url + path, json=body, headers=master(), timeout=60)
            assert r.status_code == 503, (path, r.status_code, r.text)
            err = r.json()["error"]
            assert "redis" in err["message"] and err["code"] == "backend_unavailable"
        assert time.monotonic() - t < 4 * SLACK_S
    finally:
        if hung is not None:
            hung.close()
