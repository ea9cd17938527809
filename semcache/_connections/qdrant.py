"""One Qdrant connection shared by ``QdrantIndex`` and ``QdrantStore``, the one place
qdrant-client's errors become semcache's, and the collection logic both build on.

Where it runs
    ``qdrant_api_base="http://host:6333"`` (+ ``qdrant_api_key``) talks to a Qdrant
    server, which every process can share. Without it, qdrant-client's *embedded* local
    mode runs in process: ``qdrant_path="./folder"`` persists to a folder (locked to one
    process: a second one gets a ``ConfigError``), and the default (``qdrant_path`` unset
    or ``":memory:"``) keeps everything in memory, like the ``local`` type. The embedded
    mode is a brute-force search meant for development and tests; the code path through
    the client is the same for both.

Programs and steps
    Operations are written once, as generators of steps: each step is a bound method of
    the client the program was given, with its arguments (``functools.partial``), so
    an IDE or mypy can follow it to qdrant-client. ``run`` gives a program the sync
    client (``steps.drive`` calls each step); ``arun`` gives it the event loop's
    ``AsyncQdrantClient`` (``steps.adrive`` awaits each step) on a server, or runs the
    sync driver in a worker thread behind one lock (embedded): no second copy of any
    logic.

Behaviour
    Collections are created lazily on first use: the constructors do no network I/O.
    Expired points are purged by ``purge_expired()`` and, every ``purge_every`` writes,
    opportunistically. qdrant-client's errors are mapped in ``_map_errors`` and nowhere
    else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from .._errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    SemcacheError,
    missing,
)
from .steps import adrive, drive

try:
    from qdrant_client import AsyncQdrantClient, QdrantClient, models
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing("qdrant-client", "qdrant", "qdrant-semantic") from exc

# qdrant-client's ``models`` is re-exported so the store and the index get it (or the
# install hint) from here
__all__ = ["FORMAT", "Client", "Collection", "Program", "QdrantConnection",
           "check_collection_name", "match", "models", "not_expired", "ns_of", "point_id"]

FORMAT = 1
_NS = uuid.UUID("5a9c7f2e-5b1f-4c1e-9a57-3d1e0c2b7a11")  # uuid5 namespace of our point ids


def point_id(key: str) -> str:
    """Deterministic point id of an exact key: the same request always hits one point."""
    return str(uuid.uuid5(_NS, key))


#: the client a program binds its steps to: the sync one, or this event loop's async one
Client = QdrantClient | AsyncQdrantClient
#: one client call with its arguments; the sync driver calls it, the async one awaits it
_Step = partial[Any]
_R = TypeVar("_R")
#: an operation written once: it yields steps, receives their results, returns an _R
Program = Generator[_Step, Any, _R]
_P = ParamSpec("_P")


class QdrantConnection:
    """One Qdrant client (and its async twin) shared by a cache's store and index.

    Operations are written once, as programs (see the module docstring): ``run``
    drives one with the sync client, ``arun`` with the async one (server) or in a
    worker thread (embedded).
    """

    def __init__(self, *, url: str | None = None, api_key: str | None = None,
                 path: str | os.PathLike[str] | None = None,
                 timeout: float | None = None) -> None:
        if url is not None and path is not None and str(path) != ":memory:":
            raise ConfigError("give qdrant_api_base (a server) or qdrant_path (embedded), "
                              "not both", parameter="qdrant_path")
        if url is not None and (not isinstance(url, str) or "://" not in url):
            raise ConfigError(f"qdrant_api_base must be a URL like http://host:6333, got "
                              f"{url!r}", parameter="qdrant_api_base")
        if api_key is not None and url is None:
            raise ConfigError("qdrant_api_key needs qdrant_api_base (a server)",
                              parameter="qdrant_api_key")
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ConfigError(f"qdrant_timeout must be > 0 seconds, got {timeout!r}",
                              parameter="qdrant_timeout")
        self.url = url
        self._api_key = api_key
        self._closed = False
        self.embedded = url is None
        self.path = None if path is None or str(path) == ":memory:" else os.fspath(path)
        self._timeout = None if timeout is None else int(max(1, round(timeout)))
        self._lock = threading.RLock()  # the embedded client is not thread-safe
        self._aclients: dict[int, tuple[asyncio.AbstractEventLoop, AsyncQdrantClient]] = {}
        self.ready: set[str] = set()  # collections checked or created in this process
        if self.embedded:
            try:
                # Local, no network; taking the folder lock here gives the clear error
                # at construction rather than on the first request.
                self.client = QdrantClient(location=":memory:" if self.path is None else None,
                                           path=self.path,
                                           force_disable_check_same_thread=True)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise ConfigError(
                    f"the embedded Qdrant folder {self.path!r} is open in another client "
                    "(the embedded mode allows one per folder): share one Cache, give each "
                    "process its own folder, or run a Qdrant server and set qdrant_api_base",
                    parameter="qdrant_path") from None
        else:
            # check_compatibility=False: otherwise the constructor would call the server
            self.client = QdrantClient(url=url, api_key=api_key, timeout=self._timeout,
                                       check_compatibility=False)

    def describe(self) -> str:
        if not self.embedded:
            return self.url or ""
        return f"embedded:{self.path or ':memory:'}"

    # -- drivers (semcache/_connections/steps.py) --
    def run(self, program: Callable[Concatenate[Client, _P], Program[_R]], /,
            *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock if self.embedded else contextlib.nullcontext():
            return drive(program(self.client, *args, **kwargs), partial(_map_errors, self))

    async def arun(self, program: Callable[Concatenate[Client, _P], Program[_R]], /,
                   *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.embedded:
            return await asyncio.to_thread(self.run, program, *args, **kwargs)
        return await adrive(program(self._aclient(), *args, **kwargs),
                            partial(_map_errors, self))

    def _aclient(self) -> AsyncQdrantClient:
        # httpx's async pool belongs to one event loop: one client per running loop
        loop = asyncio.get_running_loop()
        got = self._aclients.get(id(loop))
        if got is None or got[0] is not loop:
            for k in [k for k, (lp, _) in self._aclients.items() if lp.is_closed()]:
                del self._aclients[k]
            got = self._aclients[id(loop)] = (loop, AsyncQdrantClient(
                url=self.url, api_key=self._api_key, timeout=self._timeout,
                check_compatibility=False))
        return got[1]

    def close(self) -> None:
        """Idempotent: the store and the index of one cache share this connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.client.close()
            self._aclients.clear()


@contextlib.contextmanager
def _map_errors(conn: QdrantConnection, step: _Step) -> Iterator[None]:
    """The one place where qdrant-client's errors become semcache's."""
    backend = "qdrant"
    where = f"qdrant {step.func.__name__} at {conn.describe()}"
    try:
        yield
    except SemcacheError:
        raise
    except UnexpectedResponse as exc:
        if exc.status_code == 404:  # e.g. the collection was deleted behind our back
            conn.ready.discard(step.keywords.get("collection_name", ""))
        if exc.status_code in (502, 503, 504):
            raise BackendUnavailable(f"{where}: HTTP {exc.status_code}",
                                     backend=backend) from exc
        raise BackendError(f"{where}: HTTP {exc.status_code}: {exc.content[:200]!r}",
                           backend=backend) from exc
    except ResponseHandlingException as exc:
        src = exc.source
        if isinstance(src, TimeoutError) or "timeout" in type(src).__name__.lower():
            raise BackendTimeout(f"{where}: timed out", backend=backend) from exc
        raise BackendUnavailable(f"{where}: {type(src).__name__}: {src}",
                                 backend=backend) from exc
    except TimeoutError as exc:
        raise BackendTimeout(f"{where}: timed out", backend=backend) from exc
    except (ConnectionError, OSError) as exc:
        raise BackendUnavailable(f"{where}: {exc}", backend=backend) from exc
    except (ValueError, KeyError, RuntimeError) as exc:
        # the embedded mode raises these (e.g. a collection deleted by another handle,
        # a closed client)
        conn.ready.discard(step.keywords.get("collection_name", ""))
        raise BackendError(f"{where}: {type(exc).__name__}: {exc}", backend=backend) from exc


def not_expired(now: float) -> models.Filter:
    return models.Filter(should=[
        models.FieldCondition(key="x", range=models.Range(gt=now)),
        # is_empty: missing or null. A payload merge (set_payload) may drop a null value
        models.IsEmptyCondition(is_empty=models.PayloadField(key="x")),
    ])


def match(field_name: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=field_name, match=models.MatchValue(value=value))


def ns_of(key: str) -> str:
    return key.split(":", 1)[0]


class Collection:
    """What the index and the store share: a lazily created collection, opportunistic
    purges of expired points, and count/clear/purge programs."""

    purge_every = 1000

    def __init__(self, conn: QdrantConnection, name: str, clock: Callable[[], float]) -> None:
        self.conn = conn
        self.collection = name
        self._clock = clock
        self._writes = 0

    def _ensure(self, c: Client, dim: int | None = None) -> Program[bool]:
        """Create or check the collection once per process; False if it does not exist
        and could not be created yet (a search before the first add)."""
        if self.collection in self.conn.ready:
            return True
        exists = yield partial(c.collection_exists, collection_name=self.collection)
        if not exists:
            spec = self._create_spec(dim)
            if spec is None:
                return False
            yield partial(c.create_collection, collection_name=self.collection, **spec)
            if not self.conn.embedded:  # payload indexes are a no-op (and warn) embedded
                for name, schema in self._payload_indexes():
                    yield partial(c.create_payload_index,
                                  collection_name=self.collection, field_name=name,
                                  field_schema=schema, wait=True)
        else:
            info = yield partial(c.get_collection, collection_name=self.collection)
            self._check_existing(info)
        self.conn.ready.add(self.collection)
        return True

    def _payload_indexes(self) -> list[tuple[str, models.PayloadSchemaType]]:
        return [("ns", models.PayloadSchemaType.KEYWORD), ("x", models.PayloadSchemaType.FLOAT)]

    def _create_spec(self, dim: int | None) -> dict[str, Any] | None:
        raise NotImplementedError

    def _check_existing(self, info: Any) -> None:
        pass

    def _count(self, c: Client, flt: models.Filter | None) -> Program[int]:
        exists = yield from self._ensure(c)
        if not exists:
            return 0
        res = yield partial(c.count, collection_name=self.collection, count_filter=flt,
                            exact=True)
        return int(res.count)

    def _delete_where(self, c: Client, flt: models.Filter) -> Program[int]:
        n = yield from self._count(c, flt)
        if n:
            yield partial(c.delete, collection_name=self.collection, wait=True,
                          points_selector=models.FilterSelector(filter=flt))
        return n

    def _delete_ids(self, c: Client, keys: Sequence[str]) -> Program[int]:
        keys = list(dict.fromkeys(keys))
        exists = yield from self._ensure(c)
        if not keys or not exists:
            return 0
        ids = [point_id(k) for k in keys]
        found = yield partial(c.retrieve, collection_name=self.collection, ids=ids,
                              with_payload=False, with_vectors=False)
        if found:
            yield partial(c.delete, collection_name=self.collection, wait=True,
                          points_selector=models.PointIdsList(points=[p.id for p in found]))
        return len(found)

    def _purge(self, c: Client, now: float) -> Program[int]:
        return (yield from self._delete_where(c, models.Filter(must=[
            models.FieldCondition(key="x", range=models.Range(lte=now))])))

    def _wrote(self, c: Client, n: int) -> Program[None]:
        """Every ``purge_every`` writes, drop expired points (searches already skip them)."""
        self._writes += n
        if self._writes >= self.purge_every:
            self._writes = 0
            yield from self._purge(c, self._clock())

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired points now; returns how many."""
        return self.conn.run(self._purge, self._clock() if now is None else now)

    def _ping(self, c: Client) -> Program[bool]:
        yield partial(c.get_collections)
        return True

    def _namespace(self, c: Client, namespace: str | None, delete: bool) -> Program[int]:
        flt = None if namespace is None else models.Filter(must=[match("ns", namespace)])
        if delete:
            assert flt is not None
            return (yield from self._delete_where(c, flt))
        return (yield from self._count(c, flt))

    # -- the part of the seam both the index and the store have --
    def delete(self, keys: Sequence[str]) -> int:
        return self.conn.run(self._delete_ids, keys)

    def clear(self, namespace: str) -> int:
        return self.conn.run(self._namespace, namespace, True)

    def ping(self) -> bool:
        return self.conn.run(self._ping)

    async def adelete(self, keys: Sequence[str]) -> int:
        return await self.conn.arun(self._delete_ids, keys)

    async def aclear(self, namespace: str) -> int:
        return await self.conn.arun(self._namespace, namespace, True)

    async def aping(self) -> bool:
        return await self.conn.arun(self._ping)

    def close(self) -> None:
        self.conn.close()


def check_collection_name(name: Any) -> None:
    if not isinstance(name, str) or not name or len(name) > 200 or any(
            c in name for c in "/\\ \0"):
        raise ConfigError(f"qdrant_collection_name must be a non-empty name without '/', "
                          f"'\\' or spaces, got {name!r}", parameter="qdrant_collection_name")


