"""TieredStore: a MemoryStore in front of a real Redis (LiteLLM's DualCache)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from semcache import BackendError, ConfigError
from semcache.exact.memory import MemoryStore
from semcache.exact.redis import RedisStore
from semcache.exact.tiered import TieredStore
from semcache_testing.servers import free_port
from tests.contracts.exact_store import RemoteExactStoreContract


class TestTieredStore(RemoteExactStoreContract):
    @pytest.fixture
    def store(self, redis_stack_url):
        s = TieredStore(front=MemoryStore(max_size_in_memory=100),
                        back=RedisStore(url=redis_stack_url))
        yield s
        s.close()

    @pytest.fixture
    def dead_store(self):
        back = RedisStore(host="127.0.0.1", port=free_port(), socket_timeout=0.5,
                          socket_connect_timeout=0.5)
        return TieredStore(front=MemoryStore(), back=back)


class Counting(MemoryStore):
    """A back store that counts reads and can be made to fail writes."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.reads = 0
        self.fail = False

    def get_with_ttl(self, key):
        self.reads += 1
        return super().get_with_ttl(key)

    def set(self, key, value, ttl=None):
        if self.fail:
            raise BackendError("down", backend="counting")
        super().set(key, value, ttl)


def make(front_ttl=60.0):
    clock = [0.0]
    front = MemoryStore(clock=lambda: clock[0])
    back = Counting(clock=lambda: clock[0])
    return TieredStore(front=front, back=back, front_ttl=front_ttl), front, back, clock


def test_front_hit_does_not_read_back() -> None:
    t, _, back, _ = make()
    t.set("ns:k", b"v")
    assert t.get("ns:k") == b"v" and back.reads == 0


def test_front_ttl_is_min_of_ttl_and_front_ttl() -> None:
    t, front, back, clock = make(front_ttl=10)
    t.set("ns:short", b"v", ttl=5)
    t.set("ns:long", b"v", ttl=100)
    clock[0] = 6
    assert front.get("ns:short") is None and back.get("ns:short") is None
    clock[0] = 11
    assert front.get("ns:long") is None  # front dropped it at front_ttl ...
    assert t.get("ns:long") == b"v"      # ... the back still has it and refills the front
    assert front.get("ns:long") == b"v"


def test_other_process_delete_visible_after_front_ttl() -> None:
    t, _, back, clock = make(front_ttl=10)
    t.set("ns:k", b"v")
    back.delete(["ns:k"])  # as another process would
    assert t.get("ns:k") == b"v"
    clock[0] = 10.5
    assert t.get("ns:k") is None


def test_failed_back_write_leaves_no_front_entry() -> None:
    t, front, back, _ = make()
    t.set("ns:k", b"old")
    back.fail = True
    with pytest.raises(BackendError):
        t.set("ns:k", b"new")
    assert front.get("ns:k") is None
    with pytest.raises(BackendError):
        asyncio.run(t.aset("ns:k2", b"new"))
    assert front.get("ns:k2") is None


def test_from_params() -> None:
    t = TieredStore.from_params(back=MemoryStore(), max_size_in_memory=5,
                                default_in_memory_ttl=30)
    assert t.front_ttl == 30 and t.front.max_entries == 5
    with pytest.raises(ConfigError) as info:
        TieredStore.from_params(back=MemoryStore(), in_memory_size=5)
    assert info.value.parameter == "in_memory_size"
    with pytest.raises(ConfigError) as info:
        TieredStore.from_params(back=MemoryStore(), default_in_memory_ttl=-1)
    assert info.value.parameter == "default_in_memory_ttl"


class Pausing(MemoryStore):
    """A back store whose next read stops after reading, until released: the window
    in which another thread's write lands between a miss's back read and its fill."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.pause = False
        self.read_done = threading.Event()
        self.release = threading.Event()
        self.aread_done = asyncio.Event()
        self.arelease = asyncio.Event()

    def get_with_ttl(self, key):
        value = super().get_with_ttl(key)
        if self.pause:
            self.pause = False
            self.read_done.set()
            assert self.release.wait(10)
        return value

    async def aget_with_ttl(self, key):
        value = super().get_with_ttl(key)
        if self.pause:
            self.pause = False
            self.aread_done.set()
            await asyncio.wait_for(self.arelease.wait(), 10)
        return value


WRITES = {
    "delete": (lambda t: t.delete(["ns:k"]), None),
    "set": (lambda t: t.set("ns:k", b"new"), b"new"),
    "clear": (lambda t: t.clear("ns"), None),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_write_during_a_miss_is_not_undone_by_its_fill(write) -> None:
    # a reader missed the front and read the old value from the back; a delete (say,
    # of an answer reported wrong), an overwrite or a clear then finished; the reader's
    # fill must not put the old value back in front of the back for front_ttl
    do, want = WRITES[write]
    back = Pausing()
    t = TieredStore(front=MemoryStore(), back=back)
    back.set("ns:k", b"old")  # only in the back: the next read misses the front
    back.pause = True
    got: list[bytes | None] = []
    reader = threading.Thread(target=lambda: got.append(t.get("ns:k")))
    reader.start()
    assert back.read_done.wait(10)
    do(t)
    back.release.set()
    reader.join(10)
    assert got == [b"old"]  # it read before the write: that answer is fine once
    assert t.get("ns:k") == want
    assert back.get("ns:k") == want


@pytest.mark.parametrize("write", list(WRITES))
def test_write_during_an_async_miss_is_not_undone_by_its_fill(write) -> None:
    do, want = WRITES[write]

    async def run() -> None:
        back = Pausing()
        t = TieredStore(front=MemoryStore(), back=back)
        back.set("ns:k", b"old")
        back.pause = True
        reader = asyncio.create_task(t.aget("ns:k"))
        await asyncio.wait_for(back.aread_done.wait(), 10)
        await asyncio.to_thread(do, t)
        back.arelease.set()
        assert await reader == b"old"
        assert await t.aget("ns:k") == want

    asyncio.run(run())


# -- a fill keeps the back entry's remaining TTL -------------------------------------
# The front was filled for the full front_ttl whatever the back entry had left: an entry
# written elsewhere with ttl=5 and read at t=4 was served from the front until t=64,
# a minute past the TTL its writer set. ``get`` promises None once a key has expired.

def test_fill_does_not_outlive_the_back_entry() -> None:
    t, front, back, clock = make(front_ttl=60)
    back.set("ns:k", b"v", ttl=5)  # written by another process (or before a restart)
    clock[0] = 4
    assert t.get("ns:k") == b"v"  # a front miss: filled from the back
    clock[0] = 6
    assert front.get("ns:k") is None
    assert t.get("ns:k") is None


def test_async_fill_does_not_outlive_the_back_entry() -> None:
    t, front, back, clock = make(front_ttl=60)
    back.set("ns:k", b"v", ttl=5)
    clock[0] = 4
    assert asyncio.run(t.aget("ns:k")) == b"v"
    clock[0] = 6
    assert asyncio.run(t.aget("ns:k")) is None


def test_fill_of_an_entry_without_ttl_is_bounded_by_front_ttl() -> None:
    t, front, back, clock = make(front_ttl=10)
    back.set("ns:k", b"v")
    assert t.get("ns:k") == b"v"
    clock[0] = 10.5
    assert front.get("ns:k") is None


@pytest.mark.parametrize("use_async", [False, True])
def test_fill_from_real_redis_keeps_its_remaining_ttl(redis_stack_url, use_async) -> None:
    # the front's clock is injected: jumping it 2 s ahead is past the 1 s the Redis entry
    # had left, however fast this runs, so no sleep is needed to see the front expire it
    clock = [1000.0]
    front = MemoryStore(clock=lambda: clock[0])
    back = RedisStore(url=redis_stack_url)
    t = TieredStore(front=front, back=back, front_ttl=60)
    key = f"tiered-ttl-{use_async}:k"
    try:
        back.set(key, b"v", ttl=1)
        got = asyncio.run(t.aget(key)) if use_async else t.get(key)
        assert got == b"v" and front.get(key) == b"v"
        clock[0] += 2
        assert front.get(key) is None
    finally:
        back.delete([key])
        t.close()


def test_update_ttl_and_delete_reach_both_tiers(redis_stack_url) -> None:
    from semcache import Cache

    c = Cache(type="redis", redis_url=redis_stack_url, namespace="tiered-upd",
              max_size_in_memory=10)
    try:
        tiered = c.cache
        assert isinstance(tiered, TieredStore)
        key = c.add_cache({"answer": "a"}, model="m", messages=[{"role": "user",
                                                                 "content": "q"}])
        clock = [0.0]
        tiered.front._clock = lambda: clock[0]  # the front's expiry, without a sleep
        assert c.update_ttl(key, 1)
        pttl = tiered.back.redis_client.pttl(key)
        assert 0 < pttl <= 1000  # the back's TTL was shortened ...
        assert tiered.front.get(key) is not None
        clock[0] = 2
        assert tiered.front.get(key) is None  # ... and the front's with it
        assert c.delete(key) == 1
        assert tiered.front.get(key) is None and tiered.back.get(key) is None
    finally:
        c.flush()
        c.close()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "60"])
def test_front_ttl_must_be_a_positive_finite_number(bad) -> None:
    # a NaN front_ttl passed the check (NaN <= 0 is False) and every front entry then
    # expired at NaN, that is never: an unbounded front that served entries the back
    # had dropped, exactly what the check is there to refuse; so did inf
    with pytest.raises(ConfigError) as info:
        TieredStore(front=MemoryStore(), back=MemoryStore(), front_ttl=bad)
    assert info.value.parameter == "default_in_memory_ttl"


def test_the_back_store_gets_the_caches_read_limit():
    """The back store is the one that downloads: Cache's max_value_bytes reaches it."""
    from semcache import Cache
    from semcache.exact.memory import MemoryStore
    from semcache.exact.tiered import TieredStore

    back = MemoryStore()
    tier = TieredStore(front=MemoryStore(), back=back)
    Cache(store=tier, max_value_bytes=4321)
    assert back.max_read_bytes == tier.max_read_bytes == 4321
