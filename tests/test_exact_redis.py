"""RedisStore against a real Redis Stack server (the session's ``redis_stack_server``)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from semcache import BackendTimeout, BackendUnavailable, Cache, ConfigError
from semcache.exact.redis import RedisStore, escape_glob
from semcache_testing.servers import HungServer, free_port
from tests.contracts.exact_store import (
    RemoteExactStoreContract,
    assert_reads_the_servers_expiry,
    wait_until,
)


class TestRedisStore(RemoteExactStoreContract):
    @pytest.fixture
    def store(self, redis_stack_url: str):
        s = RedisStore.from_params(redis_url=redis_stack_url)
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self):
        s = RedisStore(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5,
                       socket_timeout=0.5)
        yield s
        s.close()


@pytest.fixture
def raw(redis_stack_url: str):
    client = redis.Redis.from_url(redis_stack_url)
    yield client
    client.close()


@pytest.fixture
def store(redis_stack_url: str):
    s = RedisStore.from_params(redis_url=redis_stack_url)
    yield s
    s.close()


def test_ttl_none_never_expires_and_ttl_is_set(store: RedisStore, raw: redis.Redis) -> None:
    store.set("tn:forever", b"v", ttl=None)
    store.set("tn:short", b"v", ttl=30)
    assert raw.ttl("tn:forever") == -1
    assert 0 < raw.pttl("tn:short") <= 30_000
    store.set("tn:gone", b"v", ttl=0)
    assert store.get("tn:gone") is None
    store.clear("tn")


def test_clear_escapes_glob_characters(store: RedisStore, raw: redis.Redis) -> None:
    assert escape_glob("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    store.set("g*:1", b"mine")
    store.set("gX:1", b"other")  # would match an unescaped "g*:*"
    store.set("g[x]:1", b"mine2")
    store.set("gx:1", b"other2")  # would match an unescaped "g[x]:*"
    assert store.clear("g*") == 1
    assert store.clear("g[x]") == 1
    assert store.get("gX:1") == b"other" and store.get("gx:1") == b"other2"
    raw.delete("gX:1", "gx:1")


def test_clear_touches_only_its_prefix(store: RedisStore, raw: redis.Redis) -> None:
    raw.set("pfx", b"no colon")          # the namespace itself, without ':'
    raw.set("pfx2:1", b"longer ns")
    raw.set("other:pfx:1", b"contains the ns later")
    store.set("pfx:1", b"mine")
    assert store.clear("pfx") == 1
    assert raw.get("pfx") == b"no colon"
    assert raw.get("pfx2:1") == b"longer ns"
    assert raw.get("other:pfx:1") == b"contains the ns later"
    raw.delete("pfx", "pfx2:1", "other:pfx:1")


def test_clear_in_batches(store: RedisStore, raw: redis.Redis) -> None:
    pipe = raw.pipeline(transaction=False)
    for i in range(1234):
        pipe.set(f"many:{i}", b"x")
    pipe.execute()
    assert store.clear("many") == 1234
    assert not list(raw.scan_iter(match="many:*"))


def test_async_clients_per_event_loop(store: RedisStore) -> None:
    # asyncio.run twice: each loop gets its own client, closed with its loop
    for i in range(2):
        asyncio.run(store.aset(f"loop:{i}", b"v", 60))
        assert asyncio.run(store.aget(f"loop:{i}")) == b"v"
    assert asyncio.run(store.aclear("loop")) == 2


def test_hung_server_times_out() -> None:
    with HungServer() as hung:
        s = RedisStore(host="127.0.0.1", port=hung.port, socket_timeout=0.3,
                       socket_connect_timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout):
            s.get("x:1")
        # one retry: at most two read timeouts plus backoff, never a hang
        assert time.monotonic() - t0 < 2.0
        t0 = time.monotonic()
        with pytest.raises(BackendTimeout):
            asyncio.run(s.aget("x:1"))
        assert time.monotonic() - t0 < 2.0
        s.close()


def test_server_restart_is_picked_up(redis_stack_server, store: RedisStore) -> None:
    store.set("rs:1", b"v")
    assert store.ping()
    redis_stack_server.kill()
    try:
        with pytest.raises(BackendUnavailable):
            store.get("rs:1")
    finally:
        redis_stack_server.start()
    # the same store object reconnects; appendfsync=everysec may lose the last second
    def answers() -> bool:
        try:
            return store.ping()
        except BackendUnavailable:
            return False

    assert wait_until(answers, timeout=10)
    store.set("rs:2", b"w")
    assert store.get("rs:2") == b"w"
    store.clear("rs")


@pytest.mark.parametrize(("params", "bad"), [
    ({"host": "h", "bogus": 1}, "bogus"),
    ({"host": "h", "port": "sixty"}, "port"),
    ({"host": "h", "port": 70000}, "port"),
    ({"redis_url": "http://x"}, "redis_url"),
    ({"redis_startup_nodes": [{"host": "h"}]}, "redis_startup_nodes"),
    ({"redis_startup_nodes": "h:1"}, "redis_startup_nodes"),
    ({"host": "h", "ttl": -5}, "ttl"),
    ({"host": "h", "socket_timeout": "soon"}, "socket_timeout"),
    # numbers a float cannot hold were a bare OverflowError, not a ConfigError
    ({"host": "h", "socket_timeout": 10**400}, "socket_timeout"),
    ({"host": "h", "socket_timeout": float("inf")}, "socket_timeout"),
    ({"host": "h", "ttl": "1e400"}, "ttl"),
    ({"host": "h", "port": float("inf")}, "port"),
    ({}, "host"),
])
def test_from_params_names_the_bad_parameter(monkeypatch, params, bad) -> None:
    for var in ("REDIS_HOST", "REDIS_PORT", "REDIS_URL", "REDIS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as info:
        RedisStore.from_params(**params)
    assert info.value.parameter == bad
    assert bad in str(info.value)


def test_cache_with_an_overflowing_number_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Cache(type="redis", host="h", socket_timeout=10**400)
    assert info.value.parameter == "socket_timeout"


def test_from_params_env_fallback_and_repr(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    s = RedisStore.from_params(ttl=60)
    assert repr(s) == "RedisStore(server='cache.internal:6380')" and s.default_ttl == 60
    s = RedisStore.from_params(redis_url="redis://user:secret@h:1/0")
    assert "secret" not in repr(s)


def test_get_with_ttl_reads_the_servers_expiry(redis_stack_url) -> None:
    assert_reads_the_servers_expiry(RedisStore(url=redis_stack_url), "gwt:k")
