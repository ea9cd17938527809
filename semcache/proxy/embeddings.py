"""``/v1/embeddings`` cached per input item, as the library caches it (issue #22).

Keyed per item, each entry is the request with ``input=[item]`` (the library's key, so
``semcache.embedding()`` and the proxy share entries) holding a one-row response
(``index`` 0, the item's share of the usage). A request looks every item up at once;
only the missing items go upstream, in one request, in their order; the reply is
reassembled in the client's order with summed usage. A reply that came wholly from the
upstream is relayed as it came. ``x-semcache-stage`` is ``exact``/``semantic`` when
every item was served, ``partial`` when some were, ``miss`` when none.

Not per item: a request with a granted ``cache_key`` (it names one entry).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from starlette.responses import Response

from .._calls._embeddings import stored_problem
from .._errors import ConfigError
from .answers import storable
from .permissions import bad_control
from .replies import Reply, json_response, semcache_headers

if TYPE_CHECKING:
    from .._pending import Pending
    from .app import ProxyApp
    from .config import Deployment

__all__ = ["embed_per_item", "items_of"]

log = logging.getLogger("semcache.proxy")
_TOKEN = re.compile(r"\w+|[^\w\s]")  # the library's usage split (_calls._TOKEN)


def items_of(value: Any) -> list[Any] | None:
    """The input's items (a str or one list of token ids is one item); None when the
    shape is not one the cache keys per item (the whole request is keyed instead)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(x, int) for x in value):
            return [value]
        if all(isinstance(x, str) or (isinstance(x, list) and
                                      all(isinstance(t, int) for t in x)) for x in value):
            return list(value)
    return None


def _split(total: int, weights: list[int]) -> list[int]:
    """``total`` in proportion to ``weights`` (largest remainder: sums exactly)."""
    w = sum(weights) or len(weights)
    weights = weights if sum(weights) else [1] * len(weights)
    raw = [total * x / w for x in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[:total - sum(out)]:
        out[i] += 1
    return out


async def embed_per_item(app: ProxyApp, body: dict[str, Any], kwargs: dict[str, Any],
                         items: list[Any], dep: Deployment, model: str, ns: str,
                         nearest: bool, t0: float) -> Response:
    cache = app.cache
    assert cache is not None
    try:
        outcomes: list[Pending] = list(await asyncio.gather(
            *(cache.abegin("aembedding", **{**kwargs, "input": [item]}) for item in items)))
    except ConfigError as exc:  # bad per-request controls: the client's to fix
        raise bad_control(exc) from None
    b64 = body.get("encoding_format") == "base64"
    served = {i: o for i, o in enumerate(outcomes) if o.hit and _servable(o, b64)}
    missing = [i for i in range(len(items)) if i not in served]
    metas = [o.metadata for o in outcomes]
    if not missing:
        stages = {o.metadata["stage"] for o in served.values()}
        stage = "exact" if stages == {"exact"} else "semantic"
        value = _assemble(items, {i: o.value for i, o in served.items()}, None)
        headers = semcache_headers(metas[0] if len(items) == 1 else None, stage)
        headers["x-semcache-stage"] = stage
        app.stats.record(endpoint="embeddings", model=model, namespace=ns, stage=stage,
                         seconds=time.perf_counter() - t0, meta=metas[0], value=value)
        return json_response(value, 200, headers)

    upstream = {**body, "model": dep.model}
    if served:
        upstream["input"] = [items[i] for i in missing]
    url, up_headers = app._upstream_request("embeddings", dep)
    up_headers["content-type"] = "application/json"
    stage = "partial" if served else "miss"
    headers = semcache_headers(metas[0] if len(items) == 1 else None,
                               "miss", nearest=nearest)
    headers["x-semcache-stage"] = stage
    try:
        r = await app._client().post(url, content=orjson.dumps(upstream),
                                     headers=up_headers, timeout=app._timeout(dep))
    except httpx.HTTPError as exc:
        return app._upstream_failed(exc, "embeddings", model, ns, headers, t0)
    app.stats.upstream(r.status_code)
    ctype = r.headers.get("content-type", "application/json")
    fresh = storable("embeddings", r.status_code, ctype, r.content)
    rows = _rows(fresh, len(missing))
    if rows is None:  # an error or not an embeddings answer: relayed, nothing stored
        app.stats.record(endpoint="embeddings", model=model, namespace=ns,
                         stage="error" if r.status_code >= 400 else stage,
                         seconds=time.perf_counter() - t0, meta=None)
        if served and r.status_code < 400:
            raise Reply(502, "the upstream's embeddings answer does not have one row per "
                        "input item", "api_error", "upstream_invalid")
        return Response(r.content, r.status_code, headers=headers, media_type=ctype)
    assert fresh is not None
    usage = fresh.get("usage") if isinstance(fresh.get("usage"), dict) else {}
    weights = [len(_TOKEN.findall(items[i])) if isinstance(items[i], str) else len(items[i])
               for i in missing]
    p_split = _split(_int(usage.get("prompt_tokens")), weights)
    t_split = _split(_int(usage.get("total_tokens")), weights)
    per_item: dict[int, Any] = {}
    for j, i in enumerate(missing):
        per_item[i] = {"object": "list", "model": fresh.get("model"),
                       "data": [{**rows[j], "index": 0}],
                       "usage": {"prompt_tokens": p_split[j], "total_tokens": t_split[j]}}
        if outcomes[i].writes:
            await app._store(outcomes[i], per_item[i])
    app.stats.record(endpoint="embeddings", model=model, namespace=ns, stage=stage,
                     seconds=time.perf_counter() - t0, meta=metas[0],
                     errors=[e for o in outcomes for e in o.errors])
    if not served:  # all from the upstream: relayed as it came
        return Response(r.content, r.status_code, headers=headers, media_type=ctype)
    per_item.update({i: o.value for i, o in served.items()})
    return json_response(_assemble(items, per_item, fresh.get("model")), 200, headers)


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _servable(outcome: Pending, b64: bool) -> bool:
    """Whether a hit's stored value is one item's answer that ``_assemble`` can serve.
    Another writer may have stored anything under the item's key: what is not an answer
    is a logged miss (the item goes upstream and the fresh row replaces the entry),
    never a 500 or a malformed reply, as a chat hit's is (``ProxyApp._hit``)."""
    why = stored_problem(outcome.value, 1, b64)
    if why is not None:
        log.warning("stored value for %s is not an embeddings answer (%s); asking upstream",
                    outcome.metadata.get("key"), why)
    return why is None


def _rows(value: Any, n: int) -> list[dict[str, Any]] | None:
    """The answer's rows in input order, or None unless there is exactly one per item."""
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        return None
    data = value["data"]
    idx = [d.get("index") for d in data]
    if len(data) != n or sorted(i for i in idx if isinstance(i, int)) != list(range(n)):
        return None
    return sorted(data, key=lambda d: d["index"])


def _assemble(items: list[Any], per_item: dict[int, Any], model: Any) -> dict[str, Any]:
    first = per_item[0]
    return {
        "object": "list",
        "model": model if model is not None else first.get("model"),
        "data": [{**per_item[i]["data"][0], "index": i} for i in range(len(items))],
        "usage": {name: sum(_int((per_item[i].get("usage") or {}).get(name))
                            for i in range(len(items)))
                  for name in ("prompt_tokens", "total_tokens")},
    }
