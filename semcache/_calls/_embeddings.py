"""The embedding flow: each input item cached on its own (issue #21), only the missing
items sent upstream, the response reassembled in input order. Split from
``semcache._calls`` (issue #22) to keep that module under its size target."""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from typing import Any

import numpy as np
import orjson

from .._errors import InvalidRequestError
from .._keys import custom_key
from ._litellm import mock_result, overridden
from ._ops import _Begin, _Call, _Finish, _Flow, _payload, _Prepared, _timed
from ._responses import hidden_params, hide_params
from ._streams import build

log = logging.getLogger("semcache")
_TOKEN = re.compile(r"\w+|[^\w\s]")
#: a stored int at or above this is no token count nor vector component: the sums a
#: batch reports, and what the proxy encodes, stay in the 64-bit ints orjson writes
_MAX_COUNT = 2**53


def stored_problem(value: Any, n: int, b64: bool) -> str | None:
    """Why ``value``, read back from a cache, cannot be served as an embeddings answer of
    ``n`` rows; None when it can. Shared by ``embedding()`` and the proxy, whose entries
    are one another's: another writer (``add_cache``, an older version, a process with
    access to the backend) may have stored any JSON under an item's key.

    An answer is an object without ``error`` whose ``data`` holds ``n`` objects, each
    with an ``embedding`` that is a non-empty list of finite numbers or, when the
    request asked for ``encoding_format="base64"`` (``b64``), a base64 string of float32s
    (a list is served for it too: servers that ignore the format answer one); the rows'
    ``index``, where given, number the items. ``model`` is a string if there; ``usage``,
    if there, an object whose ``prompt_tokens`` and ``total_tokens`` are counts if there.
    A row's other fields are served as they are: they must encode as JSON."""
    if not isinstance(value, dict):
        return f"a {type(value).__name__}, not an object"
    if "error" in value:
        return "an error object"
    data = value.get("data")
    if not isinstance(data, list) or len(data) != n:
        return f"data is not a list of {n} row{'s' * (n != 1)}"
    for i, row in enumerate(data):
        why = _row_problem(row, b64)
        if why is not None:
            return f"data[{i}] {why}"
    if sorted(row.get("index", i) for i, row in enumerate(data)) != list(range(n)):
        return "the rows' indices are not those of the request's items"
    if not isinstance(value.get("model"), (str, type(None))):
        return "model is not a string"
    usage = value.get("usage")
    if usage is not None:
        if not isinstance(usage, dict):
            return "usage is not an object"
        for name in ("prompt_tokens", "total_tokens"):
            if usage.get(name) is not None and _count(usage[name]) is None:
                return f"usage.{name} is not a token count"
    return None


def _row_problem(row: Any, b64: bool) -> str | None:
    if not isinstance(row, dict):
        return "is not an object"
    emb = row.get("embedding")
    if isinstance(emb, str) and b64:
        if not _float32s(emb):
            return "embedding is not a base64 string of finite float32s"
    elif not isinstance(emb, list) or not _numbers(emb):
        return "embedding is not a non-empty list of finite numbers"
    if type(row.get("index", 0)) is not int:
        return "index is not an integer"
    if row.get("object", "embedding") != "embedding":
        return "object is not 'embedding'"
    extra = {k: v for k, v in row.items() if k not in ("embedding", "index", "object")}
    if extra:
        try:  # served as they are, at the depth a reply nests them
            orjson.dumps([[extra]])
        except (orjson.JSONEncodeError, TypeError):
            return "has a field JSON cannot encode"
    return None


def _numbers(v: list[Any]) -> bool:
    types = set(map(type, v))
    if not v or not types <= {float, int}:  # a bool, a str, None, a list: no vector
        return False
    if int in types and not all(abs(x) < _MAX_COUNT for x in v if type(x) is int):
        return False
    return bool(np.isfinite(np.asarray(v, dtype=np.float64)).all())


def _float32s(s: str) -> bool:
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a str that is not ASCII
        return False
    return bool(raw) and len(raw) % 4 == 0 and bool(
        np.isfinite(np.frombuffer(raw, dtype="<f4")).all())


def _count(v: Any) -> int | None:
    return v if type(v) is int and 0 <= v < _MAX_COUNT else None


def _stored(call: _Prepared, hit: Any, n: int) -> Any:
    """The hit as a ``CreateEmbeddingResponse`` of ``n`` rows, or None (logged: the item
    goes upstream, and the fresh answer replaces the entry) when it cannot be one.
    Without ``model`` it is the request's; without ``usage``, zero tokens."""
    from openai.types import CreateEmbeddingResponse

    value = hit.value
    if hasattr(value, "model_dump"):  # what an overridden get_cache returned as is
        value = value.model_dump(mode="json", warnings=False)
    why = stored_problem(value, n, call.key_kwargs.get("encoding_format") == "base64")
    if why is not None:
        log.warning("semcache: cached value for %s is not an embeddings answer (%s); "
                    "calling upstream", hit.key, why)
        return None
    usage = value.get("usage") or {}
    # build: validated, or constructed as the client does (base64 rows are str)
    return build(CreateEmbeddingResponse, {
        **value, "object": "list", "model": value.get("model") or call.key_kwargs.get("model"),
        "data": [{"object": "embedding", "index": i, **row} for i, row in enumerate(value["data"])],
        "usage": {name: _count(usage.get(name)) or 0
                  for name in ("prompt_tokens", "total_tokens")}})


def _split_usage(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder: sums exactly)."""
    w = [max(1, x) for x in weights]
    s = sum(w)
    raw = [total * x / s for x in w]
    out = [int(r) for r in raw]
    for i in sorted(range(len(w)), key=lambda i: raw[i] - out[i], reverse=True)[
            :total - sum(out)]:
        out[i] += 1
    return out


def _embedding_items(value: Any) -> list[Any]:
    """The input's items: a str or one list of token ids is one item."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(x, int) for x in value):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _embedding_flow(call: _Prepared) -> _Flow:
    """Each input item is cached on its own (key: the request with ``input=[item]``);
    only the missing items go upstream, in order, and the response is reassembled."""
    from openai.types import CreateEmbeddingResponse

    cache = call.cache
    items = _embedding_items(call.key_kwargs.get("input"))
    if not items:  # OpenAI answers a 400; no call is made for nothing to embed
        raise InvalidRequestError("input must not be empty: give a string, a list of "
                                  "strings or a list of token lists")
    if cache is not None and len(items) > 1 and (
            custom_key(call.key_kwargs) is not None or overridden(cache, "get_cache_key")):
        # a key the caller chose names the request's answer, as it does for a chat: it
        # cannot name each item, or every item would share one entry and a repeat would
        # serve the last item's vector for all of them
        return (yield from _whole_flow(call, len(items)))
    outcomes: list[Any] = [None] * len(items)
    served: dict[int, Any] = {}
    if cache is not None:
        t = time.perf_counter()
        outcomes = yield _Begin(cache, call.call_type,
                                [{**call.key_kwargs, "input": [item]} for item in items])
        for i, outcome in enumerate(outcomes):
            if outcome.hit:
                r = _stored(call, outcome.entry, 1)
                if r is not None:
                    served[i] = r
        _timed(call, "cache", t)
    missing = [i for i in range(len(items)) if i not in served]
    fresh = None
    per_item: dict[int, Any] = dict(served)
    if missing:
        params = call.params if not served else {
            **call.params, "input": [items[i] for i in missing]}
        t = time.perf_counter()
        if call.mock is not None:
            fresh = mock_result("embedding", call.key_kwargs.get("model"), call.mock,
                                len(missing))
        else:
            fresh = yield _Call("embedding", call.endpoint, params, call)
        _timed(call, "upstream", t)
        data = sorted(fresh.data, key=lambda d: d.index)
        if [d.index for d in data] != list(range(len(missing))):
            # rows dropped, repeated or renumbered: no row can be told to be an item's
            if served:
                from .._errors import BackendError

                raise BackendError(
                    f"the upstream answered {len(data)} embeddings (indices "
                    f"{[d.index for d in data][:10]}) for {len(missing)} inputs; the batch "
                    f"cannot be put together with the cached ones", backend="upstream")
            log.warning("semcache: the upstream answered %d embeddings for %d inputs; "
                        "not cached", len(data), len(missing))
            hidden = {**hidden_params(call, False, None, fresh), "cache_hits": 0}
            hide_params(fresh, hidden)
            yield _payload(call, fresh, hidden)
            return fresh
        usage = fresh.usage
        weights = [len(_TOKEN.findall(items[i])) if isinstance(items[i], str)
                   else len(items[i]) for i in missing]
        p_split = _split_usage(usage.prompt_tokens if usage else 0, weights)
        t_split = _split_usage(usage.total_tokens if usage else 0, weights)
        for j, i in enumerate(missing):
            # build: validate, or construct as the client does for what it accepted
            # unvalidated (encoding_format="base64" gives str embeddings)
            per_item[i] = build(CreateEmbeddingResponse, {
                "object": "list", "model": fresh.model,
                "data": [{**data[j].model_dump(mode="json", warnings=False), "index": 0}],
                "usage": {"prompt_tokens": p_split[j], "total_tokens": t_split[j]}})
        if cache is not None:
            t = time.perf_counter()
            yield _Finish(cache, [(outcomes[i], per_item[i]) for i in missing])
            _timed(call, "store", t)
    if fresh is not None and not served:
        response = fresh  # nothing came from the cache: the upstream response as it was
    else:
        first = per_item[0]
        response = build(CreateEmbeddingResponse, {
            "object": "list", "model": fresh.model if fresh is not None else first.model,
            "data": [{**per_item[i].data[0].model_dump(mode="json", warnings=False), "index": i}
                     for i in range(len(items))],
            "usage": {name: sum(getattr(per_item[i].usage, name) for i in range(len(items)))
                      for name in ("prompt_tokens", "total_tokens")}})
    all_hit = bool(items) and len(served) == len(items)
    metas = [o.metadata if o is not None else None for o in outcomes]
    if cache is None:
        meta: Any = None
    elif len(items) == 1:
        meta = metas[0]
    else:
        meta = {"stage": "exact" if all_hit else ("partial" if served else "miss"),
                "cache_hit": all_hit, "hits": len(served), "misses": len(missing),
                "items": metas}
    hidden = hidden_params(call, all_hit, meta, fresh)
    # LiteLLM's meaning: True when any item came from the cache (the cost above is
    # still that of the missing items; cache_hits and cache["stage"] tell them apart)
    hidden["cache_hit"] = bool(served)
    hidden["cache_hits"] = len(served)  # a partial hit pays for the missing items only
    hide_params(response, hidden)
    yield _payload(call, response, hidden)
    return response


def _whole_flow(call: _Prepared, n: int) -> _Flow:
    """A batch under a custom key: one entry for the whole response. A stored response
    with another number of vectors is no answer to this batch (a caller zips its inputs
    with ``data``): it is a miss, and the fresh response replaces it."""
    cache = call.cache
    t = time.perf_counter()
    (outcome,) = yield _Begin(cache, call.call_type, [call.key_kwargs])
    _timed(call, "cache", t)
    if outcome.hit:
        r = _stored(call, outcome.entry, n)
        if r is not None:
            hidden = hidden_params(call, True, outcome.metadata, r)
            hidden["cache_hits"] = n
            hide_params(r, hidden)
            yield _payload(call, r, hidden)
            return r
    t = time.perf_counter()
    if call.mock is not None:
        fresh = mock_result("embedding", call.key_kwargs.get("model"), call.mock, n)
    else:
        fresh = yield _Call("embedding", call.endpoint, call.params, call)
    _timed(call, "upstream", t)
    hidden = hidden_params(call, False, outcome.metadata, fresh)
    hidden["cache_hits"] = 0
    hide_params(fresh, hidden)
    t = time.perf_counter()
    yield _Finish(cache, [(outcome, fresh)])
    _timed(call, "store", t)
    yield _payload(call, fresh, hidden)
    return fresh
