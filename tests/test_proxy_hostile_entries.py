"""Stored entries and management bodies that broke the proxy (found by fuzzing): a
stored transcription's content type is a header value; a stored answer's usage feeds
counters; a flush takes only the fields it reads."""

from __future__ import annotations

import socket
from urllib.parse import unquote

import httpx
import pytest

from semcache import Cache
from semcache_testing.fake_openai import FakeOpenAI, fake_transcript

from .proxy_helpers import MASTER, ask, master, stats

AUDIO = b"RIFF....WAVEfmt audio bytes"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


def _transcribe_raw(port: int) -> bytes:
    """The whole HTTP exchange of one transcription request, read until the server
    closes: what a header injection or a dropped connection shows."""
    req = httpx.Request("POST", f"http://127.0.0.1:{port}/v1/audio/transcriptions",
                        data={"model": "whisper", "response_format": "text"},
                        files={"file": ("a.wav", AUDIO, "audio/wav")},
                        headers={"authorization": f"Bearer {MASTER}"})
    head = b"".join(k + b": " + v + b"\r\n" for k, v in req.headers.raw
                    if k.lower() != b"host")
    raw = (b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           + head + b"\r\n" + req.read())
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("ctype", ["text/plain\r\nSet-Cookie: evil=1", "text/plain\nX-Evil: 1",
                                   "text/plain\x00", "text/plain\u2028", "text/plainé",
                                   "t" * 300])
def test_a_stored_content_type_that_is_no_header_value_is_a_miss(proxies, fake, ctype):
    cache = Cache(type="local")
    proxy = proxies.start(cache=cache)
    first = _transcribe_raw(proxy.port)
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    key = [unquote(line.split(b":", 1)[1].strip().decode()) for line in first.split(b"\r\n")
           if line.lower().startswith(b"x-semcache-key:")][0]
    cache.delete([key])
    cache.add_cache({"$text": "planted", "$content_type": ctype}, cache_key=key,
                    call_type="transcription")
    calls = fake.calls["audio/transcriptions"]
    raw = _transcribe_raw(proxy.port)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    assert b"evil" not in head.lower() and b"planted" not in body
    assert fake_transcript(AUDIO).encode() in body  # asked upstream instead
    assert fake.calls["audio/transcriptions"] == calls + 1


def _chat_key(proxy) -> tuple[str, dict]:
    body = {"model": "chat", "messages": ask("usage")}
    r = httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=master(),
                   timeout=30)
    assert r.status_code == 200
    return unquote(r.headers["x-semcache-key"]), body


def _answer(usage: dict) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "stored"}}],
            "usage": usage}


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -1, "completion_tokens": 0},  # raised in the Prometheus counter
    {"prompt_tokens": 2**63 - 1, "completion_tokens": 0},  # overflowed /cache/stats
    {"prompt_tokens": True, "completion_tokens": 1}])
def test_a_stored_answers_usage_never_breaks_its_hits_or_the_stats(proxies, usage):
    cache = Cache(type="local")
    proxy = proxies.start(cache=cache)
    key, body = _chat_key(proxy)
    cache.delete([key])
    cache.add_cache(_answer(usage), cache_key=key, call_type="completion")
    for stream in (False, True, False):
        r = httpx.post(proxy.url + "/v1/chat/completions", json={**body, "stream": stream},
                       headers=master(), timeout=30)
        assert r.status_code == 200, r.text[:200]
        assert r.headers["x-semcache-stage"] == "exact" and b"stored" in r.content
    s = stats(proxy)  # /cache/stats: a 200 with JSON, not a 500 from here on
    assert s["by_stage"]["exact"] == 3
    m = httpx.get(proxy.url + "/metrics", headers=master(), timeout=30)
    assert m.status_code == 200


@pytest.mark.parametrize("body", [{"namespaces": ["team-b"]}, {"namspace": "team-b"},
                                  {"keys": ["team-b:x"]}, {"namespace": "team-b", "all": 1}])
def test_a_flush_with_a_field_it_does_not_read_flushes_nothing(proxies, body):
    """Only "namespace" was read: {"namespaces": [...]} flushed every namespace."""
    cache = Cache(type="local")
    proxy = proxies.start(cache=cache)
    key, _ = _chat_key(proxy)
    r = httpx.post(proxy.url + "/cache/flush", json=body, headers=master(), timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "unknown field" in err["message"] and err["param"] in body
    assert cache.store.get(key) is not None  # nothing flushed
    r = httpx.post(proxy.url + "/cache/flush", json={}, headers=master(), timeout=30)
    assert r.status_code == 200 and cache.store.get(key) is None
