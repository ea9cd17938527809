"""What the object-store backends (S3, GCS, Azure Blob) share, written once.

One object per entry, named ``<prefix><quoted key>``, the value bytes as its body and
the expiry (unix time) in the object's metadata. Object stores have no TTL of their own
that a read would honour, so expiry is checked on every read: an expired entry is a
miss and its object is deleted then (``purge_expired`` sweeps the rest).

A backend implements a handful of primitives (``_read``, ``_write``, ``_remove``,
``_names``, the container check) plus ``_errors()``, the one context manager that maps
its library's errors to semcache's. Everything else (key naming, TTL, scoping of
``clear`` to ``prefix + namespace + ':'``, the bucket check) lives here.

Keys are percent-encoded (``:`` kept): object names then never contain ``/``, ``\\``
or control characters whatever the namespace is, and since the encoding maps each
character to a fixed string, ``key.startswith(ns + ":")`` holds exactly when the encoded
name starts with the encoded prefix, so listing by prefix is exact.
"""

from __future__ import annotations

import math
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote, unquote

from .._checks import check_store_ttl
from .._errors import BackendError, IntegrityError
from .base import ExactStore

__all__ = ["EXPIRES_META", "BlobStore", "normalise_prefix"]

#: metadata name of the expiry; underscores only, as Azure requires C# identifiers
EXPIRES_META = "semcache_expires"


def normalise_prefix(path: str | None) -> str:
    """LiteLLM's ``s3_path``/``gcs_path``: a folder-like prefix ending in one ``/``."""
    if not path:
        return ""
    path = path.strip("/")
    return path + "/" if path else ""


class BlobStore(ExactStore):
    name = "blob"
    #: what the provider calls its top-level namespace, for messages
    container_kind = "bucket"
    #: the from_params option that allows creating a missing container, for messages
    create_option = "create"

    def __init__(
        self,
        container: str,
        *,
        prefix: str = "",
        create: bool = False,
        default_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.container = container
        self.prefix = normalise_prefix(prefix)
        self.create = create
        self.default_ttl = default_ttl
        self._clock = clock
        self._checked = False
        self._check_lock = threading.Lock()
        self._client_obj: Any = None
        self._client_lock = threading.Lock()
        self.expired_removed = 0

    # -- primitives each provider implements ------------------------------------------
    @abstractmethod
    def _make_client(self) -> Any:
        """Build the provider's client (called once, on first use)."""

    @abstractmethod
    def _errors(self) -> AbstractContextManager[None]:
        """Map the library's exceptions to BackendError & co (raising ``from``)."""

    @abstractmethod
    def _container_exists(self) -> bool: ...

    @abstractmethod
    def _create_container(self) -> None: ...

    @abstractmethod
    def _read(self, name: str) -> tuple[bytes, dict[str, str], Any] | None:
        """(body, metadata, version token) or None when there is no such object."""

    @abstractmethod
    def _write(self, name: str, body: bytes, metadata: dict[str, str]) -> None: ...

    @abstractmethod
    def _remove(self, name: str, version: Any = None) -> bool:
        """Delete one object (only that version, when given); True when it existed."""

    @abstractmethod
    def _names(self, prefix: str) -> Iterator[str]:
        """Names of the objects whose name starts with ``prefix``."""

    def _check_size(self, name: str, size: Any) -> None:
        """Before downloading ``name``'s body of ``size`` bytes: refused past
        ``max_read_bytes`` (see ``ExactStore``)."""
        cap = self.max_read_bytes
        if cap is not None and isinstance(size, int) and size > cap:
            raise IntegrityError(f"{self.name}: stored object {name!r} of {size} bytes "
                                 f"exceeds max_value_bytes ({cap}); not downloaded")

    def _remove_many(self, names: Sequence[str]) -> int:
        """Delete listed objects; providers with a batch call override this."""
        return sum(self._remove(n) for n in names)

    def _expiry_of(self, name: str) -> float | None:
        """The expiry of an object found by listing (providers whose listing carries
        metadata override this to avoid a read per object)."""
        found = self._read(name)
        return None if found is None else _parse_expiry(found[1])

    @property
    def _client(self) -> Any:
        """The provider's client, built on first use (never in the constructor), once:
        building one reads files and the environment, and some SDKs (boto3 sessions)
        are not safe to build clients from concurrently."""
        client = self._client_obj
        if client is None:
            with self._client_lock:
                if self._client_obj is None:
                    self._client_obj = self._make_client()
                client = self._client_obj
        return client

    def _close(self) -> None:
        client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()

    # -- the seam -----------------------------------------------------------------------
    def _object_name(self, key: str) -> str:
        return self.prefix + quote(key, safe=":")

    def _ensure_container(self) -> None:
        """Once per store, on first use (never in the constructor): a missing bucket
        is a clear error naming it instead of every read looking like a miss."""
        if self._checked:
            return
        with self._check_lock:
            if self._checked:
                return
            if not self._container_exists():
                if not self.create:
                    raise BackendError(
                        f"{self.name}: {self.container_kind} {self.container!r} does not "
                        f"exist (create it, or pass {self.create_option}=True)",
                        backend=self.name,
                    )
                self._create_container()
            self._checked = True

    def get(self, key: str) -> bytes | None:
        return self.get_with_ttl(key)[0]

    def get_with_ttl(self, key: str) -> tuple[bytes | None, float | None]:
        name = self._object_name(key)
        with self._errors():
            self._ensure_container()
            found = self._read(name)
            if found is None:
                return None, None
            body, metadata, version = found
            expires = _parse_expiry(metadata)
            if expires is None:
                return body, None
            left = expires - self._clock()
            if left <= 0:
                self._drop_expired(name, version)
                return None, None
            return body, left

    def _drop_expired(self, name: str, version: Any) -> None:
        # only the version we read: a writer that replaced it meanwhile keeps its entry
        try:
            if self._remove(name, version):
                self.expired_removed += 1
        except BackendError:
            pass  # the answer (a miss) stands; the next read or purge retries

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        ttl = check_store_ttl(ttl)  # NaN here was an entry dropped as already expired
        name = self._object_name(key)
        with self._errors():
            self._ensure_container()
            if ttl is not None and ttl <= 0:
                self._remove(name)
                return
            metadata = {} if ttl is None else {EXPIRES_META: f"{self._clock() + ttl:.3f}"}
            self._write(name, bytes(value), metadata)

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._errors():
            self._ensure_container()
            return sum(self._remove(self._object_name(k)) for k in keys)

    def clear(self, namespace: str) -> int:
        prefix = self._object_name(namespace + ":")
        with self._errors():
            self._ensure_container()
            removed = 0
            for batch in _batches(self._names(prefix), 500):
                removed += self._remove_many(batch)
            return removed

    def purge_expired(self, namespace: str | None = None) -> int:
        """Delete every expired object under this store's prefix (or one namespace's);
        returns how many. Reads already do this lazily; this is for a periodic job."""
        prefix = self.prefix if namespace is None else self._object_name(namespace + ":")
        now = self._clock()
        with self._errors():
            self._ensure_container()
            doomed = [n for n in self._names(prefix)
                      if (exp := self._expiry_of(n)) is not None and exp <= now]
            removed = 0
            for batch in _batches(doomed, 500):
                removed += self._remove_many(batch)
            self.expired_removed += removed
            return removed

    def ping(self) -> bool:
        with self._errors():
            self._checked = False  # ping re-checks that the container is still there
            self._ensure_container()
        return True

    def close(self) -> None:
        self._close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.container_kind}={self.container!r}, "
                f"prefix={self.prefix!r})")


def _parse_expiry(metadata: dict[str, str]) -> float | None:
    raw = metadata.get(EXPIRES_META)
    if raw is None:
        return None
    try:
        expires = float(raw)
    except ValueError:
        return 0.0  # unreadable expiry: treat as expired rather than serve it forever
    # float() also reads "nan" and "inf": no clock is ever past them, so such an entry
    # would be served and kept forever; we write finite times only
    return expires if math.isfinite(expires) else 0.0


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def decode_key(name: str, prefix: str) -> str:
    """The cache key an object name was made from (for tools and debugging)."""
    return unquote(name[len(prefix):])
