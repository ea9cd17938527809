"""The caching proxy end to end: the real ``openai`` client (and curl) against the proxy
on loopback, with FakeOpenAI as the upstream, so every "no upstream call" is counted."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import urllib.parse

import httpx
import openai
import pytest

from semcache import BackendUnavailable, Cache
from semcache.embedders.batching import BatchingEmbedder
from semcache.exact.base import ExactStore
from semcache.exact.memory import MemoryStore
from semcache_testing.fake_openai import FakeOpenAI, fake_transcript

from .proxy_helpers import KEY_A, KEY_A2, KEY_B, MASTER, Proxies, ask, master, openai_client, stats

HEADERS = ("x-semcache-hit", "x-semcache-stage", "x-semcache-similarity", "x-semcache-key",
           "x-semcache-matched-prompt", "age")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


@pytest.fixture
def proxies(fake):
    fake.reset()
    fake.delay_ms = 0
    fake.chunk_delay_ms = 0
    p = Proxies(fake.base_url)
    yield p
    p.stop()


@pytest.fixture
def semantic_cache(minilm):
    cache = Cache(type="faiss-semantic", embedder=BatchingEmbedder(minilm),
                  similarity_threshold=0.85)
    yield cache
    cache.close()


def client(proxy, key=MASTER) -> openai.OpenAI:
    return openai_client(proxy.base_url, key)


def chat(c: openai.OpenAI, q: str, model: str = "chat", **kw):
    raw = c.chat.completions.with_raw_response.create(model=model, messages=ask(q), **kw)
    return raw.parse(), raw.headers


def test_paraphrase_is_served_from_cache_without_an_upstream_call(proxies, fake,
                                                                  semantic_cache):
    proxy = proxies.start(cache=semantic_cache)
    c = client(proxy)
    first, h1 = chat(c, "What is the capital of France?")
    assert h1["x-semcache-hit"] == "false" and h1["x-semcache-stage"] == "miss"
    assert fake.calls["chat/completions"] == 1
    # the upstream was asked for its own model name, without our cache controls
    assert fake.requests[-1]["body"]["model"] == "gpt-4o-mini"
    second, h2 = chat(c, "what's the capital of France?")
    assert fake.calls["chat/completions"] == 1  # served from cache: no upstream call
    assert second.choices[0].message.content == first.choices[0].message.content
    assert h2["x-semcache-hit"] == "true" and h2["x-semcache-stage"] == "semantic"
    assert 0.85 <= float(h2["x-semcache-similarity"]) < 1.0
    assert h2["x-semcache-key"] == h1["x-semcache-key"]
    assert urllib.parse.unquote(h2["x-semcache-matched-prompt"]) == \
        "What is the capital of France?"
    assert int(h2["age"]) >= 0
    # an unrelated question is a miss whose header reports the nearest similarity
    _, h3 = chat(c, "How many legs does a spider have?")
    assert h3["x-semcache-stage"] == "miss" and float(h3["x-semcache-similarity"]) < 0.85
    assert fake.calls["chat/completions"] == 2


def test_headers_stats_and_metrics_agree(proxies, fake, semantic_cache):
    proxy = proxies.start(cache=semantic_cache)
    c = client(proxy)
    seen: dict[str, int] = {}
    sims = []
    for q in ["How tall is Mount Everest?", "What is the height of Mount Everest?",
              "How tall is Mount Everest?", "Who painted the Mona Lisa?",
              "Who painted the Mona Lisa?", "Name a prime number above 100"]:
        _, h = chat(c, q)
        assert all(name in h for name in HEADERS)
        seen[h["x-semcache-stage"]] = seen.get(h["x-semcache-stage"], 0) + 1
        if h["x-semcache-stage"] == "semantic":
            sims.append(float(h["x-semcache-similarity"]))
    assert seen == {"miss": 3, "semantic": 1, "exact": 2}
    s = stats(proxy)
    assert s["by_stage"] == seen
    assert s["by_namespace"] == {"default": seen}
    assert s["requests"] == 6 and s["hits"] == 3 and s["hit_rate"] == 0.5
    assert s["upstream"]["calls"] == fake.calls["chat/completions"] == 3
    assert sum(s["similarity_histogram"]["hits"]) == 1
    assert sum(s["similarity_histogram"]["near_misses"]) == 2  # the first miss had none
    assert s["similarity_histogram"]["threshold"] == 0.85
    assert [round(h["similarity"], 4) for h in s["recent_hits"] if h["stage"] == "semantic"] \
        == [round(x, 4) for x in sims]
    assert s["recent_hits"][0]["prompt"] == "Who painted the Mona Lisa?"
    # tokens and money saved: the stored answers' usage, priced by the config's table
    assert s["saved"]["total_tokens"] > 0
    expected = (s["saved"]["prompt_tokens"] * 150 + s["saved"]["completion_tokens"] * 600) / 1e6
    assert s["saved"]["usd"] == pytest.approx(expected)
    assert set(s["latency_ms"]) == {"miss", "semantic", "exact"}
    assert s["cache"]["lookups"] == 6
    metrics = httpx.get(proxy.url + "/metrics", headers=master()).text
    for stage, n in seen.items():
        line = (f'semcache_proxy_requests_total{{endpoint="chat/completions",'
                f'model="chat",namespace="default",stage="{stage}"}} {float(n)}')
        assert line in metrics
    assert 'semcache_proxy_request_latency_seconds_count{stage="exact"} 2.0' in metrics


def test_streaming_miss_relays_chunks_and_stores_then_hit_replays(proxies, fake,
                                                                   semantic_cache):
    proxy = proxies.start(cache=semantic_cache)
    c = client(proxy)
    fake.chunk_delay_ms = 150
    t0 = time.monotonic()
    raw = c.chat.completions.with_raw_response.create(
        model="chat", messages=ask("Tell me a story about a brave little toaster"),
        stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-semcache-stage"] == "miss"
    first_at = None
    pieces, usage = [], None
    for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            first_at = first_at or time.monotonic() - t0
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    total = time.monotonic() - t0
    # streamed as it arrived: the first words came long before the last (>= 10 chunks
    # 150 ms apart upstream), not after the proxy buffered the whole answer
    assert total > 1.0 and first_at is not None and first_at < total - 0.6
    text = "".join(pieces)
    assert text.startswith("echo: Tell me a story") and usage is not None
    fake.chunk_delay_ms = 0

    # stored once complete: a streamed paraphrase replays it as chunks, no upstream call
    calls = fake.calls["chat/completions"]
    raw = c.chat.completions.with_raw_response.create(
        model="chat", messages=ask("Please tell me a story about a brave little toaster"),
        stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-semcache-stage"] == "semantic"
    chunks = list(raw.parse())
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == usage.total_tokens
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    # and a non-streaming client gets the same stored answer as one JSON response
    resp, h = chat(c, "Tell me a story about a brave little toaster")
    assert h["x-semcache-stage"] == "exact" and resp.choices[0].message.content == text
    assert fake.calls["chat/completions"] == calls

    # a stream that is cut short is never stored: the upstream's error chunk case
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="limited", messages=ask("x"), stream=True)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="limited", messages=ask("x"), stream=True)


def test_upstream_errors_pass_through_and_are_never_cached(proxies, fake):
    proxy = proxies.start()
    c = client(proxy)
    for i in (1, 2):
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model="limited", messages=ask("hello"))
        assert info.value.status_code == 429
        assert "fail-429" in info.value.message  # the upstream's own error body
        assert fake.calls["chat/completions"] == i  # asked again: the error was not stored
    s = stats(proxy)
    assert s["upstream"]["errors"] == {"429": 2} and s["by_stage"] == {"error": 2}
    # an unknown model is ours to refuse, OpenAI-style, without an upstream call
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=ask("hello"))
    assert fake.calls["chat/completions"] == 2


def test_client_keys_are_isolated_by_namespace(proxies, fake):
    proxy = proxies.start()
    a, b = client(proxy, KEY_A), client(proxy, KEY_B)
    ra, h = chat(a, "What is our refund policy?")
    assert h["x-semcache-stage"] == "miss" and h["x-semcache-key"].startswith("team-a:")
    rb, h = chat(b, "What is our refund policy?")
    assert h["x-semcache-stage"] == "miss" and h["x-semcache-key"].startswith("team-b:")
    assert ra.choices[0].message.content != rb.choices[0].message.content  # (call N)
    assert fake.calls["chat/completions"] == 2
    again, h = chat(a, "What is our refund policy?")
    assert h["x-semcache-stage"] == "exact"
    assert again.choices[0].message.content == ra.choices[0].message.content
    shared, h = chat(client(proxy, KEY_A2), "What is our refund policy?")
    assert h["x-semcache-stage"] == "exact"  # shared by the config: same namespace
    assert shared.choices[0].message.content == ra.choices[0].message.content
    # a client key may not read another namespace by asking for it
    with pytest.raises(openai.PermissionDeniedError):
        chat(b, "What is our refund policy?", extra_body={"cache": {"namespace": "team-a"}})
    # the master key may call everything, in the default namespace unless it says otherwise
    _, h = chat(client(proxy), "What is our refund policy?")
    assert h["x-semcache-stage"] == "miss" and h["x-semcache-key"].startswith("default:")
    _, h = chat(client(proxy), "What is our refund policy?",
                extra_body={"cache": {"namespace": "team-a"}})
    assert h["x-semcache-stage"] == "exact"
    with pytest.raises(openai.PermissionDeniedError):  # outside what flush would reach
        chat(client(proxy), "What is our refund policy?",
             extra_body={"cache": {"namespace": "elsewhere"}})
    with pytest.raises(openai.AuthenticationError):
        chat(client(proxy, "sk-wrong"), "What is our refund policy?")
    assert stats(proxy)["by_namespace"] == {"team-a": {"miss": 1, "exact": 3},
                                            "team-b": {"miss": 1}, "default": {"miss": 1}}


@pytest.mark.parametrize("key", [None, "sk-wrong", KEY_A])
def test_management_needs_the_master_key_and_reveals_nothing(proxies, key):
    proxy = proxies.start()
    chat(client(proxy, KEY_A), "secret question")  # something that could leak
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    for method, path in [("GET", "/cache/ping"), ("POST", "/cache/delete"),
                         ("POST", "/cache/flush"), ("POST", "/cache/flushall"),
                         ("POST", "/cache/ttl"), ("GET", "/cache/stats"), ("GET", "/metrics")]:
        r = httpx.request(method, proxy.url + path, headers=headers,
                          json={"keys": ["team-a:x"], "ttl": 5} if method == "POST" else None)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert "team-a" not in r.text and "secret" not in r.text
    if key is None:
        r = httpx.get(proxy.url + "/v1/models")
        assert r.status_code == 401
    assert httpx.get(proxy.url + "/health").json() == {"status": "ok"}
    # the entry survived every refused call
    _, h = chat(client(proxy, KEY_A), "secret question")
    assert h["x-semcache-stage"] == "exact"


def test_flush_is_scoped_to_this_proxys_namespaces(proxies, fake):
    store = MemoryStore()
    cache = Cache(type=None, store=store)
    # another application's entry on the same server, in a namespace the proxy does not own
    cache.add_cache({"answer": 42}, model="chat", messages=ask("other app"),
                    cache={"namespace": "other-app"})
    proxy = proxies.start(cache=cache)
    chat(client(proxy, KEY_A), "to flush a")
    chat(client(proxy, KEY_B), "to flush b")
    chat(client(proxy), "to flush default")
    r = httpx.post(proxy.url + "/cache/flush", json={"namespace": "other-app"}, headers=master())
    assert r.status_code == 400
    r = httpx.post(proxy.url + "/cache/flush", json={"namespace": "team-b"}, headers=master())
    assert r.json()["flushed"] == {"team-b": 1}
    r = httpx.post(proxy.url + "/cache/flushall", headers=master())
    assert r.status_code == 200 and r.json()["flushed"] == {"default": 1, "team-a": 1,
                                                            "team-b": 0}
    assert len(store) == 1  # never the whole server
    hit = cache.lookup(model="chat", messages=ask("other app"), cache={"namespace": "other-app"})
    assert hit is not None and hit.value == {"answer": 42}
    _, h = chat(client(proxy, KEY_A), "to flush a")
    assert h["x-semcache-stage"] == "miss"


def test_delete_and_ttl_by_key(proxies, fake):
    proxy = proxies.start()
    c = client(proxy)
    _, h = chat(c, "delete me")
    key = h["x-semcache-key"]
    r = httpx.post(proxy.url + "/cache/ttl", json={"keys": [key], "ttl": 3600}, headers=master())
    assert r.json()["updated"] == {key: True}
    r = httpx.post(proxy.url + "/cache/ttl", json={"keys": [key], "ttl": -1}, headers=master())
    assert r.status_code == 400 and "ttl" in r.json()["error"]["message"]
    _, h = chat(c, "delete me")
    assert h["x-semcache-stage"] == "exact" and int(h["age"]) >= 0
    r = httpx.post(proxy.url + "/cache/delete", json={"keys": [key]}, headers=master())
    assert r.json() == {"status": "success", "deleted": 1}
    _, h = chat(c, "delete me")
    assert h["x-semcache-stage"] == "miss"
    assert fake.calls["chat/completions"] == 2
    r = httpx.post(proxy.url + "/cache/delete", json={"keys": ["elsewhere:abc"]},
                   headers=master())
    assert r.status_code == 400
    # a bad ttl is a 400 whatever the keys: with none given it was a 200 "success"
    for body in ({"keys": [], "ttl": "soon"}, {"keys": [], "ttl": -1}):
        r = httpx.post(proxy.url + "/cache/ttl", json=body, headers=master())
        assert r.status_code == 400 and "ttl" in r.json()["error"]["message"]
    # in this proxy's namespace but no entry's key: a 400 naming it, never a 500
    for path, body in (("/cache/delete", {"keys": ["default:"]}),
                       ("/cache/ttl", {"keys": ["default:"], "ttl": 60})):
        r = httpx.post(proxy.url + path, json=body, headers=master())
        assert r.status_code == 400 and "'default:'" in r.json()["error"]["message"]


class DeadStore(ExactStore):
    """A store whose server is down: every call fails the way a real client's would."""

    name = "dead"

    def _down(self, *a):
        raise BackendUnavailable("connection refused", backend=self.name)

    get = set = delete = clear = ping = _down


def test_a_dead_backend_still_answers_through_the_upstream(proxies, fake):
    proxy = proxies.start(cache=Cache(type=None, store=DeadStore()))
    c = client(proxy)
    for i in (1, 2):
        resp, h = chat(c, "still works?")
        assert resp.choices[0].message.content.startswith("echo: still works?")
        assert h["x-semcache-stage"] == "miss"
        assert fake.calls["chat/completions"] == i
    r = httpx.get(proxy.url + "/cache/ping", headers=master())
    assert r.status_code == 503
    assert r.json()["down"] == ["store (dead)"]
    assert "connection refused" in r.json()["backends"]["store"]["error"]
    s = stats(proxy)
    assert s["backend_errors"]["store"] >= 4  # two gets, two sets
    metrics = httpx.get(proxy.url + "/metrics", headers=master()).text
    assert re.search(r'semcache_proxy_backend_errors_total\{backend="store"\} [4-9]', metrics)


def test_ping_lists_every_backend_with_latency(proxies, semantic_cache):
    proxy = proxies.start(cache=semantic_cache)
    r = httpx.get(proxy.url + "/cache/ping", headers=master())
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and set(body["backends"]) == {"store", "index"}
    assert all(b["ok"] and b["latency_ms"] >= 0 for b in body["backends"].values())


def test_200_concurrent_requests_all_answered_and_stats_add_up(proxies, fake):
    # the exact-stage cache from the config: this is about the server, not the embedder
    # (BatchingEmbedder under concurrency has its own test and the load benchmark)
    proxy = proxies.start()
    fake.delay_ms = 20
    questions = [f"Question number {i} about topic {i * 7}?" for i in range(20)]

    async def run():
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=proxy.base_url, headers=master(),
                                     limits=limits, timeout=60) as http:
            async def one(i):
                r = await http.post("/chat/completions", json={
                    "model": "chat", "messages": ask(questions[i % 20])})
                return r.status_code, r.headers["x-semcache-stage"]
            return await asyncio.gather(*(one(i) for i in range(200)))

    results = asyncio.run(run())
    assert all(code == 200 for code, _ in results)
    stages: dict[str, int] = {}
    for _, st in results:
        stages[st] = stages.get(st, 0) + 1
    s = stats(proxy)
    assert s["requests"] == 200 and s["by_stage"] == stages
    assert s["hits"] + s["misses"] == 200
    assert fake.calls["chat/completions"] == s["misses"] == s["upstream"]["calls"]
    assert s["misses"] >= 20  # every question was asked upstream at least once


def test_embeddings_completions_transcriptions_and_models(proxies, fake, semantic_cache):
    proxy = proxies.start(cache=semantic_cache)
    c = client(proxy)
    e1 = c.embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    e2 = c.embeddings.with_raw_response.create(model="embed", input=["a", "b"])
    assert (e1.headers["x-semcache-stage"], e2.headers["x-semcache-stage"]) == ("miss", "exact")
    assert e1.parse().data[1].embedding == e2.parse().data[1].embedding
    assert fake.calls["embeddings"] == 1

    t1 = c.completions.with_raw_response.create(model="instruct",
                                                prompt="Translate 'cat' into French")
    t2 = c.completions.with_raw_response.create(model="instruct",
                                                prompt="Translate the word 'cat' into French")
    assert t2.headers["x-semcache-stage"] == "semantic"
    assert t2.parse().choices[0].text == t1.parse().choices[0].text
    assert fake.calls["completions"] == 1

    audio = bytes(range(256)) * 40
    r1 = c.audio.transcriptions.with_raw_response.create(model="whisper",
                                                         file=("a.wav", audio))
    r2 = c.audio.transcriptions.with_raw_response.create(model="whisper",
                                                         file=("renamed.wav", audio))
    r3 = c.audio.transcriptions.with_raw_response.create(model="whisper",
                                                         file=("a.wav", audio[:-1]))
    assert [r.headers["x-semcache-stage"] for r in (r1, r2, r3)] == ["miss", "exact", "miss"]
    assert r2.parse().text == r1.parse().text
    assert r1.parse().text.startswith(fake_transcript(audio))
    assert fake.calls["audio/transcriptions"] == 2
    text = c.audio.transcriptions.create(model="whisper", file=("a.wav", audio),
                                         response_format="text")
    again = c.audio.transcriptions.with_raw_response.create(
        model="whisper", file=("a.wav", audio), response_format="text")
    assert again.headers["x-semcache-stage"] == "exact" and again.text == text
    # repeated form fields reach the upstream as repeated fields
    verbose = c.audio.transcriptions.create(model="whisper", file=("a.wav", audio),
                                            response_format="verbose_json",
                                            timestamp_granularities=["word", "segment"])
    assert verbose.text.startswith(fake_transcript(audio))
    sent = fake.requests[-1]["body"]
    assert sent["model"] == "whisper-1"
    assert sent["timestamp_granularities"] == ["word", "segment"]  # the fake drops []

    assert sorted(m.id for m in c.models.list()) == sorted(
        ["chat", "chat-eu", "solo", "limited", "embed", "whisper", "instruct"])
    assert fake.calls["models"] == 0


def test_caching_groups_share_entries_and_upstream_names_are_mapped(proxies, fake):
    proxy = proxies.start()
    c = client(proxy)
    first, _ = chat(c, "grouped question", model="chat")
    second, h = chat(c, "grouped question", model="chat-eu")
    assert h["x-semcache-stage"] == "exact"
    assert second.choices[0].message.content == first.choices[0].message.content
    _, h = chat(c, "grouped question", model="solo")  # not in the group
    assert h["x-semcache-stage"] == "miss"
    assert [r["body"]["model"] for r in fake.requests] == ["gpt-4o-mini", "gpt-4o"]
    assert all("cache" not in r["body"] for r in fake.requests)


def test_per_request_controls_from_body_and_cache_control_header(proxies, fake):
    proxy = proxies.start()
    c = client(proxy)
    chat(c, "controls")
    _, h = chat(c, "controls", extra_body={"cache": {"no-cache": True}})
    assert h["x-semcache-stage"] == "skipped"  # not served, but the fresh answer stored
    fresh, h = chat(c, "controls")
    assert h["x-semcache-stage"] == "exact" and fresh.choices[0].message.content.endswith(
        "(call 2)")
    _, h = chat(c, "controls", extra_headers={"Cache-Control": "max-age=0"})
    assert h["x-semcache-stage"] == "skipped"
    _, h = chat(c, "never stored", extra_headers={"Cache-Control": "no-store"})
    _, h = chat(c, "never stored")
    assert h["x-semcache-stage"] == "miss"
    _, h = chat(c, "controls", extra_body={"caching": False})
    assert h["x-semcache-stage"] == "skipped"
    assert all("caching" not in r["body"] and "cache" not in r["body"] for r in fake.requests)
    # LiteLLM's custom cache_key (the master key may use it) wins over the request; one
    # that is not a short printable string is refused, naming it
    _, h = chat(c, "first wording", extra_body={"cache_key": "faq-42"})
    assert h["x-semcache-key"] == "default:faq-42" and h["x-semcache-stage"] == "miss"
    _, h = chat(c, "another wording", extra_body={"cache_key": "faq-42"})
    assert h["x-semcache-stage"] == "exact"
    with pytest.raises(openai.BadRequestError, match="cache_key"):
        chat(c, "odd key", extra_body={"cache_key": 5})
    assert all(not {"caching", "cache", "cache_key"} & set(r["body"]) for r in fake.requests)
    with pytest.raises(openai.BadRequestError, match="unknown cache control"):
        chat(c, "controls", extra_body={"cache": {"no-cahce": True}})


def test_curl_sees_the_headers(proxies, fake):
    proxy = proxies.start()
    body = json.dumps({"model": "chat", "messages": ask("curl question")})
    cmd = ["curl", "-s", "-D", "-", "-H", f"Authorization: Bearer {MASTER}", "-H",
           "Content-Type: application/json", "-d", body, proxy.base_url + "/chat/completions"]
    out1 = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    out2 = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    assert "HTTP/1.1 200" in out1 and "x-semcache-stage: miss" in out1
    assert "x-semcache-hit: true" in out2 and "x-semcache-stage: exact" in out2
    assert re.search(r"\nage: \d+", out2)
    assert json.loads(out2.split("\n\n", 1)[1])["choices"][0]["message"]["content"] == \
        "echo: curl question (call 1)"


def test_streamed_tool_calls_and_text_completions_are_assembled_and_replayed(proxies, fake):
    proxy = proxies.start()
    c = client(proxy)
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}}}}]

    def streamed_call():
        raw = c.chat.completions.with_raw_response.create(
            model="chat", messages=ask("Weather in Paris?"), tools=tools,
            tool_choice="required", stream=True)
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for ch in raw.parse():
            for choice in ch.choices:
                for tc in choice.delta.tool_calls or ():
                    d = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    d["id"] = tc.id or d["id"]
                    d["name"] += tc.function.name or ""
                    d["arguments"] += tc.function.arguments or ""
                finish = choice.finish_reason or finish
        return raw.headers["x-semcache-stage"], calls, finish

    stage1, calls1, finish1 = streamed_call()
    stage2, calls2, finish2 = streamed_call()
    assert (stage1, stage2) == ("miss", "exact")
    assert calls1 == calls2 and calls1[0]["name"] == "get_weather"
    assert json.loads(calls1[0]["arguments"]) is not None
    assert finish1 == finish2 == "tool_calls"
    # the stored entry is the complete message, as a non-streaming client gets it
    resp, h = chat(c, "Weather in Paris?", tools=tools, tool_choice="required")
    assert h["x-semcache-stage"] == "exact"
    assert resp.choices[0].message.tool_calls[0].function.arguments == calls1[0]["arguments"]
    assert fake.calls["chat/completions"] == 1

    texts = []
    for _ in range(2):
        raw = c.completions.with_raw_response.create(model="instruct", prompt="Say hi",
                                                     stream=True)
        texts.append((raw.headers["x-semcache-stage"],
                      "".join(ch.choices[0].text for ch in raw.parse() if ch.choices)))
    assert [t[0] for t in texts] == ["miss", "exact"]
    assert texts[0][1] == texts[1][1] == "echo: Say hi (call 1)"
    assert fake.calls["completions"] == 1


def test_litellm_embedding_model_named_in_model_list_is_called_on_its_deployment(proxies,
                                                                                   fake):
    # LiteLLM's redis_semantic_cache_embedding_model / qdrant_... name a model_list entry;
    # the same for the embedded type here (no Redis needed to test the mapping)
    proxy = proxies.start(litellm_settings={"cache": True, "cache_params": {
        "type": "faiss-semantic", "embedding_model": "embed", "similarity_threshold": 0.9}})
    cache = proxy.state.cache
    assert isinstance(cache.embedder, BatchingEmbedder)
    assert cache.embedder.model_id.endswith("text-embedding-3-small")
    c = client(proxy)
    _, h = chat(c, "embedded upstream")
    assert h["x-semcache-stage"] == "miss"
    assert fake.calls["embeddings"] == 1  # the query was embedded by the deployment
    emb_req = next(r for r in fake.requests if r["endpoint"] == "embeddings")
    assert emb_req["body"]["model"] == "text-embedding-3-small"
    _, h = chat(c, "embedded upstream")
    assert h["x-semcache-stage"] == "exact" and fake.calls["embeddings"] == 1


def test_verified_policy_explorations_show_in_the_stats(proxies, fake, minilm):
    # the proxy's cache learns like any other: a paraphrase the young policy cannot
    # vouch for is explored, the upstream's fresh answer judged against the cached one
    cache = Cache(type="faiss-semantic", embedder=minilm, target_error_rate=0.05,
                  judge="exact")
    try:
        proxy = proxies.start(cache=cache)
        c = client(proxy)
        _, h = chat(c, "How do I learn Python quickly?")
        assert h["x-semcache-stage"] == "miss"
        _, h = chat(c, "What is the fastest way to learn Python?")
        assert h["x-semcache-stage"] == "miss" and fake.calls["chat/completions"] == 2
        ps = stats(proxy)["cache"]["policy_stats"]
        # the fake upstream numbers its answers, so the exact judge finds them different
        assert ps["explored"] + ps["audited"] == 1 and ps["judged"] == 1
        assert ps["judged_wrong"] == 1 and ps["target_error_rate"] == 0.05
        assert ps["per"] == "request"
    finally:
        cache.close()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_value_that_is_not_an_answer_is_a_miss_not_a_500(proxies, fake, stream):
    """Another writer (an older version, the library's add_cache, a hostile process with
    access to the store) may have stored any JSON under a request's key: the proxy never
    answers it as a hit (a list, an error object), never fails with a 500 replaying or
    encoding it (choices: [1], nesting deeper than the encoder takes); it asks upstream."""
    cache = Cache(type="local")
    proxy = proxies.start(cache=cache)
    body = {"model": "chat", "messages": ask("stored garbage"), "stream": stream}
    first = httpx.post(proxy.base_url + "/chat/completions", json=body, headers=master())
    assert first.status_code == 200
    key = first.headers["x-semcache-key"]
    good = json.loads(cache.store.get(key))
    answer = good["value"]
    bad_values = {
        "a list": b"[1,2]",
        "a string": b'"abc$text"',
        "an error object": b'{"error":{"message":"planted"}}',
        "choices of numbers": json.dumps({**answer, "choices": [1]}).encode(),
        "a text transcription": b'{"$text":"planted","$content_type":5}',
        # in a tool call: both the JSON reply and the stream replay carry it
        "nested deeper than the encoder takes": json.dumps({**answer, "choices": [{
            **answer["choices"][0], "message": {**answer["choices"][0]["message"],
                                                "tool_calls": [{"x": "@@"}]}}]}
        ).encode().replace(b'"@@"', _deep(400)),
    }
    for case, value in bad_values.items():
        rec = json.dumps({**good, "value": "@@"}).encode().replace(b'"@@"', value)
        cache.store.set(key, rec)
        calls = fake.calls["chat/completions"]
        r = httpx.post(proxy.base_url + "/chat/completions", json=body, headers=master())
        assert r.status_code == 200, (case, r.text[:200])
        assert r.headers["x-semcache-hit"] == "false", case
        assert fake.calls["chat/completions"] == calls + 1, case  # asked upstream
        assert b"planted" not in r.content, case
        if not stream:
            assert r.json()["choices"][0]["message"]["content"], case


def test_the_body_wins_over_the_header_under_any_spelling(proxies, fake):
    # the body's cache controls win over Cache-Control (docs/proxy.md), whichever of a
    # control's names each uses: a header s-maxage and a body s_maxage are one control
    proxy = proxies.start()
    c = client(proxy)
    chat(c, "spelled")
    _, h = chat(c, "spelled", extra_headers={"Cache-Control": "no-cache"},
                extra_body={"cache": {"no_cache": False}})
    assert h["x-semcache-stage"] == "exact"
    _, h = chat(c, "spelled", extra_headers={"Cache-Control": "max-age=0"},
                extra_body={"cache": {"s_maxage": 3600}})
    assert h["x-semcache-stage"] == "exact"
    with pytest.raises(openai.BadRequestError, match="no_store"):
        chat(c, "spelled", extra_body={"cache": {"no-store": True, "no_store": False}})


class _WriteFailsFor(MemoryStore):
    """A memory store whose writes to one key fail the way a server dropping the
    connection mid-request does; every other call is the real store's."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    def set(self, key, value, ttl=None):
        if key == self.bad:
            raise BackendUnavailable("connection reset by peer", backend=self.name)
        return super().set(key, value, ttl)


def test_ttl_reports_the_keys_it_changed_before_one_failed(proxies, fake):
    """/cache/ttl changes keys one at a time: a failure after the first left it changed
    while the reply was a plain 400/503, so the caller could not tell what happened.
    Keys no entry can have are refused before any change; a later failure names the
    failed key and lists the ones already updated (as /cache/flush does)."""
    store = _WriteFailsFor("default:boom")
    proxy = proxies.start(cache=Cache(type=None, store=store))
    c = client(proxy)
    k1 = chat(c, "first ttl")[1]["x-semcache-key"]
    k2 = chat(c, "second ttl")[1]["x-semcache-key"]

    def post(body):
        return httpx.post(proxy.url + "/cache/ttl", json=body, headers=master())

    r = post({"keys": [k1, "default:"], "ttl": 60})
    assert r.status_code == 400 and "'default:'" in r.json()["error"]["message"]
    assert store.get_with_ttl(k1)[1] is None  # refused up front: k1 untouched

    MemoryStore.set(store, "default:corrupt", b"not json")
    r = post({"keys": [k1, "default:corrupt", k2], "ttl": 60})
    assert r.status_code == 400, r.text
    assert r.json()["updated"] == {k1: True}
    assert r.json()["failed_key"] == "default:corrupt"
    assert 0 < store.get_with_ttl(k1)[1] <= 60 and store.get_with_ttl(k2)[1] is None

    MemoryStore.set(store, "default:boom", store.get(k2))
    r = post({"keys": [k2, "default:boom", k1], "ttl": 120})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"]["code"] == "backend_unavailable"
    assert body["updated"] == {k2: True} and body["failed_key"] == "default:boom"
    assert 60 < store.get_with_ttl(k2)[1] <= 120 and store.get_with_ttl(k1)[1] <= 60


def test_ttl_refuses_both_key_and_keys(proxies, fake):
    """{"key": a, "keys": [b]} silently changed a alone: a 400 naming both, nothing done."""
    store = MemoryStore()
    proxy = proxies.start(cache=Cache(type=None, store=store))
    c = client(proxy)
    k1 = chat(c, "one key")[1]["x-semcache-key"]
    k2 = chat(c, "other key")[1]["x-semcache-key"]
    r = httpx.post(proxy.url + "/cache/ttl", json={"key": k1, "keys": [k2], "ttl": 60},
                   headers=master())
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert '"key"' in message and '"keys"' in message
    assert store.get_with_ttl(k1)[1] is None and store.get_with_ttl(k2)[1] is None
    r = httpx.post(proxy.url + "/cache/ttl", json={"key": k1, "ttl": 60}, headers=master())
    assert r.json()["updated"] == {k1: True}
