"""``semcache.responses()`` / ``aresponses()``: OpenAI's Responses API through the cache
(issue #22), sync and async against the fake upstream."""

# ruff: noqa: F811

from __future__ import annotations

from openai.types.responses import Response

import semcache
from semcache import Cache
from tests.calls_support import POOL, api, fake, fake_server, kw  # noqa: F401

Q = "What is the capital of France?"


def test_responses_hit_the_cache(api, fake, kw):
    semcache.cache = Cache()
    r1 = api.responses(model="gpt-4o-mini", input=Q, instructions="Be brief.", **kw)
    r2 = api.responses(model="gpt-4o-mini", input=[{"role": "user", "content": Q}],
                       instructions="Be brief.", **kw)
    assert fake.calls["responses"] == 1  # the string and the item list: one request
    assert isinstance(r1, Response) and isinstance(r2, Response)
    assert r1._hidden_params["cache_hit"] is False and r2._hidden_params["cache_hit"]
    assert r2.output_text == r1.output_text == f"echo: {Q}"
    assert r2._hidden_params["call_type"] in ("responses", "aresponses")


def test_context_fields_make_their_own_entries(api, fake, kw):
    semcache.cache = Cache()
    api.responses(model="gpt-4o-mini", input=Q, **kw)
    api.responses(model="gpt-4o-mini", input=Q, instructions="In French.", **kw)
    api.responses(model="gpt-4o-mini", input=Q, previous_response_id="resp_x", **kw)
    api.responses(model="gpt-4o-mini", input=Q, max_output_tokens=2, **kw)
    assert fake.calls["responses"] == 4
    # and no chat answer is served to a Responses request or back
    r = api.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": Q}], **kw)
    assert r._hidden_params["cache_hit"] is False


def test_streamed_responses_pass_through(fake, kw):
    semcache.cache = Cache()
    for _ in range(2):
        events = list(semcache.responses(model="gpt-4o-mini", input="s", stream=True, **kw))
        assert events[-1].type == "response.completed"
    assert fake.calls["responses"] == 2


def test_an_incomplete_response_is_not_stored(api, fake, kw):
    """A Response cut at ``max_output_tokens`` has status "incomplete"; the call layer
    stored it (the proxy, sharing the key, stores only completed Responses), so every
    later caller, and the proxy's streaming clients, got the truncated answer."""
    semcache.cache = Cache()
    for _ in range(2):
        r = api.responses(model="gpt-4o-mini", input=Q, max_output_tokens=2, **kw)
        assert r.status == "incomplete" and r._hidden_params["cache_hit"] is False
    assert fake.calls["responses"] == 2 and semcache.cache.stats()["stores"] == 0


def test_a_background_response_is_not_stored(api, fake, kw):
    """``background=True`` answers a "queued" Response at once; stored, it was served
    as it was then (queued, no output) to every later caller of the request."""
    semcache.cache = Cache()
    for _ in range(2):
        r = api.responses(model="gpt-4o-mini", input=Q, background=True, **kw)
        assert r.status == "queued" and r._hidden_params["cache_hit"] is False
    assert fake.calls["responses"] == 2 and semcache.cache.stats()["stores"] == 0


def test_a_request_in_a_conversation_is_never_served_from_the_cache(api, fake, kw):
    """A ``conversation`` is server-side state that every turn appends to: the same
    input in one conversation is another request once the conversation has moved on,
    and a turn served from the cache is never recorded in the conversation at all.
    It used to be keyed by the conversation id and served."""
    semcache.cache = Cache()
    for _ in range(2):
        r = api.responses(model="gpt-4o-mini", input=Q, conversation="conv_1", **kw)
        assert r._hidden_params["cache_hit"] is False
    assert fake.calls["responses"] == 2 and semcache.cache.stats()["stores"] == 0
    req = fake.requests[-1]
    assert req["body"]["conversation"] == "conv_1"  # still sent upstream
