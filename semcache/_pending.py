"""``Pending``: one request's way through the cache, from its lookup to the store of its answer.

``cache.begin(call_type, **request)`` runs the lookup and returns a ``Pending``: on a hit
``.value`` is the cached response; on a miss the caller gets the answer elsewhere (the
LLM) and hands it to ``.store(result)``, which reuses what the lookup computed (the key,
the semantic split, the query's embedding) instead of computing it again. This is the
pipeline's public interface: the call layer, the proxy and the evaluation use it, and
nothing outside the pipeline's modules touches its privates (tests/test_pipeline_api.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import InvalidRequestError

if TYPE_CHECKING:
    from ._pipeline import Pipeline, Request

__all__ = ["CacheHit", "Pending"]


@dataclass(slots=True)
class CacheHit:
    """A value served from the cache, with the metadata of how it was found."""

    value: Any
    kind: str | None
    metadata: dict[str, Any]

    @property
    def stage(self) -> str:
        stage: str = self.metadata["stage"]
        return stage

    @property
    def similarity(self) -> float:
        similarity: float = self.metadata["similarity"]
        return similarity

    @property
    def key(self) -> str:
        key: str = self.metadata["key"]
        return key


class Pending:
    """The outcome of ``Cache.begin``: the lookup's result, and the store still to come.

    - ``hit``: whether the cache served the request; ``value`` is then the cached
      response (None on a miss) and ``entry`` the ``CacheHit`` (value, kind, metadata).
    - ``metadata``: the hit or miss metadata (stage, similarity, key, timings_ms, ...;
      see docs/calls.md), the same dict a response's ``_hidden_params["cache"]`` holds.
    - ``store(result)`` / ``await astore(result)``: store the fresh answer (at most once;
      a second store raises ``InvalidRequestError``). It does nothing when the request
      may not be stored (``no-store``, ``ttl=0``, ``caching=False``, an unsupported
      call type) and returns the key it stored under, or None.
    """

    __slots__ = ("_cache", "_request", "_stored", "entry", "metadata")

    def __init__(self, cache: Pipeline, request: Request, entry: CacheHit | None,
                 metadata: dict[str, Any]) -> None:
        self._cache = cache
        self._request = request
        self._stored = False
        self.entry = entry
        self.metadata = metadata

    @property
    def hit(self) -> bool:
        return self.entry is not None

    @property
    def value(self) -> Any:
        return None if self.entry is None else self.entry.value

    @property
    def key(self) -> str:
        """The request's exact key ("" when the cache neither reads nor writes it)."""
        return self._request.key

    @property
    def call_type(self) -> str:
        return self._request.call_type

    @property
    def request(self) -> Mapping[str, Any]:
        """The request as the cache keys it (after key_include / key_exclude)."""
        return self._request.kwargs

    @property
    def reads(self) -> bool:
        """Whether the lookup consulted the cache (False: skipped by the controls)."""
        return self._request.read

    @property
    def writes(self) -> bool:
        """Whether ``store`` will write (False: ``no-store``, ``ttl=0``, disabled)."""
        return self._request.write

    @property
    def errors(self) -> list[str]:
        """Backend faults met so far (lookup and store), as ``"component: error"``."""
        return self._request.errors

    def store(self, result: Any) -> str | None:
        """Store the fresh answer for this request; its key, or None if not stored."""
        self._claim()
        try:
            key = self._cache._drive(self._cache._store_flow(self._request, result),
                                     self._request)
        except BaseException:
            self._stored = False  # nothing was stored (e.g. not JSON): it may be retried
            raise
        return key

    async def astore(self, result: Any) -> str | None:
        self._claim()
        try:
            key = await self._cache._adrive(self._cache._store_flow(self._request, result),
                                            self._request)
        except BaseException:
            self._stored = False
            raise
        return key

    def _claim(self) -> None:
        # a second store would judge an explored candidate twice and count the store
        # twice: it is a caller's bug, said as such rather than silently done
        if self._stored:
            raise InvalidRequestError(
                f"this Pending was already stored (key {self._request.key!r}); call "
                "cache.begin() again to store another answer for the request")
        self._stored = True

    def __repr__(self) -> str:
        return (f"Pending(hit={self.hit}, stage={self.metadata.get('stage')!r}, "
                f"key={self._request.key!r})")
