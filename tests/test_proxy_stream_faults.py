"""Streams through the proxy that a real upstream (or client) can cut short or shape
oddly: only a complete, faithful answer is stored, and the relay never crashes.
FakeOpenAI.stream_script sends what the fake's own answers never do."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from semcache import Cache
from semcache._calls._responses_api import replay_events, sse_bytes
from semcache_testing.fake_openai import DROP, FakeOpenAI

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


@pytest.mark.parametrize("cut", ["drop", "error event", "bad json", "no [DONE]",
                                 "no finish_reason"])
def test_a_stream_cut_short_is_relayed_and_not_stored(proxies, fake, cut):
    cache = Cache()
    proxy = proxies.start(cache=cache)
    end = _chunk({}, "stop")
    fake.stream_script = [_chunk({"role": "assistant", "content": ""}),
                          _chunk({"content": "Paris"}), *{
        "drop": [DROP],
        "error event": [{"error": {"message": "overloaded", "type": "server_error"}}, end,
                        "[DONE]"],
        "bad json": ['{"id": "chatcmpl-s", "choices": [', end, "[DONE]"],
        "no [DONE]": [end],
        "no finish_reason": ["[DONE]"],
    }[cut]]
    body = {"model": "chat", "messages": ask("capital of France?")}
    for _ in range(2):
        status, events = _stream(proxy, body)
        assert status == 200 and len(events) >= 2
    assert fake.calls["chat/completions"] == 2 and cache.stats()["stores"] == 0


def _wait_idle(fake: FakeOpenAI) -> None:
    deadline = time.monotonic() + 10
    while fake.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.in_flight == 0


def test_a_client_that_hangs_up_mid_stream_stores_nothing(proxies, fake):
    """The proxy stops reading the upstream when its client goes away (the relay is
    cancelled): the part that arrived is never stored as if it were the answer, and the
    next client gets the whole answer."""
    cache = Cache()
    proxy = proxies.start(cache=cache)
    fake.chunk_delay_ms = 50
    q = "one two three four five six seven eight nine ten"
    body = {"model": "chat", "messages": ask(q), "stream": True}
    with httpx.Client(timeout=30) as c, \
            c.stream("POST", proxy.url + CHAT, json=body, headers=master()) as r:
        first = next(r.iter_raw())
        assert first.startswith(b"data: ")
    # closed: the upstream's stream ends early (the proxy hung up on it) or runs out
    _wait_idle(fake)
    assert cache.stats()["stores"] == 0
    fake.chunk_delay_ms = 0
    status, events = _stream(proxy, body)
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in events[:-1] if orjson.loads(e)["choices"])
    assert status == 200 and text == "echo: " + q
    assert cache.stats()["stores"] == 1 and fake.calls["chat/completions"] == 2


RESPONSE = {"id": "resp_s", "object": "response", "created_at": 1, "status": "completed",
            "error": None, "model": "m", "output": [{
                "type": "message", "id": "msg_s", "status": "completed",
                "role": "assistant", "content": [
                    {"type": "output_text", "text": "Paris.", "annotations": []}]}]}


@pytest.mark.parametrize("cut", ["drop", "no response.completed", "response.failed",
                                 "completed but incomplete", "bad json"])
def test_a_responses_stream_cut_short_is_not_stored(proxies, fake, cut):
    cache = Cache()
    proxy = proxies.start(cache=cache)
    events = [sse_bytes(e) for e in replay_events(RESPONSE)]
    last = {"type": "response.completed", "sequence_number": 99,
            "response": {**RESPONSE, "status": "incomplete"}}
    fake.stream_script = {
        "drop": [*events[:-1], DROP],
        "no response.completed": events[:-1],
        "response.failed": [*events[:-1], sse_bytes({
            "type": "response.failed", "sequence_number": 99,
            "response": {**RESPONSE, "status": "failed"}})],
        "completed but incomplete": [*events[:-1], sse_bytes(last)],
        "bad json": [*events[:3], b"data: {\n\n", *events[3:]],
    }[cut]
    for _ in range(2):
        with httpx.stream("POST", proxy.url + "/v1/responses", headers=master(), timeout=30,
                          json={"model": "chat", "input": "capital?", "stream": True}) as r:
            r.read()
        assert r.status_code == 200
    assert fake.calls["responses"] == 2 and cache.stats()["stores"] == 0


CITE = [{"type": "url_citation", "url_citation": {"url": "https://example.com/paris",
                                                   "title": "Paris", "start_index": 0,
                                                   "end_index": 5}}]
AUDIO = {"id": "audio_1", "data": "UklGRg==", "transcript": "Paris.",
         "expires_at": 1700003600}


def test_streamed_citations_and_audio_are_stored_and_replayed_whole(proxies, fake):
    """``delta.annotations`` (a search model's URL citations) and ``delta.audio`` used
    to be dropped by the proxy's assembly: every client served from the cache lost them."""
    cache = Cache()
    proxy = proxies.start(cache=cache)
    fake.stream_script = [
        _chunk({"role": "assistant", "content": ""}), _chunk({"content": "Paris."}),
        _chunk({"annotations": CITE}),
        _chunk({"audio": {"id": "audio_1", "transcript": "Par", "data": "Ukl"}}),
        _chunk({"audio": {"transcript": "is.", "data": "GRg=="}}), _chunk({}, "stop"),
        {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"audio": {"expires_at": 1700003600}}}]},
        "[DONE]"]
    body = {"model": "chat", "messages": ask("capital of France?")}
    for stage in ("miss", "exact"):
        status, events = _stream(proxy, body)
        deltas = [c["choices"][0]["delta"] for c in map(orjson.loads, events[:-1])
                  if c["choices"]]
        assert [a for d in deltas for a in d.get("annotations") or ()] == CITE, stage
        audio = [d["audio"] for d in deltas if d.get("audio")]
        assert "".join(a.get("data") or "" for a in audio) == AUDIO["data"], stage
        assert "".join(a.get("transcript") or "" for a in audio) == AUDIO["transcript"]
        assert [a["expires_at"] for a in audio if "expires_at" in a] == [1700003600]
    plain = openai_client(proxy.base_url, "sk-master-test").chat.completions.create(
        model="chat", messages=ask("capital of France?"))
    msg = plain.choices[0].message
    assert msg.content == "Paris." and [a.model_dump() for a in msg.annotations] == CITE
    assert msg.audio is not None and msg.audio.model_dump() == AUDIO
    assert fake.calls["chat/completions"] == 1


def test_a_stream_missing_one_of_its_n_choices_is_not_stored(proxies, fake):
    """A request for n=2 whose stream ends cleanly after choice 0 has every choice it
    saw finished; stored, every later n=2 request was served one choice (the library
    counts the choices it asked for since the same fix; the proxy did not)."""
    cache = Cache()
    proxy = proxies.start(cache=cache)
    fake.stream_script = [_chunk({"role": "assistant", "content": "Paris"}),
                          _chunk({}, "stop"), "[DONE]"]
    body = {"model": "chat", "messages": ask("capital of France?"), "n": 2}
    for _ in range(2):
        status, events = _stream(proxy, body)
        assert status == 200 and events[-1] == b"[DONE]"
    assert fake.calls["chat/completions"] == 2 and cache.stats()["stores"] == 0
