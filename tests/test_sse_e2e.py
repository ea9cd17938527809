"""The call layer and the proxy replay a stored stream alike, end to end (issue #19):
the same upstream stream (with logprobs and usage) stored by each, then replayed on a
hit by ``semcache.completion(stream=True)`` and by ``semcache serve`` over HTTP, gives
the same chunk sequence, which carries what the upstream sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import semcache
from semcache import Cache
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import MASTER, Proxies, ask, close_clients, openai_client

Q = "Name three rivers that flow through Paris, please."
ARGS: dict[str, Any] = {"stream": True, "logprobs": True,
                        "stream_options": {"include_usage": True}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    return value


def _norm(chunks: list[Any]) -> list[dict[str, Any]]:
    """Chunks as JSON, without what differs by who asked (the id and time of the
    upstream call, the model name the client used). Usage is compared without nulls:
    the call layer stores the SDK's whole usage object, whose optional detail fields
    the upstream did not send (null there, absent in the proxy's stored JSON)."""
    out = []
    for c in chunks:
        d = c.model_dump(mode="json", exclude_unset=True, warnings=False)
        for k in ("id", "created", "model"):
            d.pop(k, None)
        if d.get("usage") is not None:
            d["usage"] = _no_nulls(d["usage"])
        out.append(d)
    return out


def _spelled(chunks: list[dict[str, Any]]) -> tuple[str, list[Any], list[Any], Any]:
    """(content, logprob entries, finish reasons, usage) that a chunk sequence carries."""
    text, lps, finish, usage = "", [], [], None
    for c in chunks:
        usage = c.get("usage") or usage
        for ch in c.get("choices") or ():
            text += (ch.get("delta") or {}).get("content") or ""
            lps += ((ch.get("logprobs") or {}).get("content") or [])
            if ch.get("finish_reason"):
                finish.append(ch["finish_reason"])
    return text, lps, finish, usage


def test_call_layer_and_proxy_replay_one_stored_stream_alike(fake: FakeOpenAI) -> None:
    old = semcache.cache
    semcache.cache = Cache(type="local")
    proxies = Proxies(fake.base_url)
    try:
        kw = {"api_base": fake.base_url, "api_key": "sk-test"}
        first = list(semcache.completion(model="gpt-4o-mini", messages=ask(Q), **ARGS, **kw))
        again = semcache.completion(model="gpt-4o-mini", messages=ask(Q), **ARGS, **kw)
        call_hit = list(again)
        assert again._hidden_params["cache_hit"] is True

        client = openai_client(proxies.start().base_url, MASTER)
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=ask(Q), **ARGS)
        assert raw.headers["x-semcache-stage"] == "miss"
        list(raw.parse())
        raw = client.chat.completions.with_raw_response.create(
            model="chat", messages=ask(Q), **ARGS)
        assert raw.headers["x-semcache-stage"] == "exact"
        proxy_hit = list(raw.parse())
        assert fake.calls["chat/completions"] == 2  # one upstream call each
    finally:
        semcache.cache = old
        proxies.stop()
        close_clients()

    assert _norm(call_hit) == _norm(proxy_hit)
    upstream = _spelled(_norm(first))
    text, lps, finish, usage = _spelled(_norm(call_hit))
    assert (text, lps, finish, usage) == upstream
    assert lps and [x["token"] for x in lps] != [] and "".join(x["token"] for x in lps) == text
    assert finish == ["stop"] and usage["total_tokens"] > 0
