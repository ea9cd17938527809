"""Extra contract for object-store backends (S3, GCS, Azure Blob): TTL kept in object
metadata and honoured on read, prefix scoping, the missing-bucket error.

Subclass next to ``RemoteExactStoreContract`` and provide:

    make_store(**overrides) -> store   # overrides: prefix=, clock=, container=, create=
    missing_container -> str           # a bucket/container name that does not exist
"""

from __future__ import annotations

import uuid

import pytest

from semcache import BackendError, Cache, IntegrityError
from semcache.exact._blob import EXPIRES_META, BlobStore


class BlobStoreContract:
    @pytest.fixture
    def prefix(self) -> str:
        return "p" + uuid.uuid4().hex[:8]

    def test_an_object_past_max_read_bytes_is_refused_unread(self, make_store,
                                                              prefix) -> None:
        """Its size is known before its body: a value another writer made gigabytes
        long was downloaded whole before decoding refused it."""
        s = make_store(prefix=prefix)
        s.set("n:big", b"x" * 5000)
        s.max_read_bytes = 1000
        with pytest.raises(IntegrityError, match="5000 bytes.*not downloaded"):
            s.get("n:big")
        s.max_read_bytes = 5000
        assert s.get("n:big") == b"x" * 5000
        assert s.get("n:absent") is None

    def test_a_cache_reads_no_more_than_its_max_value_bytes(self, make_store,
                                                             prefix) -> None:
        s = make_store(prefix=prefix)
        c = Cache(store=s, max_value_bytes=2000)
        assert s.max_read_bytes == 2000
        req = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        s.set(c.get_cache_key(**req), b"x" * 3000)  # another writer's oversized value
        assert c.get_cache(**req) is None
        assert c.stats()["integrity_rejections"] == 1

    def test_object_per_entry_with_expiry_metadata(self, make_store, prefix) -> None:
        clock = [1_000_000.0]
        s: BlobStore = make_store(prefix=prefix, clock=lambda: clock[0])
        s.set("ns:k1", b"body bytes", ttl=30)
        s.set("ns:k2", b"forever")
        body, meta, _ = s._read(prefix + "/ns:k1")
        assert body == b"body bytes"
        assert float(meta[EXPIRES_META]) == pytest.approx(1_000_030.0)
        assert EXPIRES_META not in s._read(prefix + "/ns:k2")[1]
        assert sorted(s._names(prefix + "/")) == [prefix + "/ns:k1", prefix + "/ns:k2"]
        s.clear("ns")

    def test_expired_entry_is_a_miss_and_deleted_on_read(self, make_store, prefix) -> None:
        clock = [1_000_000.0]
        s: BlobStore = make_store(prefix=prefix, clock=lambda: clock[0])
        s.set("ns:old", b"v", ttl=10)
        s.set("ns:keep", b"v", ttl=100)
        clock[0] += 11
        assert s.get("ns:old") is None
        assert s.expired_removed == 1
        assert list(s._names(prefix + "/")) == [prefix + "/ns:keep"]  # object gone
        assert s.get("ns:keep") == b"v"
        s.clear("ns")

    def test_get_with_ttl_reports_what_is_left(self, make_store, prefix) -> None:
        # what a tier in front of this store keeps a copy for (TieredStore's fill)
        clock = [1_000_000.0]
        s: BlobStore = make_store(prefix=prefix, clock=lambda: clock[0])
        s.set("ns:t", b"v", ttl=10)
        s.set("ns:forever", b"f")
        clock[0] += 4
        assert s.get_with_ttl("ns:t") == (b"v", pytest.approx(6, abs=0.01))
        assert s.get_with_ttl("ns:forever") == (b"f", None)
        assert s.get_with_ttl("ns:absent") == (None, None)
        clock[0] += 7
        assert s.get_with_ttl("ns:t") == (None, None)
        s.clear("ns")

    @pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "Infinity", "-nan", "", "soon"])
    def test_malformed_expiry_is_expired(self, make_store, prefix, bad) -> None:
        # another writer's expiry metadata: float() reads "nan" and "inf" without an
        # error, and no clock is ever past them: served forever, never purged
        clock = [1_000_000.0]
        s: BlobStore = make_store(prefix=prefix, clock=lambda: clock[0])
        s._write(s._object_name("ns:bad"), b"v", {EXPIRES_META: bad})
        s.set("ns:good", b"v", ttl=100)
        assert s.get("ns:bad") is None
        assert s.get("ns:good") == b"v"
        s._write(s._object_name("ns:bad"), b"v", {EXPIRES_META: bad})
        assert s.purge_expired("ns") == 1
        assert list(s._names(prefix + "/")) == [prefix + "/ns:good"]
        s.clear("ns")

    def test_purge_expired(self, make_store, prefix) -> None:
        clock = [1_000_000.0]
        s: BlobStore = make_store(prefix=prefix, clock=lambda: clock[0])
        for i in range(3):
            s.set(f"a:{i}", b"v", ttl=5)
        s.set("b:0", b"v", ttl=5)
        s.set("a:forever", b"v")
        clock[0] += 6
        assert s.purge_expired("a") == 3
        assert s.purge_expired() == 1
        assert list(s._names(prefix + "/")) == [prefix + "/a:forever"]
        s.clear("a")

    def test_clear_never_touches_another_prefix(self, make_store, prefix) -> None:
        mine = make_store(prefix=prefix + "/one")
        theirs = make_store(prefix=prefix + "/two")
        root = make_store(prefix=prefix)
        for s in (mine, theirs, root):
            s.set("ns:1", b"x")
            s.set("ns2:1", b"x")
        assert mine.clear("ns") == 1
        assert mine.get("ns2:1") == b"x"
        assert theirs.get("ns:1") == b"x" and root.get("ns:1") == b"x"
        # the parent prefix's clear lists "<prefix>/ns:", not the children's folders
        assert root.clear("ns") == 1
        assert theirs.get("ns:1") == b"x"
        for s in (mine, theirs, root):
            s.clear("ns")
            s.clear("ns2")

    def test_keys_with_slashes_and_percent_stay_flat(self, make_store, prefix) -> None:
        s: BlobStore = make_store(prefix=prefix)
        s.set("ns:a/b", b"1")
        s.set("ns:a%2Fb", b"2")
        assert s.get("ns:a/b") == b"1" and s.get("ns:a%2Fb") == b"2"
        assert all("/" not in n[len(prefix) + 1:] for n in s._names(prefix + "/"))
        assert s.clear("ns") == 2

    def test_missing_container_is_named(self, make_store, missing_container) -> None:
        s = make_store(container=missing_container)
        with pytest.raises(BackendError, match=missing_container):
            s.get("ns:1")
        with pytest.raises(BackendError, match=missing_container):
            s.ping()
        created = make_store(container=missing_container, create=True)
        created.set("ns:1", b"v")
        assert created.get("ns:1") == b"v"
        created.clear("ns")
