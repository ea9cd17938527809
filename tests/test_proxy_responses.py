"""``/v1/responses`` through the proxy (issue #22): cached in both stages, streaming
too, with instructions, previous_response_id, tools and the output format in the
context, through the same auth and answer checks as chat."""

from __future__ import annotations

import httpx
import openai
import pytest

from semcache import Cache
from semcache._calls._responses_api import is_response, key_kwargs
from semcache.embedders.batching import BatchingEmbedder
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import KEY_A, MASTER, openai_client

Q = "What is the capital of France?"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def semantic_cache(minilm):
    cache = Cache(type="faiss-semantic", embedder=BatchingEmbedder(minilm),
                  similarity_threshold=0.85, verifier=None)
    yield cache
    cache.close()


def client(proxy, key: str = MASTER) -> openai.OpenAI:
    return openai_client(proxy.url + "/v1", key)


def create(c: openai.OpenAI, **kw):
    raw = c.responses.with_raw_response.create(model="chat", **kw)
    return raw.parse(), raw.headers["x-semcache-stage"]


def test_responses_are_cached_exact_and_semantic(proxies, fake, semantic_cache):
    c = client(proxies.start(cache=semantic_cache))
    r1, s1 = create(c, input=Q)
    assert s1 == "miss" and r1.output_text == f"echo: {Q}"
    r2, s2 = create(c, input=Q)
    assert s2 == "exact" and r2.output_text == r1.output_text
    # the latest user input is the query: the same question in other words (and as a
    # list of input items) is a semantic hit
    r3, s3 = create(c, input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what is the capital of france"}]}])
    assert s3 == "semantic" and r3.output_text == r1.output_text
    assert fake.calls["responses"] == 1


@pytest.mark.parametrize("change", [
    {"instructions": "Answer in French."},
    {"previous_response_id": "resp_other"},
    {"tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]},
    {"text": {"format": {"type": "json_object"}}},
    {"max_output_tokens": 3},
])
def test_context_fields_never_cross(proxies, fake, semantic_cache, change):
    c = client(proxies.start(cache=semantic_cache))
    create(c, input=Q)
    _, stage = create(c, input=Q, **change)
    assert stage == "miss"
    assert fake.calls["responses"] == 2


def test_streams_are_stored_and_replayed_and_share_with_plain(proxies, fake):
    c = client(proxies.start())
    with c.responses.stream(model="chat", input="stream this") as s:
        for _ in s:
            pass
        first = s.get_final_response()
    plain = httpx.post(str(c.base_url) + "responses", headers={
        "Authorization": f"Bearer {MASTER}"}, json={"model": "chat", "input": "stream this"})
    assert plain.headers["x-semcache-stage"] == "exact"
    assert plain.json()["output"][0]["content"][0]["text"] == first.output_text
    with c.responses.stream(model="chat", input="stream this") as s:
        types = [ev.type for ev in s]
        again = s.get_final_response()
    assert "response.output_text.delta" in types and types[-1] == "response.completed"
    assert again.output_text == first.output_text == "echo: stream this"
    assert fake.calls["responses"] == 1


def test_chat_and_responses_never_share_entries(proxies, fake):
    c = client(proxies.start())
    create(c, input=Q)
    r = c.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": Q}])
    assert r.headers["x-semcache-stage"] == "miss"
    assert r.parse().choices[0].message.content == f"echo: {Q}"


def test_responses_need_a_key_and_respect_namespaces(proxies, fake):
    p = proxies.start()
    r = httpx.post(p.url + "/v1/responses", json={"model": "chat", "input": Q})
    assert r.status_code == 401
    create(client(p, KEY_A), input=Q)
    _, stage = create(client(p), input=Q)  # the master key's default namespace
    assert stage == "miss"


def test_only_completed_responses_are_answers():
    assert is_response({"object": "response", "status": "completed", "output": []})
    for status in ("in_progress", "incomplete", "failed", "queued"):
        assert not is_response({"object": "response", "status": status, "output": []})
    assert not is_response({"object": "chat.completion", "status": "completed",
                            "output": []})


def test_keys_keep_every_item_apart():
    a = key_kwargs({"model": "m", "input": "hi"})
    b = key_kwargs({"model": "m", "input": [{"role": "user", "content": "hi"}]})
    assert a == b  # the same request, two spellings
    c = key_kwargs({"model": "m", "input": [
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
        {"role": "user", "content": "hi"}]})
    assert c["messages"][0]["role"] == "$item" and c != a
    assert a["$api"] == "responses" and "stream" not in key_kwargs(
        {"model": "m", "input": "x", "stream": True})


def test_proxy_and_library_share_responses_entries(proxies, fake):
    import semcache

    # "solo": a model in no caching group, so the library's key (model name) is the
    # proxy's (a group's members are keyed by the group)
    c = client(proxies.start())
    r1 = c.responses.create(model="solo", input=Q, instructions="Be brief.")
    p_cache = proxies.running[-1].state.cache
    old = semcache.cache
    semcache.cache = p_cache
    try:
        r2 = semcache.responses(model="solo", input=Q, instructions="Be brief.",
                                api_base=fake.base_url, api_key="sk")
        semcache.responses(model="solo", input="from the library", api_base=fake.base_url,
                           api_key="sk")
    finally:
        semcache.cache = old
    assert r2._hidden_params["cache_hit"] is True and r2.output_text == r1.output_text
    raw = c.responses.with_raw_response.create(model="solo", input="from the library")
    assert raw.headers["x-semcache-stage"] == "exact" and fake.calls["responses"] == 2


def test_a_turn_in_a_conversation_is_never_served_even_when_the_client_asks(proxies, fake):
    """A conversation is server-side state each turn appends to: the library neither
    looks such a turn up nor stores it, and a client's own ``caching: true`` must not
    switch that back on through the proxy (it was applied after the key's bypass)."""
    c = client(proxies.start())
    before = fake.calls.get("responses", 0)
    for _ in range(2):
        _, stage = create(c, input=Q, conversation="conv_1",
                          extra_body={"caching": True})
        assert stage == "skipped"  # neither looked up nor stored
    assert fake.calls["responses"] == before + 2
