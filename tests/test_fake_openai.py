"""The fake upstream speaks the wire format the real ``openai`` client parses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest

from semcache_testing.fake_openai import FakeOpenAI, fake_embedding, fake_transcript

MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def client(fake):
    fake.reset()
    fake.numbered = False
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0) as c:
        yield c


def test_chat_answer_usage_and_counts(fake, client):
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "echo: Hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 4 and r.usage.prompt_tokens > 4
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert fake.calls["chat/completions"] == 1 and fake.total_calls == 1
    assert fake.requests[0]["body"]["messages"] == MSG
    fake.reset()
    assert fake.calls["chat/completions"] == 0 and fake.requests == []


def test_numbered_answers_differ_and_n_choices(fake, client):
    fake.numbered = True
    a = client.chat.completions.create(model="m", messages=MSG)
    b = client.chat.completions.create(model="m", messages=MSG, n=2, max_tokens=2)
    assert a.choices[0].message.content == "echo: Hello there (call 1)"
    assert [c.message.content for c in b.choices] == ["echo: Hello", "echo: Hello"]
    assert b.choices[1].finish_reason == "length" and a.id != b.id


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_stream(client, include_usage):
    kw = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(client.chat.completions.create(model="m", messages=MSG, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: Hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    else:
        assert all(c.usage is None for c in chunks)


def test_text_completion_batch_and_stream(client):
    r = client.completions.create(model="i", prompt=["a b", "c"])
    assert [c.text for c in r.choices] == ["echo: a b", "echo: c"]
    s = list(client.completions.create(model="i", prompt="a b", stream=True))
    assert "".join(c.choices[0].text for c in s if c.choices) == "echo: a b"


def test_embeddings_deterministic_dims_and_base64(fake, client):
    r = client.embeddings.create(model="e", input=["x", "y"], dimensions=16)  # base64
    f = client.embeddings.create(model="e", input=["y"], dimensions=16, encoding_format="float")
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[1].embedding == f.data[0].embedding == fake_embedding("y", 16)
    assert abs(sum(v * v for v in r.data[0].embedding) - 1) < 1e-5
    assert len(client.embeddings.create(model="e", input="x").data[0].embedding) == 1536
    assert fake.calls["embeddings"] == 3


def test_transcription_depends_on_bytes_not_name(fake, client):
    audio = b"RIFF" + bytes(range(256)) * 10
    a = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio))
    b = client.audio.transcriptions.create(model="whisper-1", file=("b.mp3", audio))
    c = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio + b"!"))
    assert a.text == b.text == fake_transcript(audio) != c.text
    t = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio),
                                           response_format="text")
    assert t == a.text
    rec = fake.requests[0]["body"]
    assert rec["model"] == "whisper-1" and rec["file"]["filename"] == "a.wav"
    assert rec["file"]["size"] == len(audio)


def test_models(client):
    assert "gpt-4o-mini" in [m.id for m in client.models.list().data]


@pytest.mark.parametrize(("model", "exc"), [("fail-429", openai.RateLimitError),
                                            ("fail-500", openai.InternalServerError),
                                            ("fail-400", openai.BadRequestError)])
def test_error_mode(fake, model, exc):
    # the default client retries 429/5xx; the fake says not to, so one call is one request
    with openai.OpenAI(base_url=fake.base_url, api_key="k") as client:
        fake.reset()
        with pytest.raises(exc) as info:
            client.chat.completions.create(model=model, messages=MSG)
    assert info.value.body["code"] == f"fake_{model[5:]}"
    assert fake.calls["chat/completions"] == 1


def test_delay_and_concurrency(fake):
    fake.reset()
    fake.delay_ms = 150
    try:
        with openai.OpenAI(base_url=fake.base_url, api_key="k") as client:
            t = time.perf_counter()
            threads = [threading.Thread(target=client.chat.completions.create,
                                        kwargs={"model": "m", "messages": MSG})
                       for _ in range(4)]
            for th in threads:
                th.start()
            assert fake.wait_for_calls("chat/completions", 4)
            for th in threads:
                th.join()
            elapsed = time.perf_counter() - t
    finally:
        fake.delay_ms = 0
    assert 0.15 <= elapsed < 0.6  # concurrent, not serialised
    assert fake.max_in_flight == 4


def test_stop_really_stops():
    f = FakeOpenAI().start()
    with openai.OpenAI(base_url=f.base_url, api_key="k", max_retries=0, timeout=3) as c:
        c.models.list()  # leaves a keep-alive connection open
        f.stop()
        with pytest.raises(openai.APIConnectionError):
            c.models.list()


def test_cli_serves():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "semcache_testing.fake_openai",
                             "--port", str(port)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])  # the checkout's
    try:
        assert "listening on" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
            assert json.load(r)["object"] == "list"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()
