"""Contract every ExactStore backend passes, unchanged.

Use it by subclassing in a backend's test module and providing fixtures:

    class TestRedisStore(ExactStoreContract):
        @pytest.fixture
        def store(self, redis_server): ...          # a live store
        @pytest.fixture
        def dead_store(self): ...                   # same backend, server not running

Stores behind a server subclass ``RemoteExactStoreContract`` instead and also provide
``dead_store`` (same backend, nothing listening), which must raise ``BackendError``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from semcache import BackendError
from semcache.exact.base import ExactStore


def assert_reads_the_servers_expiry(store: ExactStore, key: str) -> None:
    """A store whose server keeps the expiry (Redis, a cluster) reports what is left of
    it, sync and async: what a front tier keeps a copy for, never "unknown"."""
    try:
        store.set(key, b"v", ttl=100)
        value, left = store.get_with_ttl(key)
        assert value == b"v" and left is not None and 99 < left <= 100
        value, left = asyncio.run(store.aget_with_ttl(key))
        assert value == b"v" and left is not None and 99 < left <= 100
    finally:
        store.delete([key])
        store.close()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``: a bounded wait, not a blind sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class ExactStoreContract:
    #: shortest TTL the backend resolves (Redis: 1 s granularity is fine)
    short_ttl = 1.0

    @pytest.fixture
    def ns(self) -> str:
        return "t" + uuid.uuid4().hex[:12]

    def test_missing_key_is_none(self, store: ExactStore, ns: str) -> None:
        assert store.get(f"{ns}:absent") is None

    def test_set_get_roundtrip(self, store: ExactStore, ns: str) -> None:
        store.set(f"{ns}:a", b'{"x": 1}')
        assert store.get(f"{ns}:a") == b'{"x": 1}'

    def test_overwrite_replaces(self, store: ExactStore, ns: str) -> None:
        store.set(f"{ns}:a", b"one")
        store.set(f"{ns}:a", b"two")
        assert store.get(f"{ns}:a") == b"two"

    def test_delete_counts_and_removes(self, store: ExactStore, ns: str) -> None:
        store.set(f"{ns}:a", b"1")
        store.set(f"{ns}:b", b"2")
        assert store.delete([f"{ns}:a", f"{ns}:zzz"]) == 1
        assert store.get(f"{ns}:a") is None
        assert store.get(f"{ns}:b") == b"2"

    def test_ttl_expires(self, store: ExactStore, ns: str) -> None:
        store.set(f"{ns}:short", b"v", ttl=self.short_ttl)
        store.set(f"{ns}:long", b"v", ttl=3600)
        store.set(f"{ns}:forever", b"v", ttl=None)
        assert store.get(f"{ns}:long") == b"v"
        assert wait_until(lambda: store.get(f"{ns}:short") is None, timeout=self.short_ttl + 10)
        assert store.get(f"{ns}:long") == b"v"
        assert store.get(f"{ns}:forever") == b"v"

    def test_overwrite_replaces_ttl(self, store: ExactStore, ns: str) -> None:
        # a rewrite without ttl must not inherit the old expiry (and vice versa)
        store.set(f"{ns}:a", b"1", ttl=self.short_ttl)
        store.set(f"{ns}:a", b"2", ttl=None)
        store.set(f"{ns}:b", b"1", ttl=None)
        store.set(f"{ns}:b", b"2", ttl=self.short_ttl)
        assert wait_until(lambda: store.get(f"{ns}:b") is None, timeout=self.short_ttl + 10)
        assert store.get(f"{ns}:a") == b"2"

    def test_delete_nothing(self, store: ExactStore, ns: str) -> None:
        assert store.delete([]) == 0
        assert store.clear(ns) == 0

    def test_clear_is_scoped_to_namespace(self, store: ExactStore, ns: str) -> None:
        other = ns + "x"  # a namespace that shares ns as a string prefix
        for i in range(5):
            store.set(f"{ns}:{i}", b"mine")
            store.set(f"{other}:{i}", b"theirs")
        assert store.clear(ns) == 5
        assert all(store.get(f"{ns}:{i}") is None for i in range(5))
        assert all(store.get(f"{other}:{i}") == b"theirs" for i in range(5))
        store.clear(other)

    def test_namespaces_isolated(self, store: ExactStore, ns: str) -> None:
        store.set(f"{ns}a:k", b"A")
        store.set(f"{ns}b:k", b"B")
        assert store.get(f"{ns}a:k") == b"A"
        assert store.get(f"{ns}b:k") == b"B"
        store.delete([f"{ns}a:k"])
        assert store.get(f"{ns}b:k") == b"B"

    #: namespaces validate_namespace accepts, each a near miss of the others: a string
    #: prefix, a case change, every punctuation character it allows (a backend that
    #: treats "." "/" "+" "=" "@" specially, or folds case, would merge two of them)
    ODD_NAMESPACES = ("a", "A", "ab", "a.b", "a/b", "a+b", "a=b", "a@b", "a-b", "a_b",
                      ".", "..", "../a", "/", "//a", "a/", "a/.", "a2F")

    def test_odd_namespaces_are_isolated(self, store: ExactStore, ns: str) -> None:
        from semcache._keys import validate_namespace

        names = [ns + n for n in self.ODD_NAMESPACES]
        for n in names:
            validate_namespace(n)
            store.set(f"{n}:k", n.encode())
            store.set(f"{n}:k2", b"2")
        try:
            for n in names:
                assert store.get(f"{n}:k") == n.encode(), n
            for i, n in enumerate(names):
                assert store.clear(n) == 2, n
                assert store.get(f"{n}:k") is None, n
                for m in names[i + 1:]:
                    assert store.get(f"{m}:k") == m.encode(), (n, m)
        finally:
            for n in names:
                store.clear(n)

    #: custom keys (cache_key=) are free text after the namespace: glob and path
    #: characters there must stay inside the entry's own name
    ODD_KEYS = ("*", "?", "[a]", "\\", "..", "../../x", "a/../b", "x*", "%2A", " sp ",
                "tab\tnl\n", "\x00nul", "é", "{tag}|@-:,.<>")

    def test_odd_custom_keys(self, store: ExactStore, ns: str) -> None:
        other = ns + "o"
        store.set(f"{other}:*", b"theirs")
        store.set(f"{other}:x", b"theirs")
        keys = [f"{ns}:{k}" for k in self.ODD_KEYS]
        for k in keys:
            store.set(k, k.encode())
        try:
            for k in keys:
                assert store.get(k) == k.encode(), k
            assert store.delete([f"{ns}:*"]) == 1
            assert store.get(f"{ns}:x*") == f"{ns}:x*".encode()
            assert store.clear(ns) == len(keys) - 1
            assert store.get(f"{other}:*") == b"theirs"
            assert store.get(f"{other}:x") == b"theirs"
        finally:
            store.clear(ns)
            store.clear(other)

    def test_large_value(self, store: ExactStore, ns: str) -> None:
        big = bytes(range(256)) * 3000  # 768 KB, every byte value
        store.set(f"{ns}:big", big)
        assert store.get(f"{ns}:big") == big

    def test_unicode_key_and_value(self, store: ExactStore, ns: str) -> None:
        key = f"{ns}:ключ-鍵-🔑"
        value = "答え — ответ — 🔑".encode()
        store.set(key, value)
        assert store.get(key) == value

    def test_concurrent_writers(self, store: ExactStore, ns: str) -> None:
        errors: list[BaseException] = []

        def writer(t: int) -> None:
            try:
                for i in range(25):
                    store.set(f"{ns}:{t}:{i}", f"{t}-{i}".encode())
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        for t in range(8):
            for i in range(25):
                assert store.get(f"{ns}:{t}:{i}") == f"{t}-{i}".encode()

    def test_async_twins(self, store: ExactStore, ns: str) -> None:
        async def run() -> None:
            await store.aset(f"{ns}:a", b"1", 60)
            assert await store.aget(f"{ns}:a") == b"1"
            results = await asyncio.gather(*(store.aget(f"{ns}:a") for _ in range(8)))
            assert results == [b"1"] * 8
            assert await store.adelete([f"{ns}:a"]) == 1
            await store.aset(f"{ns}:b", b"2")
            assert await store.aclear(ns) == 1
            assert await store.aping()

        asyncio.run(run())

    def test_ping(self, store: ExactStore) -> None:
        assert store.ping() is True

    def test_get_with_ttl(self, store: ExactStore, ns: str) -> None:
        """The value and the seconds it has left; None where there is no expiry (or the
        store cannot tell, which only lets a front tier keep a copy for front_ttl)."""
        store.set(f"{ns}:t", b"v", 100)
        store.set(f"{ns}:f", b"f")
        value, left = store.get_with_ttl(f"{ns}:t")
        assert value == b"v" and (left is None or 0 < left <= 100)
        assert store.get_with_ttl(f"{ns}:f") == (b"f", None)
        assert store.get_with_ttl(f"{ns}:absent") == (None, None)
        assert asyncio.run(store.aget_with_ttl(f"{ns}:f")) == (b"f", None)
        value, left = asyncio.run(store.aget_with_ttl(f"{ns}:t"))
        assert value == b"v" and (left is None or 0 < left <= 100)
        store.clear(ns)


    #: every ttl a store refuses with a ConfigError naming "ttl" (sync and async), never
    #: a raw ValueError, an entry kept forever or one dropped as already expired
    BAD_TTLS = (float("nan"), float("inf"), float("-inf"), True, False, "60", b"1", [1],
                -1, -0.001, 10**400, 1e300)

    def test_bad_ttl_is_refused_and_the_entry_kept(self, store: ExactStore, ns: str) -> None:
        from semcache import ConfigError

        key = f"{ns}:kept"
        store.set(key, b"old", 3600)
        for ttl in self.BAD_TTLS:
            with pytest.raises(ConfigError, match="ttl") as info:
                store.set(key, b"new", ttl)  # type: ignore[arg-type]
            assert info.value.parameter == "ttl"
            with pytest.raises(ConfigError, match="ttl"):
                asyncio.run(store.aset(key, b"new", ttl))  # type: ignore[arg-type]
            assert store.get(key) == b"old", ttl
        store.clear(ns)

    def test_zero_ttl_stores_nothing(self, store: ExactStore, ns: str) -> None:
        """ttl=0 is "expire at once" (LiteLLM's, and what a front tier is given for a
        back entry with nothing left): the old entry goes and nothing is kept."""
        store.set(f"{ns}:a", b"old")
        store.set(f"{ns}:a", b"new", 0)
        assert store.get(f"{ns}:a") is None
        asyncio.run(store.aset(f"{ns}:b", b"new", 0.0))
        assert store.get(f"{ns}:b") is None
        store.set(f"{ns}:c", b"v", 10**6)  # an int, and a long one: fine
        assert store.get(f"{ns}:c") == b"v"
        store.clear(ns)


class RemoteExactStoreContract(ExactStoreContract):
    def test_server_down_raises_backend_error(self, dead_store: ExactStore, ns: str) -> None:
        dead = dead_store
        with pytest.raises(BackendError):
            dead.get(f"{ns}:a")
        with pytest.raises(BackendError):
            dead.set(f"{ns}:a", b"1")
        with pytest.raises(BackendError):
            dead.ping()
