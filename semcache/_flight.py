"""Single-flight: concurrent identical misses wait for one upstream call (issue #22).

A burst of one popular question used to make one upstream call per request: every one
of them missed before the first answer was stored. Now the first miss of an exact key
*leads*: it calls upstream and stores; the others with the same key *wait* for it, then
look the key up again and are served the stored answer as an exact hit.

- In one process, threads and event loops alike: one table of slots under a lock; a
  waiter on an event loop waits on an ``asyncio`` future that the leader resolves with
  ``call_soon_threadsafe``, so the loop never blocks; a thread waits on an Event.
- Across processes and machines, when the cache's exact store is Redis: the leader also
  takes a short Redis lock (``SET key NX PX``); a process that finds it held polls the
  exact entry until it appears, the lock goes, or the wait runs out.
- Every wait is bounded (the leader's own upstream timeout, at most): a leader that dies,
  hangs, or gets an answer that is not stored (an error, ``no-store``, too large) leaves
  its waiters to look up again and, on a miss, call upstream themselves. Coalescing can
  cost a waiter time, never its answer.

Only lookups that both read and write the cache join a flight (``no-cache``,
``no-store`` and ``caching=False`` requests want their own call). Streams are not
coalesced: a streamed waiter would lose its first token to the leader's whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FLIGHTS", "Flights", "Lease", "RedisLock", "DEFAULT_WAIT_S"]

#: how long a waiter waits for the leader before calling upstream itself, when the
#: caller has no timeout of its own (OpenAI's client default is 600 s; an answer that
#: takes longer than this is rare, and the waiter then only pays a duplicate call)
DEFAULT_WAIT_S = 120.0
#: how long a cross-process lock lives unless released: a leader that dies frees it
LOCK_TTL_S = 30.0
#: how often a process polls for another process's answer (Redis has no cheap wake-up
#: for a key appearing; keyspace notifications are off by default on managed Redis)
POLL_S = 0.02


@dataclass(slots=True)
class _Slot:
    event: threading.Event = field(default_factory=threading.Event)
    futures: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = \
        field(default_factory=list)
    waiters: int = 0


class Lease:
    """The leader's hold on a key: ``release()`` (idempotent) wakes every waiter."""

    __slots__ = ("_flights", "_key", "_slot", "_remote", "_done")

    def __init__(self, flights: Flights, key: str, slot: _Slot,
                 remote: Callable[[], None] | None) -> None:
        self._flights, self._key, self._slot, self._remote = flights, key, slot, remote
        self._done = False

    @property
    def waiters(self) -> int:
        return self._slot.waiters

    def release(self) -> None:
        if self._done:
            return
        self._done = True
        if self._remote is not None:
            with contextlib.suppress(Exception):  # it expires on its own anyway
                self._remote()
        self._flights._release(self._key, self._slot)


class Flights:
    """The table of keys in flight in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self.led = 0  #: flights led (upstream calls made for a coalescing key)
        self.joined = 0  #: requests that waited for a leader instead of calling

    def _take(self, key: str) -> tuple[_Slot, bool]:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
                self.led += 1
                return slot, True
            slot.waiters += 1
            self.joined += 1
            return slot, False

    def _release(self, key: str, slot: _Slot) -> None:
        with self._lock:
            if self._slots.get(key) is slot:
                del self._slots[key]
            futures, slot.futures = slot.futures, []
            slot.event.set()
        for loop, fut in futures:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, fut)

    def lead(self, key: str, timeout: float, lock: RedisLock | None = None) -> Lease | None:
        """A ``Lease`` when this caller is to call upstream; None after waiting for
        another caller's call (or for the wait to run out): then look the key up again."""
        slot, leader = self._take(key)
        if not leader:
            slot.event.wait(timeout)
            return None
        remote = None
        if lock is not None:
            got = lock.acquire()
            if got is None:  # another process leads: wait for its answer here
                try:
                    lock.wait_sync(timeout)
                finally:
                    self._release(key, slot)
                return None
            remote = got
        return Lease(self, key, slot, remote)

    async def alead(self, key: str, timeout: float,
                    lock: RedisLock | None = None) -> Lease | None:
        """``lead`` for an event loop: waiting never blocks the loop."""
        slot, leader = self._take(key)
        if not leader:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            with self._lock:
                if slot.event.is_set():
                    return None
                slot.futures.append((loop, fut))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(fut, timeout)
            return None
        remote = None
        if lock is not None:
            taking = asyncio.get_running_loop().run_in_executor(None, lock.acquire)
            try:
                got = await asyncio.shield(taking)
            except BaseException:
                # cancelled (a client that went away) while the thread took the lock: the
                # slot goes back, or every later identical request waited on a leader
                # that is gone; the lock too, once the thread has it
                self._release(key, slot)
                taking.add_done_callback(_give_back)
                raise
            if got is None:
                try:
                    await lock.wait_async(timeout)
                finally:
                    self._release(key, slot)
                return None
            remote = got
        return Lease(self, key, slot, remote)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _give_back(taking: asyncio.Future[Callable[[], None] | None]) -> None:
    """Release a Redis lock taken for a leader cancelled meanwhile (in a thread: the
    release is a Redis call, never made on the loop)."""
    if taking.cancelled() or taking.exception() is not None:
        return
    release = taking.result()
    if release is not None:
        taking.get_loop().run_in_executor(None, release)


class RedisLock:
    """A short cross-process lock on one key (``SET NX PX``) and a bounded wait for the
    entry its holder will write. ``client`` is a sync redis-py client; ``ready()``
    says whether the entry is there (the store's own ``get``)."""

    __slots__ = ("client", "name", "ready", "token")

    def __init__(self, client: Any, key: str, ready: Callable[[], bool]) -> None:
        self.client = client
        self.name = f"{key}:__semcache_flight__"
        self.ready = ready
        self.token = uuid.uuid4().hex

    def acquire(self) -> Callable[[], None] | None:
        """The release function when taken; None when another holds it. A Redis that
        does not answer is no lock at all: lead (call upstream) as without one."""
        try:
            got = self.client.set(self.name, self.token, nx=True,
                                  px=int(LOCK_TTL_S * 1000))
        except Exception:
            return lambda: None
        return self._release if got else None

    def _release(self) -> None:
        # only our own token: after a TTL expiry another process may hold it now
        self.client.eval(_RELEASE, 1, self.name, self.token)

    def _done(self) -> bool:
        try:
            return self.ready() or not self.client.exists(self.name)
        except Exception:
            return True  # Redis went away: stop waiting, look up (and call) ourselves

    def wait_sync(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._done() and time.monotonic() < deadline:
            time.sleep(POLL_S)

    async def wait_async(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self._done) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)


_RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) else return 0 end")

#: the process's table: every cache and the proxy share it (keys carry the namespace,
#: and callers prefix the cache's identity)
FLIGHTS = Flights()


def flight_key(cache: Any, key: str) -> str:
    """The in-process flight of ``key`` in ``cache``: two caches never share one."""
    return f"{id(cache):x}|{key}"


def redis_lock(cache: Any, key: str) -> RedisLock | None:
    """The cross-process lock for ``key`` when the cache's exact store is Redis (behind
    a front tier or not); None for stores only this process sees."""
    store = getattr(cache, "store", None)
    store = getattr(store, "back", store)
    if store is None or not hasattr(type(store), "redis_client"):
        return None
    try:
        client = store.redis_client
    except Exception:  # not reachable now: no lock, the miss proceeds as without one
        return None
    return RedisLock(client, key, lambda: store.get(key) is not None)
