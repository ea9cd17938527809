"""Single-flight in the library (issue #22): concurrent identical misses make one
upstream call, in threads, on an event loop, and across caches sharing one Redis."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import semcache
from semcache import Cache
from semcache._flight import FLIGHTS, Flights
from tests.calls_support import POOL, fake, fake_server, kw  # noqa: F401

CHAT = "chat/completions"
N = 8


def _ask(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


def _burst(fn, n: int = N) -> list:
    start = threading.Barrier(n)

    def one(_: int):
        start.wait(timeout=10)
        return fn()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_threads_coalesce_identical_misses(fake, kw):
    fake.delay_ms = 400  # the leader is still in flight when every thread has looked up
    semcache.cache = Cache()
    msgs = _ask("a popular question")
    out = _burst(lambda: semcache.completion(model="gpt-4o-mini", messages=msgs, **kw))
    assert fake.calls[CHAT] == 1
    assert sum(not r._hidden_params["cache_hit"] for r in out) == 1
    assert {r.choices[0].message.content for r in out} == {"echo: a popular question"}
    # waiters are served the stored answer as exact hits
    assert {r._hidden_params["cache"]["stage"] for r in out} == {"miss", "exact"}


def test_event_loop_coalesces_identical_misses(fake, kw):
    fake.delay_ms = 400
    semcache.cache = Cache()
    msgs = _ask("a popular async question")

    async def main():
        return await asyncio.gather(*(semcache.acompletion(model="gpt-4o-mini",
                                                           messages=msgs, **kw)
                                      for _ in range(N)))
    out = asyncio.run(main())
    assert fake.calls[CHAT] == 1
    assert sum(not r._hidden_params["cache_hit"] for r in out) == 1


def test_different_requests_and_no_store_do_not_coalesce(fake, kw):
    fake.delay_ms = 200
    semcache.cache = Cache()
    qs = iter(range(N))
    lock = threading.Lock()

    def distinct():
        with lock:
            i = next(qs)
        return semcache.completion(model="gpt-4o-mini", messages=_ask(f"q{i}"), **kw)
    _burst(distinct)
    assert fake.calls[CHAT] == N
    fake.reset()
    # no-store answers are not stored for waiters to read: each calls upstream
    _burst(lambda: semcache.completion(model="gpt-4o-mini", messages=_ask("ns"),
                                       cache={"no-store": True}, **kw), n=4)
    assert fake.calls[CHAT] == 4


def test_caches_sharing_redis_coalesce_across_instances(fake, kw, redis_stack_url):
    # two Cache objects are two workers: only the Redis lock is shared between them
    fake.delay_ms = 400
    ns = f"flight-{uuid.uuid4().hex[:8]}"
    caches = [Cache(type="redis", redis_url=redis_stack_url, namespace=ns)
              for _ in range(2)]
    turn = iter(range(N))
    lock = threading.Lock()
    msgs = _ask("a question for every worker")

    def call():
        with lock:
            c = caches[next(turn) % 2]
        return _call_with(c, msgs, kw)  # semcache.completion on that worker's cache
    try:
        out = _burst(call)
        assert fake.calls[CHAT] == 1
        assert sum(not r._hidden_params["cache_hit"] for r in out) == 1
    finally:
        for c in caches:
            c.flush()
            c.close()


def _call_with(cache: Cache, msgs, kw):
    from semcache._calls import _flow, _run

    return _run(_flow("completion", {"model": "gpt-4o-mini", "messages": msgs, **kw},
                      cache))


def test_a_waiter_whose_leader_never_finishes_stops_waiting():
    flights = Flights()
    lease = flights.lead("k", 1.0)
    assert lease is not None
    t = time.monotonic()
    assert flights.lead("k", 0.2) is None  # waited, bounded, then told to look again
    assert 0.15 < time.monotonic() - t < 5

    async def waiter():
        return await flights.alead("k", 0.2)
    assert asyncio.run(waiter()) is None
    lease.release()
    assert flights.lead("k", 0.2) is not None  # released: the next miss leads


def test_release_wakes_async_and_thread_waiters_at_once():
    flights = Flights()
    lease = flights.lead("k", 1.0)
    assert lease is not None
    woke = threading.Event()

    def thread_waiter():
        flights.lead("k", 30.0)
        woke.set()

    async def main():
        th = threading.Thread(target=thread_waiter)
        th.start()
        task = asyncio.ensure_future(flights.alead("k", 30.0))
        while lease.waiters < 2:  # both are waiting now
            await asyncio.sleep(0.005)
        t = time.monotonic()
        lease.release()
        assert await asyncio.wait_for(task, 5) is None
        assert await asyncio.to_thread(woke.wait, 5)
        th.join(5)
        return time.monotonic() - t
    assert asyncio.run(main()) < 2.0


@pytest.fixture(autouse=True)
def _no_leftover_flights():
    yield
    assert not FLIGHTS._slots  # every lease released


def test_a_leader_cancelled_while_taking_its_lock_gives_back_the_slot_and_the_lock():
    """A client that went away while its (Redis) lock was being taken left the slot
    held: every later identical request waited its whole timeout on a leader that was
    gone, and the lock stayed until it expired."""
    flights = Flights()
    taking, go, released = threading.Event(), threading.Event(), threading.Event()

    class SlowLock:  # RedisLock's interface; acquire blocks until the test lets it go
        def acquire(self):
            taking.set()
            go.wait(10)
            return released.set

    async def main() -> None:
        leader = asyncio.create_task(flights.alead("k", 5.0, SlowLock()))
        await asyncio.to_thread(taking.wait, 10)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert "k" not in flights._slots  # the slot is back at once
        go.set()  # the thread gets the lock after all: it is released, off the loop
        assert await asyncio.to_thread(released.wait, 10)
        lease = await asyncio.wait_for(flights.alead("k", 5.0), 5)  # leads at once
        assert lease is not None
        lease.release()

    asyncio.run(main())


def test_a_waiter_waits_no_longer_than_its_calls_timeout():
    """The timeout is the endpoint's (the upstream params never hold it): the wait read
    params and always fell back to two minutes."""
    from types import SimpleNamespace

    import httpx

    from semcache._calls import DEFAULT_WAIT_S, _wait_s
    from semcache._calls._clients import resolve_endpoint

    def call(**kw):
        return SimpleNamespace(endpoint=resolve_endpoint(kw), params={})

    assert _wait_s(call(timeout=0.5)) == 0.5
    assert _wait_s(call(request_timeout="3")) == 3.0
    assert _wait_s(call(timeout=httpx.Timeout(10.0, read=2.0))) == 2.0
    assert _wait_s(call()) == _wait_s(call(timeout=httpx.Timeout(None))) == DEFAULT_WAIT_S
