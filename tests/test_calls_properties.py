"""Properties of the call layer's pure parts: usage apportioning, and stream replay +
assembly as inverse operations (what is stored from a stream is what a hit replays)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import Completion
from openai.types.chat import ChatCompletion

from semcache._calls import _split_usage
from semcache._calls._streams import Accumulator, replay_chunks


@given(st.integers(0, 10**6), st.lists(st.integers(0, 500), min_size=1, max_size=50))
def test_split_usage_sums_exactly(total, weights):
    parts = _split_usage(total, weights)
    assert sum(parts) == total and len(parts) == len(weights) and min(parts) >= 0
    w = [max(1, x) for x in weights]
    for p, x in zip(parts, w):  # each part within one token of its exact share
        assert abs(p - total * x / sum(w)) < 1


text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)
usage = st.none() | st.builds(lambda p, c: {"prompt_tokens": p, "completion_tokens": c,
                                            "total_tokens": p + c},
                              st.integers(0, 10**5), st.integers(0, 10**5))
tool_call = st.builds(lambda i, name, args: {"id": f"call_{i}", "type": "function",
                                             "function": {"name": name, "arguments": args}},
                      st.integers(0, 10**6), st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
                      text)


@st.composite
def chat_completions(draw):
    choices = []
    for i in range(draw(st.integers(1, 3))):
        tools = draw(st.lists(tool_call, max_size=3))
        content = draw(st.none() | text) if tools else draw(text)
        msg = {"role": "assistant", "content": content, "refusal": None}
        if tools:
            msg["tool_calls"] = tools
        choices.append({"index": i, "message": msg, "logprobs": None,
                        "finish_reason": draw(st.sampled_from(["stop", "length",
                                                               "tool_calls"]))})
    return ChatCompletion.model_validate({
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1700000000,
        "model": "m", "system_fingerprint": draw(st.none() | st.just("fp_1")),
        "usage": draw(usage), "choices": choices})


@settings(max_examples=150, deadline=None)
@given(chat_completions(), st.booleans())
def test_chat_replay_then_assemble_is_identity(resp, include_usage):
    acc = Accumulator("chat")
    for chunk in replay_chunks("chat", resp, include_usage):
        acc.add(chunk)
    out = acc.result()
    expect = resp.model_dump(mode="json")
    if not include_usage:
        expect["usage"] = None  # usage travels in its own chunk, only when asked for
    assert out.model_dump(mode="json") == expect


@settings(max_examples=100, deadline=None)
@given(st.lists(text, min_size=1, max_size=3), usage)
def test_text_replay_then_assemble_is_identity(texts, u):
    resp = Completion.model_validate({
        "id": "cmpl-x", "object": "text_completion", "created": 1, "model": "m",
        "usage": u, "choices": [{"index": i, "text": t, "logprobs": None,
                                 "finish_reason": "stop"} for i, t in enumerate(texts)]})
    acc = Accumulator("text")
    for chunk in replay_chunks("text", resp, True):
        acc.add(chunk)
    assert acc.result().model_dump(mode="json") == resp.model_dump(mode="json")
