"""The LLM call layer: ``completion()`` and friends over the ``openai`` client, through
``semcache.cache``.

Each call is written once, as a generator (a *flow*) that yields the I/O it needs:
``_Begin`` (the cache lookup), ``_Call`` (the upstream request), ``_Finish`` (store the
fresh answer, reusing the lookup's key and embedding), ``_Notify`` (success callbacks).
``_run`` performs them synchronously and ``_arun`` awaits the async twins, so
``completion`` and ``acompletion`` share every line of logic, as the ``Cache`` does with
its pipeline. Whether a call reads or writes the cache (mode, ``cache={...}``,
``caching=False``, ``supported_call_types``) is decided by the ``Cache`` alone.

Responses are the ``openai`` client's own types; a hit is rebuilt from the stored JSON
with ``model_validate``. Every response carries ``_hidden_params``: ``cache_hit``,
``cache`` (the hit metadata; on misses too), ``response_cost`` (0.0 on hits).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from .._errors import IntegrityError
from .._flight import DEFAULT_WAIT_S, FLIGHTS, flight_key, redis_lock
from ._clients import (
    POOL,
    create_method,
    resolve_endpoint,
    strip_provider,
    upstream_params,
)
from ._embeddings import _embedding_flow, _split_usage  # noqa: F401 - tests use it
from ._litellm import (
    abegin,
    afinish,
    callback_args,
    finish,
    mock_result,
    wants_litellm_args,
)
from ._lookups import begin_all
from ._ops import (
    _Begin,
    _Call,
    _Finish,
    _Flow,
    _Join,
    _payload,
    _Prepared,
    _timed,
)
from ._responses import cost_of, hidden_params, hide_params, rebuild_hit
from ._responses_api import is_response
from ._responses_api import key_kwargs as responses_key
from ._streams import (
    Accumulator,
    AsyncStream,
    SyncStream,
    aiter_list,
    choices_of,
    replay_chunks,
)

__all__ = [
    "aclose_clients",
    "acompletion",
    "aembedding",
    "aresponses",
    "atext_completion",
    "atranscription",
    "close_clients",
    "completion",
    "embedding",
    "responses",
    "text_completion",
    "transcription",
]

log = logging.getLogger("semcache")


def _root() -> Any:
    import semcache  # the package: read ``cache`` and ``success_callback`` at call time

    return semcache


def _run(flow: _Flow) -> Any:
    result: Any = None
    try:
        while True:
            try:
                op = flow.send(result)
            except StopIteration as stop:
                return stop.value
            if isinstance(op, _Call):
                try:
                    result = create_method(POOL.sync(op.endpoint), op.kind)(**op.params)
                except Exception as err:
                    _notify_failure(op.call, err, None)
                    raise
            elif isinstance(op, _Begin):
                result = begin_all(op.cache, op.call_type, op.requests)
            elif isinstance(op, _Join):
                result = FLIGHTS.lead(flight_key(op.cache, op.key), op.timeout,
                                      redis_lock(op.cache, op.key))
            elif isinstance(op, _Finish):
                for outcome, value in op.pairs:
                    try:
                        finish(op.cache, outcome, value)
                    except Exception as exc:  # noqa: BLE001 - policy in _finish_failed
                        _finish_failed(op, exc)
                result = None
            else:
                _notify(op.payload, None)
                result = None
    finally:
        flow.close()


async def _arun(flow: _Flow) -> Any:
    result: Any = None
    try:
        while True:
            try:
                op = flow.send(result)
            except StopIteration as stop:
                return stop.value
            if isinstance(op, _Call):
                try:
                    client = await POOL.async_(op.endpoint)
                    result = await create_method(client, op.kind)(**op.params)
                except Exception as err:
                    pending: list[Any] = []
                    _notify_failure(op.call, err, pending)
                    await _await_all(pending)
                    raise
            elif isinstance(op, _Join):
                result = await FLIGHTS.alead(flight_key(op.cache, op.key), op.timeout,
                                             redis_lock(op.cache, op.key))
            elif isinstance(op, _Begin):
                if len(op.requests) == 1:
                    result = [await abegin(op.cache, op.call_type, op.requests[0])]
                else:
                    result = list(await asyncio.gather(
                        *(abegin(op.cache, op.call_type, kw) for kw in op.requests)))
            elif isinstance(op, _Finish):
                done = await asyncio.gather(
                    *(afinish(op.cache, outcome, value) for outcome, value in op.pairs),
                    return_exceptions=True)
                for exc in done:
                    if isinstance(exc, Exception):
                        _finish_failed(op, exc)
                result = None
            else:
                pending = []
                _notify(op.payload, pending)
                await _await_all(pending)
                result = None
    finally:
        flow.close()


async def _await_all(pending: list[Any]) -> None:
    for aw in pending:
        try:
            await aw
        except Exception:
            log.exception("semcache: a callback failed")


def _finish_failed(op: _Finish, exc: Exception) -> None:
    # The Cache fails open on backend faults itself; what can still raise is an answer
    # it cannot store (not JSON-serialisable). The caller has the answer: log, go on.
    if op.cache.on_error == "raise":
        raise exc
    log.warning("semcache: the response was not cached: %s: %s", type(exc).__name__, exc)


def _notify_failure(call: Any, exc: BaseException, pending: list[Any] | None) -> None:
    """Run ``semcache.failure_callback`` for a failed upstream call."""
    if call is None or not getattr(_root(), "failure_callback", None):
        return
    _notify({"call_type": call.call_type, "model": call.key_kwargs.get("model"),
             "kwargs": call.user_kwargs, "response": None, "start_time": call.started,
             "end_time": time.time(), "timings_ms": dict(call.timings), "cache_hit": False,
             "cache": None, "response_cost": None, "stream": call.stream,
             "exception": exc}, pending, "failure_callback")


def _notify(payload: dict[str, Any], pending: list[Any] | None,
            which: str = "success_callback") -> None:
    """Run ``semcache.success_callback`` (or ``failure_callback``) in either form (see
    ``semcache.success_callback``); a raising callback is logged, never raised."""
    for fn in list(getattr(_root(), which, None) or ()):
        try:
            out = fn(*callback_args(payload)) if wants_litellm_args(fn) else fn(payload)
        except Exception:
            log.exception("semcache: callback %r failed", fn)
            continue
        if inspect.isawaitable(out):
            if pending is not None:
                pending.append(out)
                continue
            try:  # an async callback on a sync call: run it to completion here
                asyncio.run(out)  # type: ignore[arg-type]
            except Exception:
                # e.g. a sync call made inside a running loop, where asyncio.run refuses
                log.exception("semcache: callback %r failed", fn)
                close = getattr(out, "close", None)
                if close is not None:
                    close()  # never leave a coroutine un-awaited behind


def _prepare(call_type: str, kind: str, kwargs: dict[str, Any]) -> _Prepared:
    model = strip_provider(kwargs.get("model"))
    # stream is how the answer travels, not what it is: a streamed and a plain request
    # share one entry (a hit is replayed as chunks), as in the proxy (issue #22)
    key_kwargs = {k: v for k, v in kwargs.items()
                  if k not in ("custom_llm_provider", "stream", "base_url")}
    key_kwargs["model"] = model
    # the server that answers is part of the key (_keys.ENDPOINT_PARAMS), resolved as
    # the client will resolve it: api_base, base_url, else OPENAI_BASE_URL
    endpoint = resolve_endpoint(kwargs)
    key_kwargs["api_base"] = endpoint.base_url
    send = {**kwargs, "model": model}
    stream = bool(kwargs.get("stream"))
    opts = kwargs.get("stream_options") or {}
    return _Prepared(call_type, kind, call_type.startswith("a"), endpoint,
                     upstream_params(kind, send), key_kwargs, _redact(kwargs), stream,
                     bool(opts.get("include_usage")) if isinstance(opts, Mapping) else False,
                     mock=kwargs.get("mock_response"))


def _redact(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if out.get("api_key"):
        out["api_key"] = "<redacted>"
    for h in ("headers", "extra_headers"):
        if isinstance(out.get(h), Mapping):
            out[h] = {k: ("<redacted>" if k.lower() in ("authorization", "api-key", "x-api-key")
                          else v) for k, v in out[h].items()}
    return out


# ---------------------------------------------------------------------- the flows
def _single_flow(call: _Prepared) -> _Flow:
    """chat, text completion and transcription: one request, one cached response."""
    cache = call.cache
    streamable = call.kind in ("chat", "text")  # responses streams: not cached
    outcome = None
    lease = None
    if cache is not None and not (call.stream and not streamable):
        t = time.perf_counter()
        (outcome,) = yield _Begin(cache, call.key_type or call.call_type, [call.key_kwargs])
        _timed(call, "cache", t)
        if not outcome.hit and not call.stream and call.mock is None \
                and outcome.reads and outcome.writes:
            # single-flight (_flight.py): an identical miss already in flight is waited
            # for, then looked up again, instead of calling upstream once more
            lease = yield _Join(cache, outcome.metadata["key"], _wait_s(call))
            if lease is None:
                (outcome,) = yield _Begin(cache, call.key_type or call.call_type, [call.key_kwargs])
                _timed(call, "cache", t)
        if outcome.hit:
            response = rebuild_hit(call.kind, outcome.entry)
            chunks: list[Any] = []
            if response is not None and call.stream:
                try:
                    chunks = replay_chunks(call.kind, response, call.include_usage)
                except IntegrityError as exc:  # a stored value another writer shaped
                    log.warning("semcache: cached value for %s cannot be replayed (%s); "
                                "calling upstream", outcome.metadata.get("key"), exc)
                    response = None
            if response is not None:
                hidden = hidden_params(call, True, outcome.metadata, response)
                hide_params(response, hidden)
                yield _payload(call, response, hidden)
                if call.stream:
                    src = aiter_list(chunks) if call.is_async else iter(chunks)
                    cls = AsyncStream if call.is_async else SyncStream
                    s = cls(src, None, None, hidden)
                    s.response = response
                    return s
                return response
    try:
        t = time.perf_counter()
        if call.mock is not None:
            result = _mocked(call)
        else:
            result = yield _Call(call.kind, call.endpoint, call.params, call)
        _timed(call, "upstream", t)
        meta = outcome.metadata if outcome is not None else None
        if call.stream and call.kind == "responses":
            return result  # the client's own event stream, not cached (docs/calls.md)
        if call.stream:
            return _stream_miss(call, cache, outcome, result, meta)
        hidden = hidden_params(call, False, meta, result)
        result = hide_params(result, hidden)
        if outcome is not None and (call.kind != "responses" or _completed(result)):
            t = time.perf_counter()
            yield _Finish(cache, [(outcome, result)])
            _timed(call, "store", t)
    finally:
        if lease is not None:  # stored (or failed): the waiters look up now
            lease.release()
    yield _payload(call, result, hidden)
    return result


def _completed(response: Any) -> bool:
    """A Response is stored only when complete, as the proxy stores them (the two share
    entries): not "incomplete" (cut at max_output_tokens), "queued" or "in_progress"
    (``background=True``), "failed" or "cancelled"."""
    return is_response({"object": getattr(response, "object", None),
                        "status": getattr(response, "status", None),
                        "output": getattr(response, "output", None),
                        "error": getattr(response, "error", None)})


def _wait_s(call: _Prepared) -> float:
    """How long a waiter waits for the leader: the call's own timeout, which bounds the
    leader's upstream call too."""
    t = call.endpoint.timeout  # checked (check_timeout); not in params, which the
    # upstream gets: the HTTP client takes it from the endpoint
    if isinstance(t, tuple):  # an httpx.Timeout's parts: the read bounds the answer
        t = t[1]
    return float(t) if isinstance(t, (int, float)) and t > 0 else DEFAULT_WAIT_S


def _mocked(call: _Prepared, n_inputs: int = 1) -> Any:
    """LiteLLM's mock_response, as the upstream would have sent it (chunks if streamed)."""
    response = mock_result(call.kind, call.key_kwargs.get("model"), call.mock, n_inputs)
    if not call.stream:
        return response
    chunks = replay_chunks(call.kind, response, call.include_usage)
    return aiter_list(chunks) if call.is_async else iter(chunks)


def _stream_miss(call: _Prepared, cache: Any, outcome: Any, upstream: Any, meta: Any) -> Any:
    hidden = hidden_params(call, False, meta, None)

    def done_flow(response: Any) -> _Flow:
        hidden["response_cost"] = cost_of(call, response.usage)
        hide_params(response, hidden)
        if outcome is not None:
            yield _Finish(cache, [(outcome, response)])
        yield _payload(call, response, hidden)

    acc = Accumulator(call.kind, choices_of(call.kind, call.key_kwargs))
    if call.is_async:
        return AsyncStream(upstream, acc, lambda r: _arun(done_flow(r)), hidden)
    return SyncStream(upstream, acc, lambda r: _run(done_flow(r)), hidden)


def _read_audio(file: Any) -> tuple[str | None, bytes]:
    """(file name, content) of every form the client accepts, read once."""
    if isinstance(file, (bytes, bytearray, memoryview)):
        return None, bytes(file)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return os.path.basename(os.fspath(file)), f.read()
    if isinstance(file, tuple):
        name, content = file[0], file[1]
        _, data = _read_audio(content)
        return name, data
    read = getattr(file, "read", None)
    if callable(read):
        data = read()
        name = getattr(file, "name", None)
        return (os.path.basename(name) if isinstance(name, str) else None), bytes(data)
    from .._errors import InvalidRequestError

    raise InvalidRequestError(f"file must be a path, bytes, a file object or a (name, "
                              f"bytes) tuple, got {type(file).__name__}")


# ---------------------------------------------------------------------- the public API
_KIND = {"completion": "chat", "acompletion": "chat", "text_completion": "text",
         "atext_completion": "text", "embedding": "embedding", "aembedding": "embedding",
         "transcription": "transcription", "atranscription": "transcription",
         "responses": "responses", "aresponses": "responses"}
_GLOBAL: Any = object()  #: "use semcache.cache"


def _flow(call_type: str, kwargs: dict[str, Any], cache: Any = _GLOBAL) -> _Flow:
    kind = _KIND[call_type]
    if kind != "transcription":
        call = _prepare(call_type, kind, kwargs)
    else:
        kwargs = dict(kwargs)
        name, data = _read_audio(kwargs.pop("file"))
        call = _prepare(call_type, kind, kwargs)
        # the key holds the audio's content (hashed to its SHA-256 by the key builder),
        # not the file's name; the upstream gets the name too, for format detection
        call.key_kwargs["file"] = data
        call.params["file"] = (name, data) if name else data
        call.user_kwargs["file"] = {"filename": name, "size": len(data),
                                    "sha256": hashlib.sha256(data).hexdigest()}
    if kind == "responses":
        # keyed as chat in a key space of its own (_responses_api.py), so the cache's
        # stages need no new call type; the call_type in _hidden_params stays ours
        call.key_kwargs = responses_key(call.key_kwargs)
        call.key_type = "acompletion" if call.is_async else "completion"
    call.cache = _root().cache if cache is _GLOBAL else cache
    return _embedding_flow(call) if kind == "embedding" else _single_flow(call)


def completion(model: str, messages: list[Any], **kwargs: Any) -> Any:
    """A chat completion (``ChatCompletion``, or an iterator of ``ChatCompletionChunk``
    with ``stream=True``), served from ``semcache.cache`` when it can be."""
    return _run(_flow("completion", {"model": model, "messages": messages, **kwargs}))


async def acompletion(model: str, messages: list[Any], **kwargs: Any) -> Any:
    return await _arun(_flow("acompletion", {"model": model, "messages": messages, **kwargs}))


def text_completion(model: str, prompt: Any, **kwargs: Any) -> Any:
    """A legacy completion (``Completion``; chunks with ``stream=True``)."""
    return _run(_flow("text_completion", {"model": model, "prompt": prompt, **kwargs}))


async def atext_completion(model: str, prompt: Any, **kwargs: Any) -> Any:
    return await _arun(_flow("atext_completion", {"model": model, "prompt": prompt, **kwargs}))


def responses(model: str, input: Any, **kwargs: Any) -> Any:
    """OpenAI's Responses API (``client.responses.create``) through the cache: the
    latest user input is the query; instructions, previous_response_id, tools and the
    output parameters are context. Streams (``stream=True``) pass through uncached."""
    return _run(_flow("responses", {"model": model, "input": input, **kwargs}))


async def aresponses(model: str, input: Any, **kwargs: Any) -> Any:
    return await _arun(_flow("aresponses", {"model": model, "input": input, **kwargs}))


def embedding(model: str, input: Any, **kwargs: Any) -> Any:
    """Embeddings (``CreateEmbeddingResponse``); each input item is cached on its own."""
    return _run(_flow("embedding", {"model": model, "input": input, **kwargs}))


async def aembedding(model: str, input: Any, **kwargs: Any) -> Any:
    return await _arun(_flow("aembedding", {"model": model, "input": input, **kwargs}))


def transcription(model: str, file: Any, **kwargs: Any) -> Any:
    """An audio transcription, cached by the audio's content (SHA-256), not its name."""
    return _run(_flow("transcription", {"model": model, "file": file, **kwargs}))


async def atranscription(model: str, file: Any, **kwargs: Any) -> Any:
    return await _arun(_flow("atranscription", {"model": model, "file": file, **kwargs}))


def close_clients() -> None:
    """Close the pooled sync clients (they are rebuilt on the next call)."""
    POOL.close()


async def aclose_clients() -> None:
    """Close the running event loop's pooled async clients."""
    await POOL.aclose()
