"""The call layer's pieces shared by its flows: the ops a flow yields to its runner
(look up, store, join a single flight, call upstream, notify), the prepared call, and
the timing and callback payload helpers. Split from ``semcache._calls`` (issue #22) so
that each flow can live in a module of its own."""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._clients import Endpoint


@dataclass(slots=True)
class _Begin:
    """Look requests up; the result is their outcomes, in order. An embedding call
    looks up each input item, concurrently on the async path."""

    cache: Any
    call_type: str
    requests: list[Mapping[str, Any]]


@dataclass(slots=True)
class _Finish:
    """Store fresh answers: ``(outcome, result)`` pairs."""

    cache: Any
    pairs: list[tuple[Any, Any]]


@dataclass(slots=True)
class _Join:
    """Join the single flight of an exact key: the result is a Lease (call upstream,
    then release it) or None (another caller's answer should be stored now)."""

    cache: Any
    key: str
    timeout: float


@dataclass(slots=True)
class _Call:
    kind: str
    endpoint: Endpoint
    params: dict[str, Any]
    call: Any = None  #: the _Prepared call, for the failure callbacks


@dataclass(slots=True)
class _Notify:
    payload: dict[str, Any]


_Flow = Generator[Any, Any, Any]


@dataclass(slots=True)
class _Prepared:
    call_type: str
    kind: str  #: chat | text | embedding | transcription
    is_async: bool
    endpoint: Endpoint
    params: dict[str, Any]  #: what the client's create() gets
    key_kwargs: dict[str, Any]  #: what the cache keys on
    user_kwargs: dict[str, Any]  #: for the callbacks (redacted)
    stream: bool = False
    include_usage: bool = False
    cache: Any = None  #: the Cache to consult (None: no caching)
    mock: Any = None  #: LiteLLM's mock_response: answered locally, never sent upstream
    started: float = field(default_factory=time.time)
    t0: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)
    key_type: str = ""  #: the call type the cache keys it under ("": call_type)


def _payload(call: _Prepared, response: Any, hidden: dict[str, Any]) -> _Notify:
    end = time.time()
    call.timings["total"] = (time.perf_counter() - call.t0) * 1000
    return _Notify({
        "call_type": call.call_type,
        "model": call.key_kwargs.get("model"),
        "kwargs": call.user_kwargs,
        "response": response,
        "start_time": call.started,
        "end_time": end,
        "timings_ms": dict(call.timings),
        "cache_hit": hidden["cache_hit"],
        "cache": hidden["cache"],
        "response_cost": hidden["response_cost"],
        "stream": call.stream,
    })


def _timed(call: _Prepared, name: str, t: float) -> None:
    call.timings[name] = call.timings.get(name, 0.0) + (time.perf_counter() - t) * 1000
