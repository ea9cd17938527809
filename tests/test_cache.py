"""The Cache facade and the lookup pipeline on the embedded default."""

from __future__ import annotations

import asyncio
import logging

import pytest

import semcache
from semcache import BackendUnavailable, Cache, CacheMode, ConfigError
from semcache.embedders.base import Embedder
from semcache.exact.memory import MemoryStore
from semcache.indexes.faiss import FaissIndex


def ask(q, model="gpt-4o-mini", system=None, history=(), **kw):
    msgs = ([{"role": "system", "content": system}] if system else []) + list(history)
    return dict(model=model, messages=msgs + [{"role": "user", "content": q}], **kw)


Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"
UNRELATED = "What is the boiling point of water at sea level?"
ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Practice daily."}}]}


@pytest.fixture
def sem(minilm, clock):
    return Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.85,
                 clock=clock)


class DownStore(MemoryStore):
    """A memory store with a switch that makes it behave like a dead server."""

    name = "flaky"
    down = False

    def _check(self):
        if self.down:
            raise BackendUnavailable("connection refused", backend=self.name)

    def get(self, key):
        self._check()
        return super().get(key)

    def set(self, key, value, ttl=None):
        self._check()
        super().set(key, value, ttl)


class BrokenEmbedder(Embedder):
    model_id = "broken"
    dim = 3

    def _embed(self, texts):
        raise RuntimeError("model crashed")


# -- configuration ------------------------------------------------------------------
def test_unknown_type_names_it():
    with pytest.raises(ConfigError, match="redis-semantik.*did you mean 'redis-semantic'"):
        Cache(type="redis-semantik")


def test_misspelt_parameter_is_not_silently_ignored():
    with pytest.raises(ConfigError, match="simlarity_threshold.*similarity_threshold") as e:
        Cache(type="faiss-semantic", simlarity_threshold=0.9)
    assert e.value.parameter == "simlarity_threshold"


def test_parameter_of_another_type_is_an_error():
    with pytest.raises(ConfigError, match="s3_bucket_name.*does not apply to type 'local'"):
        Cache(type="local", s3_bucket_name="b")
    with pytest.raises(ConfigError, match="similarity_threshold applies to semantic"):
        Cache(type="local", similarity_threshold=0.9)


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), "0.9", True])
def test_threshold_validated(bad, minilm):
    with pytest.raises(ConfigError, match="similarity_threshold"):
        Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=bad)


def test_threshold_zero_is_valid(minilm):
    # the cosine alone: 0 serves the nearest candidate, whatever it is
    c = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.0,
              verifier=None)
    assert c.similarity_threshold == 0.0
    c.add_cache(ANSWER, **ask(Q))
    hit = c.lookup(**ask(UNRELATED))
    assert hit is not None and hit.stage == "semantic"
    # with the default verifier (issue 20) 0 is a floor under its probability: the
    # unrelated question is looked at, and refused
    v = Cache(type="faiss-semantic", embedder=minilm, similarity_threshold=0.0)
    assert v.similarity_threshold == 0.0
    v.add_cache(ANSWER, **ask(Q))
    hit, meta = v.lookup_with_metadata(**ask(UNRELATED))
    assert hit is None and meta["decision"] == "verifier_rejected"


@pytest.mark.parametrize("kw,name", [({"ttl": -1}, "ttl"), ({"ttl": "soon"}, "ttl"),
                                     ({"mode": "sometimes"}, "mode"),
                                     ({"namespace": "a:b"}, "namespace"),
                                     ({"namespace": ""}, "namespace"),
                                     ({"supported_call_types": ["chat"]},
                                      "supported_call_types"),
                                     ({"on_error": "ignore"}, "on_error")])
def test_invalid_configuration_names_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=name) as e:
        Cache(type="local", **kw)
    assert e.value.parameter == name


_LOADS_NOTHING = """
import os, sys
from semcache import Cache
from semcache.embedders import local, onnx
c = Cache(type="faiss-semantic", embedding_model="all-MiniLM-L6-v2")
assert type(c.embedder) is onnx.OnnxEmbedder, c.embedder  # the real default is watched
heavy = [m for m in ("onnxruntime", "tokenizers", "onnx", "torch", "sentence_transformers")
         if m in sys.modules]
assert not heavy and not onnx._RUNTIMES and not local._MODELS, heavy
assert not os.listdir(os.environ["SEMCACHE_HOME"]), os.listdir(os.environ["SEMCACHE_HOME"])
print("ok")
"""


def test_constructor_loads_no_model(tmp_path):
    """DESIGN.md: no model loading in constructors. Watches the default embedder (ONNX):
    no runtime session or tokenizer (their modules are never imported), no export
    written to an empty SEMCACHE_HOME; and no sentence-transformers model either."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, SEMCACHE_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _LOADS_NOTHING], capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# -- exact stage --------------------------------------------------------------------
def test_exact_roundtrip_and_metadata(clock):
    c = Cache(clock=clock)
    assert c.lookup(**ask(Q)) is None
    key = c.add_cache(ANSWER, **ask(Q))
    clock.advance(5)
    hit = c.lookup(**ask(Q))
    assert hit.value == ANSWER and hit.stage == "exact" and hit.key == key
    m = hit.metadata
    assert m["similarity"] == 1.0 and m["age_s"] == 5 and m["ttl_remaining_s"] is None
    assert m["backend"] == "memory" and set(m["timings_ms"]) >= {"exact", "total"}
    assert c.get_cache(**ask(Q)) == ANSWER


def test_ttl_expiry(clock):
    c = Cache(ttl=60, clock=clock)
    c.add_cache(ANSWER, **ask(Q))
    clock.advance(59)
    assert c.lookup(**ask(Q)).metadata["ttl_remaining_s"] == pytest.approx(1)
    clock.advance(2)
    assert c.lookup(**ask(Q)) is None


def test_per_request_ttl_wins(clock):
    c = Cache(ttl=600, clock=clock)
    c.add_cache(ANSWER, **ask(Q, cache={"ttl": 10}))
    clock.advance(11)
    assert c.lookup(**ask(Q)) is None


def test_s_maxage(clock):
    c = Cache(clock=clock)
    c.add_cache(ANSWER, **ask(Q))
    clock.advance(30)
    assert c.lookup(**ask(Q, cache={"s-maxage": 60})) is not None
    assert c.lookup(**ask(Q, cache={"s-maxage": 10})) is None
    assert c.lookup(**ask(Q, cache={"s-maxage": 0})) is None  # 0: never serve
    assert c.lookup(**ask(Q)) is not None  # and the entry is still there


def test_no_cache_skips_read_but_stores(clock):
    c = Cache(clock=clock)
    c.add_cache({"old": 1}, **ask(Q))
    assert c.lookup(**ask(Q, cache={"no-cache": True})) is None
    c.add_cache({"new": 2}, **ask(Q, cache={"no-cache": True}))
    assert c.get_cache(**ask(Q)) == {"new": 2}


def test_no_store():
    c = Cache()
    assert c.add_cache(ANSWER, **ask(Q, cache={"no-store": True})) is None
    assert c.lookup(**ask(Q)) is None


def test_caching_false_skips_both():
    c = Cache()
    c.add_cache(ANSWER, **ask(Q, caching=False))
    assert c.lookup(**ask(Q)) is None
    c.add_cache(ANSWER, **ask(Q))
    assert c.lookup(**ask(Q, caching=False)) is None


def test_default_off_mode_needs_use_cache():
    c = Cache(mode=CacheMode.default_off)
    c.add_cache(ANSWER, **ask(Q))
    assert c.lookup(**ask(Q)) is None
    c.add_cache(ANSWER, **ask(Q, cache={"use-cache": True}))
    assert c.lookup(**ask(Q)) is None
    assert c.lookup(**ask(Q, cache={"use-cache": True})).value == ANSWER


def test_supported_call_types():
    c = Cache(supported_call_types=["embedding"])
    c.add_cache(ANSWER, **ask(Q))
    assert c.lookup(**ask(Q)) is None
    c.add_cache({"data": [1]}, model="e", input="x")
    assert c.lookup(model="e", input="x").value == {"data": [1]}


async def test_supported_call_types_of_the_async_calls_cover_the_direct_api():
    # LiteLLM's get_cache / add_cache (and their async twins) are not gated on the call
    # type; semcache's infer one from the request, always the sync name, so a cache
    # for async calls only (["acompletion"]) silently stored and served nothing through
    # add_cache, async_add_cache, get_cache or async_get_cache
    c = Cache(supported_call_types=["acompletion", "aembedding"])
    assert await c.async_add_cache(ANSWER, **ask(Q)) is not None
    assert await c.async_get_cache(**ask(Q)) == ANSWER and c.get_cache(**ask(Q)) == ANSWER
    assert c.add_cache({"data": [1]}, model="e", input="x") is not None
    assert c.get_cache(model="e", input="x") == {"data": [1]}
    # a call type given is still the one that counts, and other kinds stay off
    assert c.add_cache(ANSWER, call_type="completion", **ask("other")) is None
    assert c.add_cache(ANSWER, model="t", prompt="p") is None


def test_unknown_cache_control_is_an_error():
    with pytest.raises(ConfigError, match="no_cahce"):
        Cache().lookup(**ask(Q, cache={"no_cahce": True}))


def test_namespaces_are_isolated_and_flush_is_scoped():
    c = Cache(namespace="team-a")
    c.add_cache({"a": 1}, **ask(Q))
    c.add_cache({"b": 1}, **ask(Q, cache={"namespace": "team-b"}))
    assert c.get_cache(**ask(Q)) == {"a": 1}
    assert c.get_cache(**ask(Q, cache={"namespace": "team-b"})) == {"b": 1}
    assert c.flush() == 1
    assert c.get_cache(**ask(Q)) is None
    assert c.get_cache(**ask(Q, cache={"namespace": "team-b"})) == {"b": 1}


def test_delete_and_update_ttl(clock):
    c = Cache(clock=clock)
    key = c.add_cache(ANSWER, **ask(Q))
    assert c.update_ttl(key, 5)
    clock.advance(6)
    assert c.lookup(**ask(Q)) is None
    key = c.add_cache(ANSWER, **ask(Q))
    assert c.delete([key]) == 1
    assert c.lookup(**ask(Q)) is None
    assert c.update_ttl(key, 5) is False


@pytest.mark.parametrize("keys", [None, 123, b"default:abc", [None], [1], [b"default:abc"],
                                  {"default:abc": 1}, ["", "default:abc"], ["nonamespace"],
                                  ["a b:abc"], ["default:"]])
def test_delete_refuses_what_is_not_an_entry_key(keys):
    # delete(None) raised a raw TypeError; delete(b"...") iterated the bytes and
    # deleted ints; delete(["foo"]) sent a key no entry can have (no "<namespace>:")
    # to the store: on a shared Redis, someone else's key
    c = Cache()
    key = c.add_cache(ANSWER, **ask(Q))
    with pytest.raises(semcache.InvalidRequestError, match="key"):
        c.delete(keys)
    with pytest.raises(semcache.InvalidRequestError, match="key"):
        asyncio.run(c.adelete(keys))
    assert c.lookup(**ask(Q)).value == ANSWER and key


@pytest.mark.parametrize("key", [None, 123, b"default:abc", ["default:abc"], "",
                                 "nonamespace", "default:"])
def test_update_ttl_refuses_what_is_not_an_entry_key(key):
    # update_ttl(["k"], 5) raised a raw TypeError (unhashable list) and update_ttl(123, 5)
    # answered False, as if a real key's entry were merely absent
    c = Cache()
    with pytest.raises(semcache.InvalidRequestError, match="key"):
        c.update_ttl(key, 5)


def test_delete_leaves_a_shared_redis_servers_other_keys(redis_stack_url):
    import redis

    raw = redis.Redis.from_url(redis_stack_url)
    try:
        raw.set("someone-elses-key", b"theirs")
        c = Cache(type="redis", redis_url=redis_stack_url, namespace="del-guard")
        with pytest.raises(semcache.InvalidRequestError):
            c.delete("someone-elses-key")
        assert raw.get("someone-elses-key") == b"theirs"
        key = c.add_cache(ANSWER, **ask(Q))
        assert c.delete(key) == 1
        c.close()
    finally:
        raw.delete("someone-elses-key")
        raw.close()


def test_custom_cache_key():
    c = Cache()
    c.add_cache(ANSWER, **ask(Q, cache_key="greeting"))
    assert c.lookup(**ask("something else entirely", cache_key="greeting")).value == ANSWER


def test_get_cache_key_matches_stored_key():
    c = Cache(namespace="ns1")
    assert c.add_cache(ANSWER, **ask(Q)) == c.get_cache_key(**ask(Q))
    assert c.get_cache_key(**ask(Q)).startswith("ns1:")


def test_response_objects_are_stored_as_json():
    from openai.types.chat import ChatCompletion

    resp = ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hi"}}]})
    c = Cache()
    c.add_cache(resp, **ask(Q))
    hit = c.lookup(**ask(Q))
    assert hit.kind == "openai.types.chat.chat_completion.ChatCompletion"
    assert ChatCompletion.model_validate(hit.value) == resp


# -- semantic stage -----------------------------------------------------------------
def test_paraphrase_hits_semantically(sem, clock):
    sem.add_cache(ANSWER, **ask(Q))
    clock.advance(3)
    hit = sem.lookup(**ask(PARA))
    assert hit is not None and hit.value == ANSWER
    m = hit.metadata
    assert m["stage"] == "semantic" and 0.85 <= m["similarity"] < 1
    assert m["matched_prompt"] == Q and m["age_s"] == 3 and m["threshold"] == 0.85
    assert m["backend"] == "memory+faiss" and m["embedder"] == "all-MiniLM-L6-v2"
    assert set(m["timings_ms"]) >= {"exact", "embed", "search", "fetch", "total"}
    assert m["request_key"] != m["key"]


def test_unrelated_question_misses_with_nearest_similarity(sem):
    sem.add_cache(ANSWER, **ask(Q))
    hit, meta = sem.lookup_with_metadata(**ask(UNRELATED))
    assert hit is None
    assert meta["stage"] == "miss" and meta["decision"] == "below_floor"
    assert meta["nearest_similarity"] < 0.85 and meta["nearest_prompt"] == Q


@pytest.mark.parametrize("other", [
    ask(PARA, model="another-model"),
    ask(PARA, system="Answer like a pirate."),
    ask(PARA, history=[{"role": "user", "content": "I know Java."},
                       {"role": "assistant", "content": "Good."}]),
    ask(PARA, temperature=1.5),
    ask(PARA, cache={"namespace": "other"}),
])
def test_no_hit_across_contexts(sem, other):
    sem.add_cache(ANSWER, **ask(Q))
    assert sem.lookup(**ask(PARA)) is not None  # the same context does hit
    assert sem.lookup(**other) is None


def test_per_request_threshold(sem):
    sem.add_cache(ANSWER, **ask(Q))
    assert sem.lookup(**ask(PARA, cache={"similarity_threshold": 0.999})) is None
    assert sem.lookup(**ask(PARA, cache={"similarity_threshold": 0.5})) is not None


def test_semantic_ttl_expiry(sem, clock):
    sem.add_cache(ANSWER, **ask(Q, cache={"ttl": 10}))
    clock.advance(11)
    assert sem.lookup(**ask(PARA)) is None


def test_stale_candidate_is_removed_and_next_is_tried(minilm, clock):
    store, index = MemoryStore(clock=clock), FaissIndex(clock=clock)
    c = Cache(type=None, store=store, index=index, embedder=minilm,
              similarity_threshold=0.7, clock=clock)
    k1 = c.add_cache({"n": 1}, **ask(Q))
    c.add_cache({"n": 2}, **ask("How can I learn Python fast?"))
    store.delete([k1])  # the answer vanished from the store behind the index's back
    hit = c.lookup(**ask(Q))  # its vector is the best candidate (similarity 1.0)
    assert hit is not None and hit.value == {"n": 2}
    assert index.count() == 1 and c.stats()["stale_candidates_removed"] == 1


def test_writing_the_same_request_twice_updates_one_entry(sem):
    sem.add_cache({"v": 1}, **ask(Q))
    sem.add_cache({"v": 2}, **ask(Q))
    assert sem.index.count() == 1
    assert sem.lookup(**ask(PARA)).value == {"v": 2}


def test_flush_clears_both_stages_of_one_namespace(sem):
    sem.add_cache(ANSWER, **ask(Q))
    sem.add_cache(ANSWER, **ask(Q, cache={"namespace": "keep"}))
    sem.flush()
    assert sem.lookup(**ask(PARA)) is None and sem.index.count("default") == 0
    assert sem.lookup(**ask(PARA, cache={"namespace": "keep"})) is not None


def test_exact_repeat_does_not_embed(sem, monkeypatch):
    sem.add_cache(ANSWER, **ask(Q))
    monkeypatch.setattr(sem.embedder, "embed", lambda texts: pytest.fail("embedded"))
    assert sem.lookup(**ask(Q)).stage == "exact"


def test_a_miss_embeds_once_and_the_store_reuses_it(minilm, clock):
    calls = []

    class Counting(Embedder):
        model_id = "counting"
        dim = minilm.dim

        def __init__(self):
            super().__init__(cache_size=0)  # no LRU: count the real work

        def _embed(self, texts):
            calls.append(list(texts))
            return minilm._embed(texts)

    c = Cache(type="faiss-semantic", embedder=Counting(), clock=clock)
    c.begin("completion", **ask(Q)).store(ANSWER)
    assert calls == [[Q]]


# -- fail open ----------------------------------------------------------------------
def test_store_outage_is_a_counted_miss_and_recovers(caplog):
    store = DownStore()
    c = Cache(type=None, store=store)
    c.add_cache(ANSWER, **ask(Q))
    store.down = True
    with caplog.at_level(logging.WARNING, logger="semcache"):
        for _ in range(5):
            hit, meta = c.lookup_with_metadata(**ask(Q))
            assert hit is None and meta["errors"]
        assert c.add_cache(ANSWER, **ask("x")) is None
    assert sum("failed" in r.message for r in caplog.records) == 1  # once per burst
    assert c.stats()["errors"] == {"store": 6}
    store.down = False
    assert c.lookup(**ask(Q)).value == ANSWER  # nothing stored was lost


def test_store_outage_during_fetch_keeps_the_vector(minilm):
    store = DownStore()
    c = Cache(type=None, store=store, index=FaissIndex(), embedder=minilm,
              similarity_threshold=0.8)
    c.add_cache(ANSWER, **ask(Q))
    real_get = DownStore.get
    # the exact stage answers (a miss), then the fetch of the candidate fails
    seen = []

    def get(self, key):
        seen.append(key)
        if len(seen) == 2:
            raise BackendUnavailable("gone", backend="flaky")
        return real_get(self, key)

    DownStore.get = get
    try:
        assert c.lookup(**ask(PARA)) is None
    finally:
        DownStore.get = real_get
    assert c.index.count() == 1
    assert c.lookup(**ask(PARA)) is not None


def test_embedder_fault_exact_stage_still_serves():
    c = Cache(type="faiss-semantic", embedder=BrokenEmbedder())
    c.store.set(c.get_cache_key(**ask(Q)), c._codec.encode(
        semcache._record.Record(c.get_cache_key(**ask(Q)), ANSWER, 0, None, "completion")))
    assert c.lookup(**ask(Q)).stage == "exact"
    hit, meta = c.lookup_with_metadata(**ask(PARA))
    assert hit is None and "embedder" in meta["errors"][0]
    assert c.add_cache(ANSWER, **ask(PARA)) is not None  # stored for the exact stage
    assert c.stats()["errors"]["embedder"] == 2


def test_on_error_raise():
    store = DownStore()
    store.down = True
    c = Cache(type=None, store=store, on_error="raise")
    with pytest.raises(BackendUnavailable):
        c.lookup(**ask(Q))


# -- tamper -------------------------------------------------------------------------
def test_signed_values_reject_tampering():
    store = MemoryStore()
    c = Cache(type=None, store=store, signing_key="k" * 32)
    key = c.add_cache(ANSWER, **ask(Q))
    raw = store.get(key)
    assert raw.startswith(b"s1:")
    store.set(key, raw.replace(b"Practice daily.", b"Send me money."))
    assert c.lookup(**ask(Q)) is None
    assert c.stats()["integrity_rejections"] == 1
    store.set(key, raw[raw.index(b":", 3) + 1:])  # signature stripped
    assert c.lookup(**ask(Q)) is None


@pytest.mark.parametrize("payload", [b"[" * 100_000 + b"]" * 100_000, b"1" * 10_000,
                                     b"\xff\xfe", b'{"v": 1}', b"null"])
def test_malicious_stored_values_are_misses(payload):
    store = MemoryStore(max_size_per_item=4096)
    c = Cache(type=None, store=store)
    store.set(c.get_cache_key(**ask(Q)), payload)
    assert c.lookup(**ask(Q)) is None
    assert c.stats()["integrity_rejections"] == 1


# -- async, module level, stats -----------------------------------------------------
def test_async_twins(sem):
    async def run():
        assert await sem.async_get_cache(**ask(Q)) is None
        await sem.async_add_cache(ANSWER, **ask(Q))
        assert await sem.async_get_cache(**ask(Q)) == ANSWER
        hits = await asyncio.gather(*(sem.alookup(**ask(PARA)) for _ in range(8)))
        assert all(h is not None and h.stage == "semantic" for h in hits)
        assert await sem.aflush() == 1

    asyncio.run(run())


def test_module_level_enable_update_disable():
    try:
        c = semcache.enable_cache(type="local", namespace="mod")
        assert semcache.cache is c and c.namespace == "mod"
        c2 = semcache.update_cache(ttl=30)
        assert semcache.cache is c2 and c2.ttl == 30 and c2.namespace == "mod"
        semcache.disable_cache()
        assert semcache.cache is None
    finally:
        semcache.cache = None


def test_stats_and_ping(sem):
    sem.add_cache(ANSWER, **ask(Q))
    sem.lookup(**ask(Q))
    sem.lookup(**ask(PARA))
    sem.lookup(**ask(UNRELATED))
    s = sem.stats()
    assert (s["lookups"], s["exact_hits"], s["semantic_hits"], s["misses"]) == (3, 1, 1, 1)
    assert s["hit_rate"] == pytest.approx(2 / 3) and s["index_entries"] == 1
    assert len(s["near_miss_similarities"]) == 1
    p = sem.ping()
    assert p["store"]["ok"] and p["index"]["ok"]


def test_repr_is_readable(sem):
    assert "faiss-semantic" in repr(sem) and "0.85" in repr(sem)


@pytest.mark.parametrize("control", [10, None, 0])
def test_a_bad_top_level_ttl_is_refused_even_when_cache_ttl_wins(control):
    # ttl="x" beside cache={"ttl": ...} was silently ignored: a typo no one would see
    c = Cache()
    for call in (c.lookup, lambda **kw: c.add_cache(ANSWER, **kw)):
        with pytest.raises(ConfigError, match="ttl") as e:
            call(**ask(Q, ttl="x", cache={"ttl": control}))
        assert e.value.parameter == "ttl"
    # a valid one beside cache["ttl"] is still accepted, and cache["ttl"] still wins
    c.add_cache(ANSWER, **ask(Q, ttl=5, cache={"ttl": 0}))
    assert c.lookup(**ask(Q)) is None
