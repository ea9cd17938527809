"""Key canonicalisation: properties that make keys safe to share."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import InvalidRequestError
from semcache._keys import exact_key, semantic_split

text = st.text(max_size=40)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32), text)
json_value = st.recursive(scalar, lambda c: st.lists(c, max_size=3) |
                          st.dictionaries(text, c, max_size=3), max_leaves=10)
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant",
                                                                     "system"]),
                                           "content": text}), min_size=1, max_size=4)
params = st.dictionaries(st.sampled_from(["temperature", "top_p", "max_tokens", "n", "seed",
                                          "stop", "user", "tools", "response_format"]),
                         json_value, max_size=5)


def key(**kw):
    return exact_key("ns", "completion", kw)


@given(messages, params, st.randoms())
def test_argument_order_does_not_change_the_key(msgs, p, rnd):
    items = list({"model": "m", "messages": msgs, **p}.items())
    shuffled = items[:]
    rnd.shuffle(shuffled)
    assert key(**dict(items)) == key(**dict(shuffled))


@given(messages, st.randoms())
def test_dict_key_order_inside_messages_does_not_change_the_key(msgs, rnd):
    reordered = []
    for m in msgs:
        kv = list(m.items())
        rnd.shuffle(kv)
        reordered.append(dict(kv))
    assert key(model="m", messages=msgs) == key(model="m", messages=reordered)


@given(messages, params, params)
def test_different_requests_get_different_keys(msgs, p1, p2):
    k1, k2 = key(model="m", messages=msgs, **p1), key(model="m", messages=msgs, **p2)
    # same canonical JSON (top-level numbers normalised, None = not given) <=> same key
    def canon(p):
        return orjson.dumps({k: (int(v) if isinstance(v, float) and v.is_integer()
                                 and abs(v) < 2**53 else v)
                             for k, v in p.items() if v is not None},
                            option=orjson.OPT_SORT_KEYS)
    assert (k1 == k2) == (canon(p1) == canon(p2))


def test_fields_are_delimited_not_concatenated():
    # RedisVL's hashify("xkv") == hashify("x", {"k": "v"}); ours must not collide
    m = [{"role": "user", "content": "hi"}]
    assert key(model="m", messages=m, user="u1temperature: 0.5") != \
        key(model="m", messages=m, user="u1", temperature=0.5)
    assert key(model="m", messages=[{"role": "user", "content": "ab"}]) != \
        key(model="m", messages=[{"role": "user", "content": "a"}, {"role": "user",
                                                                     "content": "b"}])


@given(st.text(min_size=1, max_size=20), st.floats(0.1, 100), st.integers(0, 5))
def test_transport_parameters_are_left_out(api_key, timeout, retries):
    m = [{"role": "user", "content": "hi"}]
    assert key(model="m", messages=m) == key(
        model="m", messages=m, api_key=api_key, timeout=timeout,
        num_retries=retries, metadata={"trace": api_key})


def test_the_endpoint_is_keyed_unless_a_caching_group_spans_endpoints():
    # api_base was a transport parameter: one model name served by two servers (a local
    # vLLM and OpenAI, two fine-tunes on two hosts) shared every answer
    from semcache._keys import KeyParams

    m = [{"role": "user", "content": "hi"}]
    a = key(model="m", messages=m, api_base="http://a/v1")
    assert a != key(model="m", messages=m, api_base="http://b/v1")
    assert a != key(model="m", messages=m)
    assert a == key(model="m", messages=m, api_base="http://a/v1/") == \
        key(model="m", messages=m, base_url="http://a/v1")
    sa = semantic_split("ns", "completion", {"model": "m", "messages": m,
                                             "api_base": "http://a/v1"})
    sb = semantic_split("ns", "completion", {"model": "m", "messages": m,
                                             "api_base": "http://b/v1"})
    assert sa.context != sb.context
    assert key(model="m", messages=m, api_base="http://a", caching_group="g") == \
        key(model="m", messages=m, api_base="http://b", caching_group="g")
    shared = KeyParams(exclude=["api_base"])
    assert exact_key("ns", "completion", shared.filter(
        {"model": "m", "messages": m, "api_base": "http://a"})) == exact_key(
        "ns", "completion", shared.filter({"model": "m", "messages": m, "base_url": "http://b"}))
    only_t = KeyParams(include=["temperature"])
    assert exact_key("ns", "completion", only_t.filter(
        {"model": "m", "messages": m, "api_base": "http://a"})) != exact_key(
        "ns", "completion", only_t.filter({"model": "m", "messages": m, "api_base": "http://b"}))


def test_output_shaping_parameters_are_in():
    m = [{"role": "user", "content": "hi"}]
    base = key(model="m", messages=m)
    for name, value in [("temperature", 0.2), ("top_p", 0.5), ("max_tokens", 5), ("n", 2),
                        ("stop", ["x"]), ("seed", 1), ("tools", [{"type": "function"}]),
                        ("tool_choice", "auto"), ("response_format", {"type": "json_object"}),
                        ("stream", True)]:
        assert key(model="m", messages=m, **{name: value}) != base, name


def test_int_and_float_spellings_are_one_request():
    m = [{"role": "user", "content": "hi"}]
    assert key(model="m", messages=m, temperature=1) == key(model="m", messages=m,
                                                            temperature=1.0)


def test_custom_cache_key_wins():
    assert exact_key("ns", "completion", {"model": "m", "cache_key": "mine"}) == "ns:mine"


def test_namespace_prefixes_the_key():
    m = [{"role": "user", "content": "hi"}]
    a = exact_key("a", "completion", {"model": "m", "messages": m})
    b = exact_key("b", "completion", {"model": "m", "messages": m})
    assert a.startswith("a:") and b.startswith("b:") and a[2:] == b[2:]


def test_sync_and_async_call_types_share_keys():
    m = [{"role": "user", "content": "hi"}]
    assert exact_key("n", "acompletion", {"model": "m", "messages": m}) == \
        exact_key("n", "completion", {"model": "m", "messages": m})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_parameters_are_a_clear_error(bad):
    with pytest.raises(InvalidRequestError, match="temperature"):
        key(model="m", messages=[], temperature=bad)
    with pytest.raises(InvalidRequestError, match="NaN"):
        key(model="m", messages=[], tools=[{"x": bad}])


def test_non_json_parameter_is_a_clear_error():
    with pytest.raises(InvalidRequestError, match="object"):
        key(model="m", messages=[], extra=object())


def test_bytes_and_pydantic_values_are_keyed_by_content():
    from pydantic import BaseModel

    class Msg(BaseModel):
        role: str
        content: str

    assert key(model="m", messages=[Msg(role="user", content="hi")]) == \
        key(model="m", messages=[{"role": "user", "content": "hi"}])
    assert key(model="m", input=b"abc") != key(model="m", input=b"abd")


# -- context keys: what must match for a paraphrase to reuse an answer --
def split(**kw):
    return semantic_split("ns", "completion", {"model": "m", **kw})


def user(t):
    return {"role": "user", "content": t}


@given(text.filter(str.strip), text.filter(str.strip))
def test_query_text_is_not_part_of_the_context(q1, q2):
    a, b = split(messages=[user(q1)]), split(messages=[user(q2)])
    assert a.context == b.context
    assert a.query == q1 and b.query == q2


def test_context_separates_model_system_prompt_history_and_params():
    q = [user("What is the capital of France?")]
    base = split(messages=q).context
    assert split(messages=q, temperature=0.5).context != base
    assert semantic_split("ns", "completion", {"model": "other", "messages": q}).context != base
    assert semantic_split("ns2", "completion", {"model": "m", "messages": q}).context != base
    assert split(messages=[{"role": "system", "content": "Answer in French."}, *q]).context \
        != base
    assert split(messages=[user("Tell me about Germany"), {"role": "assistant",
                                                           "content": "..."}, *q]).context != base
    assert split(messages=q, tools=[{"type": "function", "function": {"name": "f"}}]).context \
        != base


def test_caching_group_replaces_the_model():
    q = [user("hi there")]
    a = semantic_split("ns", "completion", {"model": "a", "caching_group": "g", "messages": q})
    b = semantic_split("ns", "completion", {"model": "b", "caching_group": "g", "messages": q})
    assert a.context == b.context
    assert exact_key("ns", "completion", {"model": "a", "caching_group": "g", "messages": q}) \
        == exact_key("ns", "completion", {"model": "b", "caching_group": "g", "messages": q})


def test_images_are_hashed_into_the_context():
    def parts(url):
        return [user([{"type": "text", "text": "what is this?"},
                      {"type": "image_url", "image_url": {"url": url}}])]
    a, b = split(messages=parts("data:a")), split(messages=parts("data:b"))
    assert a.query == b.query == "what is this?"
    assert a.context != b.context


def test_no_embeddable_text_means_no_semantic_stage():
    assert split(messages=[{"role": "system", "content": "x"}]) is None
    assert split(messages=[user("   ")]) is None
    assert semantic_split("ns", "embedding", {"model": "m", "input": "x"}) is None


def test_query_modes():
    msgs = [user("first"), {"role": "assistant", "content": "ok"}, user("second")]
    assert semantic_split("n", "completion", {"model": "m", "messages": msgs},
                          "last_user").query == "second"
    assert semantic_split("n", "completion", {"model": "m", "messages": msgs},
                          "all_user").query == "first\nsecond"
    assert semantic_split("n", "completion", {"model": "m", "messages": msgs},
                          "conversation").query == "user: first\nassistant: ok\nuser: second"


@settings(max_examples=50)
@given(messages, params)
def test_every_generated_request_keys_or_fails_clearly(msgs, p):
    try:
        k = key(model="m", messages=msgs, **p)
    except InvalidRequestError:
        return
    assert k.startswith("ns:") and len(k) == 3 + 64


# ------------------------------------------------------------------ namespaces
_NS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@/+=-"


@given(st.text(max_size=210) | st.text(st.sampled_from(_NS_CHARS + "\n\r\t :*?[]\\\x00é"),
                                         max_size=210))
def test_validate_namespace_accepts_exactly_its_alphabet(ns):
    from semcache import ConfigError
    from semcache._keys import validate_namespace

    ok = 1 <= len(ns) <= 200 and all(c in _NS_CHARS for c in ns)
    if ok:
        assert validate_namespace(ns) == ns
    else:
        with pytest.raises(ConfigError):
            validate_namespace(ns)


@pytest.mark.parametrize("ns", ["a\n", "team-a\n", "a" * 200 + "\n"])
def test_a_namespace_with_a_trailing_newline_is_refused(ns):
    # re.match with "$" accepts one trailing "\n": a control character in a namespace
    from semcache import Cache, ConfigError
    from semcache._config import Controls
    from semcache._keys import validate_namespace

    with pytest.raises(ConfigError):
        validate_namespace(ns)
    with pytest.raises(ConfigError):
        Controls.parse({"namespace": ns})
    with pytest.raises(ConfigError):
        Cache(type="local", namespace=ns)


# ------------------------------------------------------------ conversation mode
def _tool_turns(result):
    return [user("What is the weather in Paris?"),
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function",
                             "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": result}]


@pytest.mark.parametrize("mode", ["last_user", "all_user", "conversation"])
def test_system_prompts_and_tool_results_are_context_in_every_mode(mode):
    # "conversation" embedded the system prompt and the tool results with the turns:
    # "Answer in French" and "Answer in German", or a tool's "20C, sunny" and
    # "25C, rain", differ by a word or two and embed close together, so one user's
    # answer was served for the other's. Data and instructions must match exactly.
    def ctx(msgs):
        return semantic_split("ns", "completion", {"model": "m", "messages": msgs}, mode)

    q = user("hi")
    a = ctx([{"role": "system", "content": "Answer in French."}, q])
    b = ctx([{"role": "system", "content": "Answer in German."}, q])
    assert a.context != b.context and "French" not in a.query
    d = ctx([{"role": "developer", "content": "Answer in French."}, q])
    e = ctx([{"role": "developer", "content": "Answer in German."}, q])
    assert d.context != e.context
    sunny, rain = ctx(_tool_turns("20C, sunny")), ctx(_tool_turns("25C, rain"))
    assert sunny.context != rain.context and "sunny" not in sunny.query


def test_conversation_mode_embeds_user_and_assistant_turns():
    msgs = [{"role": "system", "content": "Be brief."}, user("first"),
            {"role": "assistant", "content": "ok"}, user("second")]
    s = semantic_split("n", "completion", {"model": "m", "messages": msgs}, "conversation")
    assert s.query == "user: first\nassistant: ok\nuser: second"
