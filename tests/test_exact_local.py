"""The in-process exact stores: the shared contract plus what is specific to each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from semcache import ConfigError
from semcache.exact.disk import DiskStore
from semcache.exact.memory import MemoryStore
from tests.contracts.exact_store import ExactStoreContract


class TestMemoryStore(ExactStoreContract):
    @pytest.fixture
    def store(self):
        return MemoryStore(max_size_in_memory=10_000, max_size_per_item=2048)


class TestDiskStore(ExactStoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        s = DiskStore(tmp_path)
        yield s
        s.close()


def test_memory_lru_evicts_least_recently_used():
    s = MemoryStore(max_size_in_memory=3)
    for k in "abc":
        s.set(f"n:{k}", k.encode())
    assert s.get("n:a") == b"a"  # a is now the most recent
    s.set("n:d", b"d")
    assert s.get("n:b") is None
    assert [s.get(f"n:{k}") for k in "acd"] == [b"a", b"c", b"d"]
    assert len(s) == 3


def test_memory_max_size_per_item_is_enforced():
    s = MemoryStore(max_size_per_item=1)  # 1 KB
    s.set("n:small", b"x" * 1024)
    s.set("n:big", b"x" * 1025)
    assert s.get("n:small") is not None
    assert s.get("n:big") is None
    assert s.rejected_oversize == 1
    s.set("n:small", b"x" * 2000)  # an oversized overwrite leaves no stale value
    assert s.get("n:small") is None


def test_memory_ttl_with_clock(clock):
    s = MemoryStore(clock=clock)
    s.set("n:a", b"1", ttl=10)
    clock.advance(9.9)
    assert s.get("n:a") == b"1"
    clock.advance(0.2)
    assert s.get("n:a") is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10"])
def test_memory_rejects_bad_sizes(bad):
    with pytest.raises(ConfigError, match="max_size_in_memory"):
        MemoryStore(max_size_in_memory=bad)


def test_disk_survives_a_process_restart(tmp_path):
    code = ("import sys; from semcache.exact.disk import DiskStore; "
            "s = DiskStore(sys.argv[1]); s.set('n:k', b'persisted', ttl=3600); s.close()")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    s = DiskStore(tmp_path)
    assert s.get("n:k") == b"persisted"
    s.close()


def test_disk_never_pickles(tmp_path):
    s = DiskStore(tmp_path)
    with pytest.raises(TypeError, match="bytes"):
        s._cache.set("n:x", {"a": 1})  # the Disk refuses a non-bytes value outright
    s.set("n:k", b'{"v": 1}')
    s.close()
    # every stored value is raw bytes in SQLite (mode 1 = raw), none pickled (mode 4)
    import sqlite3

    con = sqlite3.connect(tmp_path / "exact" / "cache.db")
    modes = {m for (m,) in con.execute("SELECT mode FROM Cache")}
    con.close()
    assert modes == {1}


@pytest.mark.parametrize("foreign", ["a str", 42, 1.5, {"pickled": True}],
                         ids=["text", "int", "float", "pickle"])
def test_disk_value_another_writer_stored_is_an_integrity_miss(tmp_path, foreign):
    # another process (plain diskcache, an older version) shares the directory and
    # stores a non-bytes value under our key: diskcache hands back a str or an int
    import diskcache

    from semcache import Cache, IntegrityError

    cache = Cache(type="disk", disk_cache_dir=str(tmp_path))
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    key = cache.get_cache_key(**req)
    other = diskcache.Cache(str(tmp_path / "exact"))
    other.set(key, foreign)
    other.close()
    with pytest.raises(IntegrityError, match=key):
        cache.store.get(key)
    assert cache.get_cache(**req) is None  # a counted integrity miss, never a crash
    assert cache.stats()["integrity_rejections"] == 1
    assert cache.stats()["errors_total"] == 0
    cache.add_cache({"choices": []}, **req)  # and our own write replaces it
    assert isinstance(cache.store.get(key), bytes)


@pytest.mark.parametrize("where", ["/dev/zero", "../../outside.val", "ab/cd/x.val",
                                   "a link", "a directory"])
def test_disk_value_file_another_program_renamed_is_an_integrity_miss(tmp_path, where):
    """A large value lives in a file the row names, which diskcache joins to the folder
    as given: a row edited to name /dev/zero was read until memory ran out."""
    import os
    import sqlite3

    from semcache import Cache

    cache = Cache(type="disk", disk_cache_dir=str(tmp_path))
    req = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    cache.add_cache({"choices": [], "big": "x" * 100_000}, **req)  # a file, not a row
    assert cache.get_cache(**req) is not None
    db = tmp_path / "exact" / "cache.db"
    con = sqlite3.connect(db)
    (name,) = con.execute("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchone()
    if where in ("a link", "a directory"):  # the name it had, now not a regular file
        real = tmp_path / "exact" / name
        real.unlink()
        if where == "a link":
            os.symlink("/dev/zero", real)
        else:
            real.mkdir()
    else:  # a good record where it points: served from outside the folder before
        good = (tmp_path / "exact" / name).read_bytes()
        (tmp_path / "outside.val").write_bytes(good)
        (tmp_path / "exact" / "ab" / "cd").mkdir(parents=True, exist_ok=True)
        (tmp_path / "exact" / "ab" / "cd" / "x.val").write_bytes(good)
        con.execute("UPDATE Cache SET filename = ? WHERE filename = ?", (where, name))
        con.commit()
    con.close()
    assert cache.get_cache(**req) is None  # a counted integrity miss, never a crash
    assert cache.stats()["integrity_rejections"] == 1
    assert cache.stats()["errors_total"] == 0


def test_disk_unopenable_database_is_a_config_error(tmp_path):
    # a file that is not an SQLite database where ours should be (another program's,
    # a torn copy): sqlite3's own DatabaseError escaped the constructor
    (tmp_path / "exact").mkdir()
    (tmp_path / "exact" / "cache.db").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="disk_cache_dir") as info:
        DiskStore(tmp_path)
    assert info.value.parameter == "disk_cache_dir"


def _damage_schema(tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / "exact" / "cache.db")
    con.execute("DROP TABLE Cache")  # another program (or version) reshaped the file
    con.commit()
    con.close()


def test_disk_sqlite_failure_is_a_backend_error(tmp_path):
    from semcache import BackendError

    s = DiskStore(tmp_path)
    s.set("n:k", b"v")
    _damage_schema(tmp_path)
    for op in (lambda: s.get("n:k"), lambda: s.set("n:k", b"w"),
               lambda: s.delete(["n:k"]), lambda: s.clear("n")):
        with pytest.raises(BackendError, match="disk store"):
            op()
    s.close()


def test_disk_failed_write_leaves_no_value_file(tmp_path):
    # a value of 32 KB or more is a file written before its row: a write that fails
    # after it (disk full, a damaged database) must not leave it behind, or every
    # failure on a full disk leaks space that nothing ever reclaims
    from semcache import BackendError

    s = DiskStore(tmp_path)
    s.set("n:kept", b"k" * 50_000)
    kept = {p for p in (tmp_path / "exact").rglob("*.val")}
    assert len(kept) == 1
    _damage_schema(tmp_path)
    with pytest.raises(BackendError):
        s.set("n:big", b"x" * 50_000)
    assert set((tmp_path / "exact").rglob("*.val")) == kept
    s.close()
