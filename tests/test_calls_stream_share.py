"""Streamed and plain requests share one entry in the library, as in the proxy (#22)."""

# ruff: noqa: F811

from __future__ import annotations

import semcache
from semcache import Cache
from tests.calls_support import MSG, POOL, api, fake, fake_server, kw, text_of  # noqa: F401

CHAT = "chat/completions"


def test_a_plain_answer_serves_a_streamed_request(api, fake, kw):
    semcache.cache = Cache()
    r = api.completion(model="m", messages=MSG, **kw)
    s, chunks = api.stream(model="m", messages=MSG, **kw)
    assert fake.calls[CHAT] == 1  # before: the streamed request was a second miss
    assert text_of(chunks) == r.choices[0].message.content
    assert s._hidden_params["cache_hit"] is True


def test_a_streamed_answer_serves_a_plain_request(api, fake, kw):
    semcache.cache = Cache()
    _, chunks = api.stream(model="m", messages=MSG, **kw)
    r = api.completion(model="m", messages=MSG, **kw)
    assert fake.calls[CHAT] == 1
    assert r._hidden_params["cache_hit"] is True
    assert r.choices[0].message.content == text_of(chunks)
