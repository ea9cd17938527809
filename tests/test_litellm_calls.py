"""LiteLLM compatibility of the call layer (issue 21), one test per behaviour.

LiteLLM's own caching tests define the behaviour (read, not copied):
tests/local_testing/test_caching.py, tests/local_testing/cache_unit_tests.py,
tests/local_testing/test_cache_preset_key.py and tests/litellm/caching/ in
BerriAI/litellm. The upstream is the project's fake OpenAI server."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

import semcache
from semcache import Cache
from tests.calls_support import MSG, api, fake, fake_server, kw  # noqa: F401


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------- responses
def test_responses_allow_item_access_and_stay_openai_types(fake, kw):
    semcache.cache = Cache()
    miss = semcache.completion(model="m", messages=MSG, **kw)
    hit = semcache.completion(model="m", messages=MSG, **kw)
    for r in (miss, hit):
        assert isinstance(r, ChatCompletion)
        assert r["choices"][0]["message"]["content"] == r.choices[0].message.content
        assert r["id"] == r.id and r.get("nope", 1) == 1 and "usage" in r
    assert miss == hit and hit._hidden_params["cache_hit"] is True
    with pytest.raises(KeyError):
        miss["no_such_field"]


def test_embedding_responses_allow_item_access(fake, kw):
    semcache.cache = Cache()
    for _ in range(2):
        e = semcache.embedding(model="e", input=["hello", "world"], **kw)
        assert isinstance(e, CreateEmbeddingResponse)
        assert e["data"][1]["embedding"] == e.data[1].embedding
    assert fake.calls["embeddings"] == 1


# ---------------------------------------------------------------- ttl
def test_top_level_ttl_is_a_cache_control_never_sent_upstream(fake, kw, clock):
    semcache.cache = Cache(clock=clock)
    r = semcache.completion(model="m", messages=MSG, ttl=30, **kw)
    body = fake.requests[-1]["body"]
    assert "ttl" not in body and "ttl" not in body.get("extra_body", {})
    assert r._hidden_params["cache"]["stage"] == "miss"
    # ttl does not change the key, and it is the entry's lifetime
    r = semcache.completion(model="m", messages=MSG, ttl=99, **kw)
    assert r._hidden_params["cache_hit"] is True
    assert r._hidden_params["cache"]["ttl_remaining_s"] == pytest.approx(30)


def test_ttl_zero_stores_nothing(fake, kw):
    semcache.cache = Cache(ttl=0)  # LiteLLM: expire at once
    for _ in range(2):
        r = semcache.completion(model="m", messages=MSG, **kw)
        assert r._hidden_params["cache_hit"] is False
    assert len(semcache.cache.store) == 0  # nothing written that could never be served
    semcache.cache = Cache()
    for _ in range(2):
        r = semcache.completion(model="m", messages=_msgs("zero"), cache={"ttl": 0}, **kw)
        assert r._hidden_params["cache_hit"] is False
    for _ in range(2):
        r = semcache.completion(model="m", messages=_msgs("zero2"), ttl=0, **kw)
        assert r._hidden_params["cache_hit"] is False
    assert len(semcache.cache.store) == 0
    assert fake.calls["chat/completions"] == 6


# ---------------------------------------------------------------- mock_response
def test_mock_response_is_answered_locally_and_cached(fake, kw):
    semcache.cache = Cache()
    r1 = semcache.completion(model="gpt-4o", messages=MSG, mock_response="Paris", **kw)
    r2 = semcache.completion(model="gpt-4o", messages=MSG, mock_response="Paris", **kw)
    assert fake.total_calls == 0  # never a network call
    assert r1["choices"][0]["message"]["content"] == "Paris" and r1.model == "gpt-4o"
    assert r2._hidden_params["cache_hit"] is True and r2.id == r1.id


def test_mock_response_without_any_endpoint_streams_and_raises():
    semcache.cache = None
    chunks = list(semcache.completion(model="m", messages=MSG, mock_response="a b c",
                                      stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"
    with pytest.raises(ValueError, match="boom"):
        semcache.completion(model="m", messages=MSG, mock_response=ValueError("boom"))
    r = asyncio.run(semcache.acompletion(model="m", messages=MSG, mock_response="x"))
    assert r.choices[0].message.content == "x"


# ---------------------------------------------------------------- callbacks
def test_four_argument_success_callbacks_get_litellm_arguments(fake, kw):
    semcache.cache = Cache()
    seen: list[tuple] = []
    dict_form: list[dict] = []

    def litellm_style(kwargs, completion_response, start_time, end_time):
        seen.append((kwargs["cache_hit"], kwargs["model"], completion_response.id,
                     start_time, end_time))

    semcache.success_callback = [litellm_style, dict_form.append]
    for _ in range(2):
        semcache.completion(model="m", messages=MSG, **kw)
    assert [s[0] for s in seen] == [False, True] and seen[0][1] == "m"
    assert all(isinstance(s[3], dt.datetime) and s[3] <= s[4] for s in seen)
    assert [d["cache_hit"] for d in dict_form] == [False, True]  # the old form still works


def test_failure_callbacks_are_called_in_both_forms(fake, kw):
    failures: list = []
    semcache.failure_callback = [lambda kwargs, resp, s, e: failures.append(kwargs["exception"]),
                                 lambda payload: failures.append(payload["exception"])]
    try:
        with pytest.raises(Exception):
            semcache.completion(model="m", messages=MSG, api_base="http://127.0.0.1:9/v1",
                                api_key="k", max_retries=0, timeout=2)
        assert len(failures) == 2 and failures[0] is failures[1]
    finally:
        semcache.failure_callback = []


# ---------------------------------------------------------------- custom keys
def test_metadata_cache_key_is_the_key(fake, kw):
    semcache.cache = Cache()
    semcache.completion(model="m", messages=MSG, metadata={"cache_key": "mine"}, **kw)
    r = semcache.completion(model="m", messages=_msgs("another question entirely"),
                            metadata={"cache_key": "mine"}, **kw)
    assert r._hidden_params["cache_hit"] is True
    assert r._hidden_params["cache_key"] == "default:mine"
    assert semcache.cache.get_cache(metadata={"cache_key": "mine"}) is not None


def test_overridden_get_cache_key_is_honoured(fake, kw):
    c = semcache.cache = Cache()

    def custom_get_cache_key(*args, **kwargs):  # LiteLLM's docs: keyed on the model only
        return "key-" + kwargs["model"]

    c.get_cache_key = custom_get_cache_key
    semcache.completion(model="m", messages=MSG, **kw)
    r = semcache.completion(model="m", messages=_msgs("different"), **kw)
    assert r._hidden_params["cache_hit"] is True and r._hidden_params["cache_key"] == \
        "default:key-m"


def test_overridden_add_and_get_cache_are_what_completion_calls(fake, kw):
    store: dict[str, object] = {}
    c = semcache.cache = Cache()

    def add_cache(result, **kwargs):
        store[kwargs["messages"][-1]["content"]] = result

    def get_cache(**kwargs):
        return store.get(kwargs["messages"][-1]["content"])

    c.add_cache, c.get_cache = add_cache, get_cache
    semcache.completion(model="m", messages=MSG, **kw)
    assert list(store) == [MSG[0]["content"]] and len(c.store) == 0
    r = semcache.completion(model="m", messages=MSG, **kw)
    assert r._hidden_params["cache_hit"] is True and fake.calls["chat/completions"] == 1


def test_overridden_async_add_cache_is_awaited(fake, kw):
    added: list = []

    class Custom(Cache):
        async def async_add_cache(self, result, **kwargs):
            added.append(result)
            await super().async_add_cache(result, **kwargs)

    semcache.cache = Custom()

    async def main():
        await semcache.acompletion(model="m", messages=MSG, **kw)
        return await semcache.acompletion(model="m", messages=MSG, **kw)

    r = asyncio.run(main())
    assert len(added) == 1 and r._hidden_params["cache_hit"] is True


def test_cache_dot_cache_is_the_backend(fake):
    from semcache.caching import InMemoryCache

    c = Cache()
    assert c.cache is c.store and isinstance(c.cache, InMemoryCache)


def test_a_key_from_get_cache_key_names_the_requests_own_entry():
    """LiteLLM's add_cache(result=..., cache_key=cache.get_cache_key(**request)) then
    get_cache(**request): the returned key is already namespaced, and reusing it must
    not make a second entry under "ns:ns:..."."""
    c = Cache()
    req = {"model": "m", "messages": MSG}
    c.add_cache(result={"id": "r1"}, cache_key=c.get_cache_key(**req))
    assert c.get_cache(**req) == {"id": "r1"} and len(c.store) == 1


def test_embedding_mock_response_parses_litellms_vector_string(fake):
    semcache.cache = Cache()
    e1 = semcache.embedding(model="e", input=["hi"], caching=False,
                            mock_response="0.1,0.2,0.3")
    e2 = semcache.embedding(model="e", input=["hi"], caching=False,
                            mock_response="0.6,0.7,0.8")
    assert e1["data"][0]["embedding"] == [0.1, 0.2, 0.3] != e2.data[0].embedding
    assert fake.total_calls == 0


def test_streamed_chunks_allow_item_access(fake, kw):
    semcache.cache = Cache()
    for _ in range(2):  # the miss passed through, then the replayed hit
        chunks = list(semcache.completion(model="m", messages=MSG, stream=True, **kw))
        text = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks
                       if c["choices"])
        assert text == "echo: " + MSG[0]["content"]
    assert fake.calls["chat/completions"] == 1


def test_partial_embedding_hit_is_a_cache_hit_as_in_litellm(fake, kw):
    semcache.cache = Cache()
    semcache.embedding(model="e", input=["known"], **kw)
    r = semcache.embedding(model="e", input=["known", "new"], **kw)
    hp = r._hidden_params
    assert hp["cache_hit"] is True and hp["cache_hits"] == 1
    assert hp["cache"]["stage"] == "partial"


def test_base64_embeddings_are_cached_as_the_client_returned_them(fake, kw):
    semcache.cache = Cache()
    inputs = ["hello this is ishaan", "hello this is ishaan again"]
    e1 = semcache.embedding(model="e", input=inputs, encoding_format="base64", **kw)
    e2 = semcache.embedding(model="e", input=inputs, encoding_format="base64", **kw)
    assert e2._hidden_params["cache_hit"] is True and fake.calls["embeddings"] == 1
    assert isinstance(e1.data[0].embedding, str)
    assert [d["embedding"] for d in e2.data] == [d["embedding"] for d in e1.data]


def test_get_cache_key_records_the_key_in_litellm_params():
    c = Cache()
    params: dict = {}
    req = {"model": "gpt-4", "messages": MSG}
    key = c.get_cache_key(**req, litellm_params=params)
    assert params["preset_cache_key"] == key
    # LiteLLM's plumbing is not part of the key
    assert c.get_cache_key(**req, litellm_params={"x": 1}, preset_cache_key="k") == key


def test_a_mock_response_is_never_served_to_a_real_request(fake, kw):
    # mock_response was left out of the key, so a test run's canned answer was filed
    # under the real request's key: on a shared cache every real caller then got it
    semcache.cache = Cache()
    mocked = semcache.completion(model="gpt-4o", messages=MSG, mock_response="PLANTED", **kw)
    assert mocked.choices[0].message.content == "PLANTED"
    real = semcache.completion(model="gpt-4o", messages=MSG, **kw)
    assert real._hidden_params["cache_hit"] is False and fake.calls["chat/completions"] == 1
    assert real.choices[0].message.content != "PLANTED"
    # and a mock call answers its mock, not the real answer now cached
    again = semcache.completion(model="gpt-4o", messages=MSG, mock_response="other", **kw)
    assert again.choices[0].message.content == "other"
    # an exception as the mock is raised, not refused by the key builder
    with pytest.raises(ValueError, match="boom"):
        semcache.completion(model="gpt-4o", messages=MSG, mock_response=ValueError("boom"),
                            **kw)


@pytest.mark.parametrize("controls,calls_get,calls_add", [
    ({"no-store": True}, True, False), ({"no-cache": True}, False, True),
    ({"ttl": 0}, True, False), ({"use-cache": False}, False, False),
    ({"s-maxage": 0}, False, True)])
@pytest.mark.parametrize("path", ["chat", "stream", "embedding"])
def test_overridden_get_and_add_cache_obey_the_request_controls(api, fake, kw, controls,
                                                                calls_get, calls_add,
                                                                path):
    """LiteLLM consults a custom cache's get_cache only when the request may read
    (not ``no-cache``, caching on) and calls its add_cache only when it may store (not
    ``no-store``): the custom methods know nothing of the controls. semcache called
    them whatever the controls said, so ``no-store`` answers landed in the user's own
    store and ``no-cache`` requests were served from it."""
    gets: list = []
    adds: list = []
    c = semcache.cache = Cache()

    def add_cache(result, **kwargs):
        adds.append(result)

    def get_cache(**kwargs):
        gets.append(kwargs)

    c.add_cache, c.get_cache = add_cache, get_cache
    if path == "chat":
        api.completion(model="m", messages=MSG, cache=controls, **kw)
    elif path == "stream":
        api.stream("completion", model="m", messages=MSG, cache=controls, **kw)
    else:
        api.embedding(model="e", input=["a"], cache=controls, **kw)
    assert bool(gets) is calls_get and bool(adds) is calls_add


def test_overridden_add_cache_alone_obeys_no_store(api, fake, kw):
    """A Cache with only add_cache replaced: the lookup is the pipeline's, which knew
    the request may not be stored, yet the custom add_cache was called all the same."""
    adds: list = []
    c = semcache.cache = Cache()
    c.add_cache = lambda result, **kwargs: adds.append(result)
    api.completion(model="m", messages=MSG, cache={"no-store": True}, **kw)
    api.stream("completion", model="m", messages=MSG, cache={"no-store": True}, **kw)
    assert adds == []
    api.completion(model="m", messages=MSG, **kw)
    assert len(adds) == 1
