"""One SSE module (semcache/_sse.py) for the call layer and the proxy (issue #19): both
replay a stored response as the same chunk sequence (logprobs and finish_reason
included), and both assemble a stream back into the response it came from."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from semcache._calls._streams import Accumulator, replay_chunks
from semcache._sse import REPLAY_PIECES, StreamAssembler, replay_events
from semcache.proxy.answers import Assembler, replay

WORDS = st.lists(st.sampled_from(["Paris", " is", " the", " capital", ".", " ünï", "\n", " 42"]),
                 min_size=0, max_size=12)
FINISH = st.sampled_from(["stop", "length", "tool_calls", "content_filter"])
USAGE = st.none() | st.builds(lambda p, c: {"prompt_tokens": p, "completion_tokens": c,
                                            "total_tokens": p + c},
                              st.integers(0, 99), st.integers(0, 99))


ANNOTATION = st.builds(
    lambda u, a, b: {"type": "url_citation", "url_citation": {
        "url": f"https://example.com/{u}", "title": f"Page {u}", "start_index": a,
        "end_index": a + b}},
    st.sampled_from(["a", "b", "ü"]), st.integers(0, 40), st.integers(0, 9))
AUDIO = st.builds(lambda d, t, e: {"id": "audio_1", "data": d, "expires_at": e,
                                   "transcript": t},
                  st.sampled_from(["", "UklGRg==", "AAAA" * 40]),
                  st.sampled_from(["", "Paris is the capital."]), st.integers(1, 2**31 - 1))


def _logprob(token: str, i: int) -> dict[str, Any]:
    return {"token": token, "logprob": -0.5 * i, "bytes": list(token.encode()),
            "top_logprobs": [{"token": token, "logprob": -0.5 * i,
                              "bytes": list(token.encode())}]}


@st.composite
def chat_choices(draw: st.DrawFn, index: int) -> dict[str, Any]:
    tokens = draw(WORDS)
    tools = draw(st.lists(st.builds(lambda n, a: {"id": f"call_{n}", "type": "function",
                                                  "function": {"name": n, "arguments": a}},
                                    st.sampled_from(["lookup", "add"]),
                                    st.sampled_from(['{"q": "x"}', "{}"])), max_size=2))
    # the legacy ``functions`` answer: one function_call (never with tool_calls)
    call = None if tools else draw(st.none() | st.builds(
        lambda n, a: {"name": n, "arguments": a}, st.sampled_from(["lookup", "add"]),
        st.sampled_from(['{"q": "x"}', "{}", ""])))
    content = None if (tools or call) and draw(st.booleans()) else "".join(tokens)
    # logprobs of no tokens at all have no chunk to ride on (an empty answer)
    with_lp = content is not None and bool(tokens) and draw(st.booleans())
    # a search model's URL citations and an audio answer (message.annotations/.audio)
    notes = draw(st.lists(ANNOTATION, max_size=3, unique_by=orjson.dumps))
    audio = draw(st.none() | AUDIO)
    return {"index": index, "finish_reason": draw(FINISH),
            "message": {"role": "assistant", "content": content,
                        "refusal": draw(st.none() | st.just("I can't help with that.")),
                        **({"annotations": notes} if notes else {}),
                        **({"audio": audio} if audio else {}),
                        **({"tool_calls": tools} if tools else {}),
                        **({"function_call": call} if call else {})},
            "logprobs": {"content": [_logprob(t, i) for i, t in enumerate(tokens)],
                         "refusal": None} if with_lp else None}


@st.composite
def chat_responses(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 2))
    value = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
             "model": "gpt-4o-mini", "system_fingerprint": draw(st.none() | st.just("fp_1")),
             "choices": [draw(chat_choices(i)) for i in range(n)]}
    usage = draw(USAGE)
    if usage is not None:
        value["usage"] = usage
    if draw(st.booleans()):
        value["service_tier"] = "default"
    return value


@st.composite
def text_responses(draw: st.DrawFn) -> dict[str, Any]:
    tokens = draw(WORDS)
    lp = {"tokens": tokens, "token_logprobs": [-0.1] * len(tokens),
          "top_logprobs": [{t: -0.1} for t in tokens],
          "text_offset": [sum(map(len, tokens[:i])) for i in range(len(tokens))]}
    value = {"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
             "model": "gpt-3.5-turbo-instruct", "system_fingerprint": None,
             "choices": [{"index": 0, "text": "".join(tokens),
                          "finish_reason": draw(st.sampled_from(["stop", "length"])),
                          "logprobs": lp if tokens and draw(st.booleans()) else None}]}
    usage = draw(USAGE)
    if usage is not None:
        value["usage"] = usage
    return value


def _call_layer_events(kind: str, value: dict[str, Any], include_usage: bool) -> list[Any]:
    model = ChatCompletion if kind == "chat" else Completion
    chunks = replay_chunks(kind, model.model_validate(value), include_usage)
    return [c.model_dump(mode="json", exclude_unset=True, warnings=False) for c in chunks]


def _proxy_assembles(endpoint: str, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    asm = Assembler(endpoint)
    wire = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + \
        b"data: [DONE]\n\n"
    for i in range(0, len(wire), 7):  # events split across reads, as a socket delivers
        asm.feed(wire[i:i + 7])
    return asm.result()


def _call_layer_assembles(kind: str, chunks: list[Any]) -> Any:
    acc = Accumulator(kind)
    for c in chunks:
        acc.add(c)
    return acc.result()


def _normal(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    """What a response looks like after the SDK has parsed it (defaults filled)."""
    model = ChatCompletion if kind == "chat" else Completion
    return model.model_validate(value).model_dump(mode="json", exclude_unset=True)


@settings(max_examples=150, deadline=None)
@given(value=chat_responses(), include_usage=st.booleans())
def test_chat_call_layer_and_proxy_replay_the_same_chunks(value: dict[str, Any],
                                                          include_usage: bool) -> None:
    proxy = replay("chat/completions", value, include_usage)
    assert _call_layer_events("chat", value, include_usage) == proxy
    # and the stream is the response: assembled back by either side, nothing lost
    # (a null system_fingerprint is not replayed, as an upstream omits it)
    # and usage only when the client asked for it (stream_options.include_usage)
    expected = {k: v for k, v in value.items()
                if v is not None and (include_usage or k != "usage")}
    assert _proxy_assembles("chat/completions", proxy) == expected
    chunks = replay_chunks("chat", ChatCompletion.model_validate(value), include_usage)
    got = _call_layer_assembles("chat", chunks)
    assert got.model_dump(mode="json", exclude_unset=True) == _normal("chat", expected)


@settings(max_examples=80, deadline=None)
@given(value=text_responses(), include_usage=st.booleans())
def test_text_call_layer_and_proxy_replay_the_same_chunks(value: dict[str, Any],
                                                          include_usage: bool) -> None:
    proxy = replay("completions", value, include_usage)
    assert _call_layer_events("text", value, include_usage) == proxy
    expected = {k: v for k, v in value.items()  # as for chat
                if v is not None and (include_usage or k != "usage")}
    assert _proxy_assembles("completions", proxy) == expected
    got = _call_layer_assembles("text", replay_chunks(
        "text", Completion.model_validate(value), include_usage))
    assert got.model_dump(mode="json", exclude_none=True) == \
        Completion.model_validate(expected).model_dump(mode="json", exclude_none=True)


def test_the_chunk_sequence_follows_the_openai_stream_format() -> None:
    tokens = ["The", " answer", " is", " 42", ",", " of", " course", "."]
    value = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "finish_reason": "length",
                          "message": {"role": "assistant", "content": "".join(tokens),
                                      "refusal": None},
                          "logprobs": {"content": [_logprob(t, i)
                                                   for i, t in enumerate(tokens)],
                                       "refusal": None}}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}}
    events = replay_events("chat", value, include_usage=True)
    first, *content, last, usage = events
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert 1 < len(content) <= REPLAY_PIECES
    for e in content:  # each chunk carries exactly its own tokens' logprobs
        c = e["choices"][0]
        assert c["delta"]["content"] == "".join(x["token"] for x in c["logprobs"]["content"])
        assert c["finish_reason"] is None
    assert last["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                  "finish_reason": "length"}  # not a default "stop"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 11
    assert all(e["usage"] is None for e in events[:-1])
    assert all(e["object"] == "chat.completion.chunk" for e in events)


@pytest.mark.parametrize("kind,endpoint", [("chat", "chat/completions"),
                                           ("text", "completions")])
def test_a_stream_without_finish_reason_is_not_an_answer(kind: str, endpoint: str) -> None:
    """Both sides agree (the call layer used to default it to "stop" and store it)."""
    value = {"id": "c", "created": 1, "model": "m",
             "object": "chat.completion" if kind == "chat" else "text_completion", "choices": [
        {"index": 0, "finish_reason": "stop", "logprobs": None,
         **({"message": {"role": "assistant", "content": "hi"}} if kind == "chat"
            else {"text": "hi"})}]}
    events = [e for e in replay_events(kind, value, False)
              if e["choices"][0]["finish_reason"] is None]
    assert _proxy_assembles(endpoint, events) is None
    asm = StreamAssembler(kind)
    for e in events:
        asm.add(e)
    assert asm.result() is None
    chunks = [c for c in replay_chunks(kind, (ChatCompletion if kind == "chat"
                                              else Completion).model_validate(value), False)
              if c.choices[0].finish_reason is None]
    assert _call_layer_assembles(kind, chunks) is None


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}]}


CITE = [{"type": "url_citation", "url_citation": {"url": "https://example.com/p",
                                                   "title": "P", "start_index": 0,
                                                   "end_index": 5}},
        {"type": "url_citation", "url_citation": {"url": "https://example.com/q",
                                                   "title": "Q", "start_index": 6,
                                                   "end_index": 9}}]


def _assembled(events: list[dict[str, Any]]) -> list[Any]:
    """The message assembled by the shared assembler, the proxy's and the call layer's."""
    asm = StreamAssembler("chat")
    for e in events:
        asm.add(e)
    from_calls = _call_layer_assembles(
        "chat", [ChatCompletionChunk.model_validate(e) for e in events])
    proxied = _proxy_assembles("chat/completions", events)
    return [(asm.result() or {}).get("choices"), (proxied or {}).get("choices"),
            from_calls and from_calls.model_dump(mode="json", exclude_unset=True)["choices"]]


def test_streamed_url_citations_are_assembled_as_the_message_annotations() -> None:
    """A search model streams ``delta.annotations`` (a list of citations: with the text,
    in a chunk of their own after it, and some upstreams send the whole set again);
    they used to be dropped, so every user served from the cache lost the citations."""
    events = [_delta({"role": "assistant", "content": ""}), _delta({"content": "Paris"}),
              _delta({"content": " is.", "annotations": CITE[:1]}),
              _delta({"annotations": CITE}),  # the whole set again, then the rest
              _delta({}, "stop")]
    for choices in _assembled(events):
        assert choices is not None
        msg = choices[0]["message"]
        assert msg["content"] == "Paris is." and msg["annotations"] == CITE


def test_streamed_audio_is_assembled_as_the_message_audio() -> None:
    """An audio answer streams ``delta.audio``: its id, base64 ``data`` and
    ``transcript`` in pieces, and a last update with only ``expires_at`` (after the
    finish_reason chunk, which it does not carry)."""
    events = [_delta({"role": "assistant", "content": None}),
              _delta({"audio": {"id": "audio_1", "transcript": "Par"}}),
              _delta({"audio": {"data": "UklG", "transcript": "is."}}),
              _delta({"audio": {"data": "Rg=="}}), _delta({}, "stop"),
              {**_delta({}), "choices": [{"index": 0, "delta": {
                  "audio": {"expires_at": 1700003600}}}]}]
    for choices in _assembled(events):
        assert choices is not None
        assert choices[0]["message"]["content"] is None
        assert choices[0]["message"]["audio"] == {
            "id": "audio_1", "data": "UklGRg==", "transcript": "Paris.",
            "expires_at": 1700003600}
    # and it replays as the same kind of stream: id, data and transcript, then the expiry
    value = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                          "message": {"role": "assistant", "content": None,
                                      "audio": _assembled(events)[0][0]["message"]["audio"]}}]}
    audio = [e["choices"][0]["delta"]["audio"] for e in replay_events("chat", value, False)
             if "audio" in e["choices"][0]["delta"]]
    assert audio == [{"id": "audio_1", "data": "UklGRg==", "transcript": "Paris."},
                     {"expires_at": 1700003600}]


@pytest.mark.parametrize("delta", [
    {"annotations": {"type": "url_citation"}},  # not a list
    {"annotations": ["https://example.com"]},  # not objects
    {"audio": "UklGRg=="},  # not an object
    {"audio": {"data": 5}},  # a piece that is not text
    {"audio": {"transcript": ["Paris"]}},
])
def test_malformed_annotations_or_audio_make_the_stream_not_storable(
        delta: dict[str, Any]) -> None:
    events = [_delta({"role": "assistant", "content": ""}), _delta({"content": "Paris"}),
              _delta(delta), _delta({}, "stop")]
    asm = StreamAssembler("chat")
    with pytest.raises(TypeError):
        for e in events:
            asm.add(e)
    assert _proxy_assembles("chat/completions", events) is None
    chunks = [ChatCompletionChunk.model_construct(**e) for e in events]
    assert _call_layer_assembles("chat", chunks) is None


@pytest.mark.parametrize("message", [
    {"annotations": "https://example.com"},  # not a list
    {"annotations": {"type": "url_citation"}},
    {"audio": "UklGRg=="},  # not an object
    {"audio": ["UklGRg=="]},
])
def test_stored_annotations_or_audio_of_another_shape_are_an_integrity_error(
        message: dict[str, Any]) -> None:
    """Read back from a backend (an older or hostile writer), they are never replayed as
    garbage chunks (a string's characters as citations) nor a raw TypeError mid-reply."""
    from semcache._errors import IntegrityError

    value = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
             "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                          "message": {"role": "assistant", "content": "Paris",
                                      **message}}]}
    with pytest.raises(IntegrityError):
        replay_events("chat", value, False)
