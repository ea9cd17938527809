"""MemoryStore on cachetools' LRU (issue #19): same answers as a reference LRU with
per-entry TTL, the same keys handed to ``on_evict``, and safe under threads."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from semcache.exact.memory import MemoryStore

KEYS = st.sampled_from([f"ns:{c}" for c in "abcdef"])
OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), KEYS, st.none() | st.integers(1, 5)),
    st.tuples(st.just("get"), KEYS, st.none()),
    st.tuples(st.just("tick"), st.just(""), st.integers(1, 3)),
), max_size=60)


class _Reference:
    """The behaviour MemoryStore promises, written the plain way."""

    def __init__(self, size: int) -> None:
        self.size, self.data = size, OrderedDict[str, tuple[bytes, float | None]]()

    def get(self, key: str, now: float) -> bytes | None:
        if key not in self.data:
            return None
        value, expires = self.data[key]
        if expires is not None and expires <= now:
            del self.data[key]
            return None
        self.data.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, expires: float | None) -> list[str]:
        self.data[key] = (value, expires)
        self.data.move_to_end(key)
        out = []
        while len(self.data) > self.size:
            out.append(self.data.popitem(last=False)[0])
        return out


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 4), ops=OPS)
def test_matches_a_reference_lru_with_ttl(size: int,
                                          ops: list[tuple[str, str, int | None]]) -> None:
    now = [1000.0]
    evicted: list[str] = []
    store = MemoryStore(max_size_in_memory=size, clock=lambda: now[0],
                        on_evict=evicted.extend)
    ref, ref_evicted = _Reference(size), []
    for i, (op, key, n) in enumerate(ops):
        if op == "tick":
            now[0] += n or 0
        elif op == "set":
            value = f"{key}#{i}".encode()
            assert store.set(key, value, ttl=n) is True
            ref_evicted += ref.set(key, value, None if n is None else now[0] + n)
        else:
            assert store.get(key) == ref.get(key, now[0]), (i, key)
    assert evicted == ref_evicted and store.evicted == len(ref_evicted)
    assert len(store) == len(ref.data) <= size


def test_threads_never_break_the_bound_or_lose_an_eviction() -> None:
    evicted: list[str] = []
    lock = threading.Lock()

    def on_evict(keys: list[str]) -> None:
        with lock:
            evicted.extend(keys)

    store = MemoryStore(max_size_in_memory=50, on_evict=on_evict)
    start = threading.Barrier(8)

    def work(t: int) -> None:
        start.wait(timeout=30)
        for i in range(2000):
            key = f"ns:{t}-{i}"
            store.set(key, key.encode())
            got = store.get(f"ns:{t}-{i // 2}")
            assert got is None or got == f"ns:{t}-{i // 2}".encode()

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: races show up without luck
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(th.is_alive() for th in threads)
    assert len(store) == 50
    # every key written is either still held or was handed to on_evict, exactly once
    assert len(evicted) == len(set(evicted)) == 8 * 2000 - 50 == store.evicted


def test_a_key_stored_again_while_its_eviction_is_handled_keeps_its_vector() -> None:
    """faiss-semantic drops an evicted answer's vector in ``on_evict``. Run outside the
    store's lock, that hook raced a writer storing the same request again: store, index
    add, and only then the hook's delete, which removed the *fresh* vector (the answer
    stayed, no paraphrase could reach it). The writer now waits for the hook."""
    from semcache import Cache
    from semcache.embedders.base import Embedder

    class One(Embedder):
        model_id, dim = "one", 4

        def _embed(self, texts):
            import numpy as np
            return np.ones((len(texts), 4), np.float32)

    cache = Cache(type="faiss-semantic", embedder=One(), max_size_in_memory=1,
                  similarity_threshold=0.5, verifier=None)
    ask = {"model": "m", "messages": [{"role": "user", "content": "first"}]}
    other = {"model": "m", "messages": [{"role": "user", "content": "second"}]}
    cache.add_cache({"answer": 1}, **ask)
    hook = cache.store.on_evict
    in_hook, restored = threading.Event(), threading.Event()

    def slow_hook(keys):  # the eviction of "first": let the writer run, then delete
        if keys == [cache.get_cache_key(**ask)]:
            in_hook.set()
            restored.wait(timeout=1)  # fixed: the writer cannot finish while we wait
        return hook(keys)

    cache.store.on_evict = slow_hook
    evictor = threading.Thread(target=cache.add_cache, args=({"answer": 2},), kwargs=other)
    evictor.start()
    assert in_hook.wait(timeout=30)

    def store_again():  # a writer storing "first" again, as a concurrent miss would
        cache.add_cache({"answer": 3}, **ask)
        restored.set()

    writer = threading.Thread(target=store_again)
    writer.start()
    evictor.join(timeout=30)
    writer.join(timeout=30)
    # "first" is stored again (answer 3): a paraphrase must still reach it
    hit = cache.lookup(model="m", messages=[{"role": "user", "content": "a paraphrase"}])
    assert hit is not None and hit.value == {"answer": 3}, \
        "the fresh entry's vector was removed by the old eviction's hook"
    cache.close()
