"""The embedding flow: each input item cached on its own (issue #21), only the missing
items sent upstream, the response reassembled in input order. Split from
``semcache._calls`` (issue #22) to keep that module under its size target."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from .._keys import custom_key
from ._litellm import mock_result, overridden
from ._ops import _Begin, _Call, _Finish, _Flow, _payload, _Prepared, _timed
from ._responses import hidden_params, hide_params, rebuild_hit
from ._streams import build

log = logging.getLogger("semcache")
_TOKEN = re.compile(r"\w+|[^\w\s]")


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
                r = rebuild_hit("embedding", outcome.entry)
                if r is not None and len(r.data) == 1:
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
        r = rebuild_hit("embedding", outcome.entry)
        if r is not None and len(r.data) == n:
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
