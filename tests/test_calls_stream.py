"""Streaming: a miss is passed through as it arrives and stored only once complete; a hit
replays as a stream of chunks of the same shape."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import time

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import semcache
from semcache import Cache
from semcache._calls import aclose_clients
from semcache_testing.fake_openai import DROP
from tests.calls_support import MSG, api, fake, fake_server, kw, text_of  # noqa: F401

CHAT = "chat/completions"
USAGE = {"stream_options": {"include_usage": True}}


def test_docs_streaming_miss_then_hit(api, fake, kw):
    semcache.cache = Cache()
    s1, miss = api.stream(model="m", messages=MSG, **USAGE, **kw)
    s2, hit = api.stream(model="m", messages=MSG, **USAGE, **kw)
    assert fake.calls[CHAT] == 1
    assert s1._hidden_params["cache_hit"] is False and s2._hidden_params["cache_hit"] is True
    assert s2._hidden_params["cache"]["stage"] == "exact"
    assert text_of(miss) == text_of(hit) == "echo: What is the capital of France?"
    for chunks in (miss, hit):
        assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
        assert chunks[0].choices[0].delta.role == "assistant"
        finals = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert finals[-1] == "stop" and set(finals[:-1]) == {None}
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert all(c.usage is None for c in chunks[:-1])
    assert hit[-1].usage == miss[-1].usage  # the original usage figures
    assert {c.id for c in hit} == {miss[0].id}
    # "a few" content chunks on replay, whatever the length of the answer
    assert 1 <= sum(1 for c in hit if c.choices and c.choices[0].delta.content) <= 4
    # the assembled response is stored and exposed
    assert isinstance(s1.response, ChatCompletion)
    assert s1.response.choices[0].message.content == text_of(miss)
    assert s1.response.usage == miss[-1].usage


def test_stream_hit_without_include_usage_has_no_usage_chunk(api, fake, kw):
    semcache.cache = Cache()
    api.stream(model="m", messages=MSG, **USAGE, **kw)
    _, hit = api.stream(model="m", messages=MSG, **kw)  # stream_options is not in the key
    assert fake.calls[CHAT] == 1
    assert all(c.choices for c in hit) and all(c.usage is None for c in hit)


def test_stream_with_n_choices(api, fake, kw):
    semcache.cache = Cache()
    _, miss = api.stream(model="m", messages=MSG, n=2, **kw)
    s, hit = api.stream(model="m", messages=MSG, n=2, **kw)
    assert fake.calls[CHAT] == 1 and len(s.response.choices) == 2
    for chunks in (miss, hit):
        for i in (0, 1):
            assert "".join(c.choices[0].delta.content or "" for c in chunks
                           if c.choices and c.choices[0].index == i) == \
                "echo: What is the capital of France?"


def test_abandoned_stream_is_not_stored(fake, kw):
    semcache.cache = Cache()
    seen = []
    semcache.success_callback = [seen.append]
    s = semcache.completion(model="m", messages=MSG, stream=True, **kw)
    first = next(iter(s))
    assert first.choices[0].delta.role == "assistant"
    s.close()
    with semcache.completion(model="m", messages=MSG, stream=True, **kw) as s2:
        assert s2._hidden_params["cache_hit"] is False
        assert text_of(list(s2)) == "echo: What is the capital of France?"
    assert fake.calls[CHAT] == 2
    assert semcache.cache.stats()["stores"] == 1  # only the completed stream
    assert [p["cache_hit"] for p in seen] == [False]  # callbacks fire on completion only


async def test_abandoned_async_stream_is_not_stored(fake, kw):
    semcache.cache = Cache()
    try:
        s = await semcache.acompletion(model="m", messages=MSG, stream=True, **kw)
        async for _ in s:
            break
        await s.aclose()
        async with await semcache.acompletion(model="m", messages=MSG, stream=True,
                                              **kw) as s2:
            chunks = [c async for c in s2]
        s3 = await semcache.acompletion(model="m", messages=MSG, stream=True, **kw)
        replay = [c async for c in s3]
    finally:
        await aclose_clients()
    assert fake.calls[CHAT] == 2
    assert s3._hidden_params["cache_hit"] is True and text_of(replay) == text_of(chunks)


def test_miss_is_passed_through_as_it_arrives(fake, kw):
    # the upstream sends a chunk every 80 ms; the first must reach the caller long before
    # the stream ends, and nothing is stored until it has ended
    semcache.cache = Cache()
    fake.chunk_delay_ms = 80
    msgs = [{"role": "user", "content": "one two three four five six"}]
    t0 = time.perf_counter()
    s = semcache.completion(model="m", messages=msgs, stream=True, **kw)
    it = iter(s)
    next(it)
    first = time.perf_counter() - t0
    assert semcache.cache.stats()["stores"] == 0
    rest = list(it)
    total = time.perf_counter() - t0
    assert len(rest) >= 8 and total >= 0.6
    assert first < total - 0.4
    assert semcache.cache.stats()["stores"] == 1


def test_stream_error_propagates_and_is_not_cached(api, fake, kw):
    semcache.cache = Cache()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            api.stream(model="fail-500", messages=MSG, **kw)
    assert fake.calls[CHAT] == 2 and semcache.cache.stats()["stores"] == 0


def test_stream_callback_gets_the_assembled_response(api, fake, kw):
    seen = []
    semcache.success_callback = [seen.append]
    semcache.cache = Cache()
    api.stream(model="m", messages=MSG, **kw)
    api.stream(model="m", messages=MSG, **kw)
    assert [(p["cache_hit"], p["stream"]) for p in seen] == [(False, True), (True, True)]
    for p in seen:
        assert isinstance(p["response"], ChatCompletion)
        assert p["response"].choices[0].message.content == \
            "echo: What is the capital of France?"


def test_concurrent_async_streams(fake, kw):
    semcache.cache = Cache()

    async def one(i):
        s = await semcache.acompletion(model="m", messages=[{"role": "user",
                                                             "content": f"q{i}"}],
                                       stream=True, **kw)
        return text_of([c async for c in s])

    async def main():
        try:
            first = await asyncio.gather(*(one(i) for i in range(8)))
            second = await asyncio.gather(*(one(i) for i in range(8)))
        finally:
            await aclose_clients()
        return first, second

    first, second = asyncio.run(main())
    assert first == second == [f"echo: q{i}" for i in range(8)]
    assert fake.calls[CHAT] == 8


def test_stream_failing_midway_is_not_stored(api, fake, kw):
    semcache.cache = Cache()
    for _ in range(2):
        with pytest.raises(openai.APIConnectionError):
            api.stream(model="fail-midstream", messages=MSG, **kw)
    assert fake.calls[CHAT] == 2 and semcache.cache.stats()["stores"] == 0
    # the chunks that did arrive were passed on before the error
    got = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in semcache.completion(model="fail-midstream", messages=MSG, stream=True,
                                         **kw):
            got.append(chunk)  # noqa: PERF402 - list() would lose what arrived
    assert len(got) == 2 and semcache.cache.stats()["stores"] == 0


TOOLS = [{"type": "function", "function": {
    "name": "lookup", "parameters": {"type": "object", "properties": {
        "echo": {"type": "string"}}}}}]


def test_streamed_tool_call_is_assembled_stored_and_replayed(api, fake, kw):
    semcache.cache = Cache()
    ask = dict(model="m", messages=MSG, tools=TOOLS, tool_choice="required", **kw)
    s1, miss = api.stream(**ask)
    s2, hit = api.stream(**ask)
    assert fake.calls[CHAT] == 1 and s2._hidden_params["cache_hit"] is True
    plain = api.completion(model="m", messages=MSG, tools=TOOLS, tool_choice="required",
                           **kw)  # the same answer, not streamed (its own entry)
    want = plain.choices[0].message
    for s in (s1, s2):
        got = s.response.choices[0]
        assert got.finish_reason == "tool_calls" and got.message.content is None
        assert [t.function for t in got.message.tool_calls] == \
            [t.function for t in want.tool_calls]
    assert s2.response.choices[0].message.tool_calls == s1.response.choices[0].message.tool_calls
    for chunks in (miss, hit):
        args = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                       for c in chunks if c.choices and c.choices[0].delta.tool_calls)
        assert args == want.tool_calls[0].function.arguments == \
            '{"echo": "What is the capital of France?"}'


# ---------------------------------------------------------------------- scripted streams
# (FakeOpenAI.stream_script: what a real upstream can send and the fake's own answers
# never do)
def _chunk(delta: dict, finish: str | None = None, index: int = 0, **extra) -> dict:
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": index, "delta": delta, "logprobs": None,
                                       "finish_reason": finish}], **extra}


def _text_chunk(text: str, finish: str | None = None) -> dict:
    return {"id": "cmpl-s", "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": text, "logprobs": None,
                         "finish_reason": finish}]}


FUNCTIONS = [{"name": "lookup", "parameters": {"type": "object", "properties": {
    "q": {"type": "string"}}}}]
FUNCTION_CALL_STREAM = [
    _chunk({"role": "assistant", "content": None}),
    _chunk({"function_call": {"name": "lookup", "arguments": ""}}),
    _chunk({"function_call": {"arguments": '{"q": "Par'}}),
    _chunk({"function_call": {"arguments": 'is"}'}}),
    _chunk({}, "function_call"),
    "[DONE]",
]


def test_streamed_legacy_function_call_is_stored_and_replayed_whole(api, fake, kw):
    """The legacy ``functions`` answer streams ``delta.function_call`` pieces; the
    assembly used to drop them, so every later user got an empty answer with
    finish_reason "function_call" instead of the call."""
    semcache.cache = Cache()
    fake.stream_script = FUNCTION_CALL_STREAM
    ask = dict(model="m", messages=MSG, functions=FUNCTIONS, **kw)
    s1, miss = api.stream(**ask)
    s2, hit = api.stream(**ask)
    plain = api.completion(**ask)  # the streamed answer serves a plain request too
    assert fake.calls[CHAT] == 1 and s2._hidden_params["cache_hit"] is True
    want = {"name": "lookup", "arguments": '{"q": "Paris"}'}
    for msg, finish in ((s1.response.choices[0].message, s1.response.choices[0].finish_reason),
                        (plain.choices[0].message, plain.choices[0].finish_reason)):
        assert finish == "function_call" and msg.content is None
        assert msg.function_call is not None and msg.function_call.model_dump() == want
    for chunks in (miss, hit):
        calls = [c.choices[0].delta.function_call for c in chunks
                 if c.choices and c.choices[0].delta.function_call]
        assert "".join(f.name or "" for f in calls) == "lookup"
        assert "".join(f.arguments or "" for f in calls) == want["arguments"]
        assert [c.choices[0].finish_reason for c in chunks][-1] == "function_call"


@pytest.mark.parametrize("bad", [
    _chunk({"content": 5}),  # a content piece that is not text
    {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": ["not a choice"]},
    _chunk({"tool_calls": [{"index": [0], "function": {"name": "f"}}]}),
])
def test_a_malformed_chunk_reaches_the_caller_and_nothing_is_stored(api, fake, kw, bad):
    """A chunk the client passes on (it does not validate chunks) is the caller's to
    judge: the cache's bookkeeping must neither break the caller's stream with a raw
    TypeError/AttributeError nor store an answer it could not assemble faithfully."""
    semcache.cache = Cache()
    fake.stream_script = [_chunk({"role": "assistant", "content": ""}),
                          _chunk({"content": "Paris"}), bad, _chunk({}, "stop"), "[DONE]"]
    for _ in range(2):
        s, chunks = api.stream(model="m", messages=MSG, **kw)
        assert len(chunks) == 4 and s.response is None
    assert fake.calls[CHAT] == 2 and semcache.cache.stats()["stores"] == 0


@pytest.mark.parametrize("name", ["completion", "text_completion"])
@pytest.mark.parametrize("cut", ["drop", "error event", "bad json", "no finish_reason"])
def test_a_stream_cut_short_stores_nothing_chat_and_text(api, fake, kw, name, cut):
    semcache.cache = Cache()
    piece = (_chunk({"content": "Paris"}) if name == "completion" else _text_chunk("Paris"))
    end = (_chunk({}, "stop") if name == "completion" else _text_chunk("", "stop"))
    fake.stream_script = [piece, *{
        "drop": [DROP],
        "error event": [{"error": {"message": "overloaded", "type": "server_error"}}, end,
                        "[DONE]"],
        "bad json": ['{"id": "cmpl-s", "choices": [', end, "[DONE]"],
        "no finish_reason": ["[DONE]"],
    }[cut]]
    ask = dict(model="m", **kw, **({"messages": MSG} if name == "completion"
                                   else {"prompt": "capital?"}))
    for _ in range(2):
        try:
            s, _chunks = api.stream(name, **ask)
        except (openai.APIError, ValueError):
            pass  # the upstream's failure is the caller's, as without a cache
        else:
            assert cut == "no finish_reason" and s.response is None
    assert semcache.cache.stats()["stores"] == 0 and fake.total_calls == 2


CITE = [{"type": "url_citation", "url_citation": {"url": "https://example.com/paris",
                                                   "title": "Paris", "start_index": 0,
                                                   "end_index": 5}}]
AUDIO = {"id": "audio_1", "data": "UklGRg==", "transcript": "Paris.",
         "expires_at": 1700003600}
RICH_STREAM = [  # a search model's citations and an audio answer, as OpenAI streams them
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Paris."}),
    _chunk({"annotations": CITE}),
    _chunk({"audio": {"id": "audio_1", "transcript": "Par", "data": "Ukl"}}),
    _chunk({"audio": {"transcript": "is.", "data": "GRg=="}}),
    _chunk({}, "stop"),
    {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"audio": {"expires_at": 1700003600}}}]},
    "[DONE]",
]


def test_streamed_citations_and_audio_are_stored_and_replayed_whole(api, fake, kw):
    """``delta.annotations`` and ``delta.audio`` used to be dropped on the way into the
    cache: the first user got the citations and the audio, every later one did not."""
    semcache.cache = Cache()
    fake.stream_script = RICH_STREAM
    s1, miss = api.stream(model="m", messages=MSG, **kw)
    s2, hit = api.stream(model="m", messages=MSG, **kw)
    plain = api.completion(model="m", messages=MSG, **kw)
    assert fake.calls[CHAT] == 1 and s2._hidden_params["cache_hit"] is True
    for msg in (s1.response.choices[0].message, plain.choices[0].message):
        assert msg.content == "Paris."
        assert [a.model_dump() for a in msg.annotations] == CITE
        assert msg.audio is not None and msg.audio.model_dump() == AUDIO
    for chunks in (miss, hit):
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        notes = [a for d in deltas for a in (getattr(d, "annotations", None) or ())]
        assert [a if isinstance(a, dict) else a.model_dump() for a in notes] == CITE
        audio = [d.audio for d in deltas if d.audio is not None]
        assert "".join(a.data or "" for a in audio) == AUDIO["data"]
        assert "".join(a.transcript or "" for a in audio) == AUDIO["transcript"]
        assert [a.expires_at for a in audio if a.expires_at] == [AUDIO["expires_at"]]


AZURE_HEAD = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
              "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}


def test_a_blank_first_chunk_does_not_blank_the_stored_answers_id_and_model(api, fake, kw):
    """Azure OpenAI opens a stream with a content-filter chunk whose id, model and
    created are blank ("", "", 0); the assembler took the whole head from that first
    chunk, so the answer it stored (and every later hit) had id "", model "" and no
    system_fingerprint, where the caller of the miss had seen the real ones."""
    semcache.cache = Cache()
    real = {"system_fingerprint": "fp_azure"}
    fake.stream_script = [AZURE_HEAD,
                          _chunk({"role": "assistant", "content": ""}, **real),
                          _chunk({"content": "Paris"}, **real),
                          _chunk({}, "stop", **real), "[DONE]"]
    s1, _ = api.stream(model="m", messages=MSG, **kw)
    plain = api.completion(model="m", messages=MSG, **kw)
    s2, hit = api.stream(model="m", messages=MSG, **kw)
    assert fake.calls[CHAT] == 1 and plain._hidden_params["cache_hit"] is True
    for r in (s1.response, plain, s2.response):
        assert (r.id, r.model, r.created, r.system_fingerprint) == \
            ("chatcmpl-s", "m", 1, "fp_azure")
    assert {(c.id, c.model) for c in hit} == {("chatcmpl-s", "m")}


def test_a_stream_missing_one_of_its_n_choices_is_not_stored(api, fake, kw):
    """With n=2, a stream that ended cleanly after choice 0 (the upstream cut it short
    between choices) has every choice it *saw* finished; it was stored, and every later
    n=2 request was served one choice."""
    semcache.cache = Cache()
    fake.stream_script = [_chunk({"role": "assistant", "content": ""}),
                          _chunk({"content": "Paris"}), _chunk({}, "stop"), "[DONE]"]
    for _ in range(2):
        s, _chunks = api.stream(model="m", messages=MSG, n=2, **kw)
        assert s.response is None
    fake.stream_script = None
    r = api.completion(model="m", messages=MSG, n=2, **kw)
    assert r._hidden_params["cache_hit"] is False and len(r.choices) == 2
    assert fake.calls[CHAT] == 3


def test_a_text_stream_missing_a_prompts_choice_is_not_stored(api, fake, kw):
    """A text completion with two prompts (and n=2) has four choices; a stream that
    ended with fewer must not be stored as the whole answer."""
    semcache.cache = Cache()
    fake.stream_script = [_text_chunk("Paris"), _text_chunk("", "stop"), "[DONE]"]
    for _ in range(2):
        s, _chunks = api.stream("text_completion", model="m", prompt=["a?", "b?"], n=2, **kw)
        assert s.response is None
    assert semcache.cache.stats()["stores"] == 0 and fake.calls["completions"] == 2
