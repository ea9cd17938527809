"""Streams through the proxy that a real upstream (or client) can cut short or shape
oddly: only a complete, faithful answer is stored, and the relay never crashes.
FakeOpenAI.stream_script sends what the fake's own answers never do."""

from __future__ import annotations

import httpx
import orjson
import pytest

from semcache import Cache
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import Proxies, ask, master, openai_client

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def proxies(fake):
    fake.reset()
    fake.chunk_delay_ms = 0
    p = Proxies(fake.base_url)
    yield p
    p.stop()
    fake.chunk_delay_ms = 0


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                       "finish_reason": finish}]}


def _stream(proxy, body: dict) -> tuple[int, list[bytes]]:
    """(status, the data payloads) of a streamed request, read to its end."""
    with httpx.stream("POST", proxy.url + CHAT, json={**body, "stream": True},
                      headers=master(), timeout=30) as r:
        raw = r.read()
    return r.status_code, [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]


@pytest.mark.parametrize("bad", [
    _chunk({"content": 5}),  # a content piece that is not text
    _chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": 7}}]}),
])
def test_a_malformed_chunk_is_relayed_whole_and_not_stored(proxies, fake, bad):
    """It used to crash the relay when the stream ended ("".join of a non-str): the
    client lost the end of its stream (no [DONE]) and the log got a traceback."""
    cache = Cache()
    proxy = proxies.start(cache=cache)
    fake.stream_script = [_chunk({"role": "assistant", "content": ""}),
                          _chunk({"content": "Paris"}), bad, _chunk({}, "stop"), "[DONE]"]
    body = {"model": "chat", "messages": ask("capital of France?")}
    for _ in range(2):
        status, events = _stream(proxy, body)
        assert status == 200 and len(events) == 5 and events[-1] == b"[DONE]"
    assert fake.calls["chat/completions"] == 2 and cache.stats()["stores"] == 0


FUNCTIONS = [{"name": "lookup", "parameters": {"type": "object", "properties": {
    "q": {"type": "string"}}}}]


def test_a_streamed_legacy_function_call_is_stored_and_replayed_whole(proxies, fake):
    cache = Cache()
    proxy = proxies.start(cache=cache)
    fake.stream_script = [
        _chunk({"role": "assistant", "content": None}),
        _chunk({"function_call": {"name": "lookup", "arguments": ""}}),
        _chunk({"function_call": {"arguments": '{"q": "Par'}}),
        _chunk({"function_call": {"arguments": 'is"}'}}),
        _chunk({}, "function_call"), "[DONE]"]
    body = {"model": "chat", "messages": ask("capital of France?"), "functions": FUNCTIONS}
    want = {"name": "lookup", "arguments": '{"q": "Paris"}'}
    for stage in ("miss", "exact"):
        status, events = _stream(proxy, body)
        chunks = [orjson.loads(e) for e in events[:-1]]
        calls = [c["choices"][0]["delta"].get("function_call") or {} for c in chunks]
        assert {"name": "".join(f.get("name") or "" for f in calls),
                "arguments": "".join(f.get("arguments") or "" for f in calls)} == want, stage
        assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"
    plain = openai_client(proxy.base_url, "sk-master-test").chat.completions.create(
        model="chat", messages=ask("capital of France?"), functions=FUNCTIONS)
    msg = plain.choices[0].message
    assert plain.choices[0].finish_reason == "function_call" and msg.content is None
    assert msg.function_call is not None and msg.function_call.model_dump() == want
    assert fake.calls["chat/completions"] == 1
