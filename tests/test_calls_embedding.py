"""embedding: each input item cached on its own; transcription: keyed on the audio's
content, not its name."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types import CreateEmbeddingResponse
from openai.types.audio import Transcription

import semcache
from semcache import Cache, Router
from semcache._calls import aclose_clients
from semcache.exact.memory import MemoryStore
from semcache_testing.fake_openai import FakeOpenAI, fake_embedding, fake_transcript
from tests.calls_support import api, fake, fake_server, kw  # noqa: F401

EMB = "embeddings"
AUDIO = "audio/transcriptions"


def _vec(text, dim=8):
    return pytest.approx(fake_embedding(text, dim), abs=1e-6)


def test_docs_embedding_partial_batch(api, fake, kw):
    semcache.cache = Cache()
    first = api.embedding(model="text-embedding-3-small", input=["apple", "banana split"],
                          dimensions=8, **kw)
    assert first._hidden_params["cache_hit"] is False
    r = api.embedding(model="text-embedding-3-small",
                      input=["banana split", "cherry pie", "apple", "date"], dimensions=8,
                      **kw)
    # only the missing items went upstream, in order
    assert fake.calls[EMB] == 2
    assert fake.requests[-1]["body"]["input"] == ["cherry pie", "date"]
    assert isinstance(r, CreateEmbeddingResponse)
    assert [d.index for d in r.data] == [0, 1, 2, 3]
    for d, text in zip(r.data, ["banana split", "cherry pie", "apple", "date"]):
        assert d.embedding == _vec(text)
    # usage: every item's tokens, cached ones at their original figures
    assert r.usage.prompt_tokens == r.usage.total_tokens == 2 + 2 + 1 + 1
    hp = r._hidden_params
    # LiteLLM's cache_hit: any item came from the cache; cache_hits says how many
    assert hp["cache_hit"] is True and hp["cache_hits"] == 2
    assert hp["cache"]["stage"] == "partial" and hp["cache"]["hits"] == 2
    assert [m["stage"] for m in hp["cache"]["items"]] == ["exact", "miss", "exact", "miss"]


def test_embedding_all_cached_makes_no_call(api, fake, kw):
    semcache.cache = Cache()
    api.embedding(model="e", input=["x", "y"], dimensions=8, **kw)
    r = api.embedding(model="e", input=["y", "x", "y"], dimensions=8, **kw)
    assert fake.calls[EMB] == 1
    assert r._hidden_params["cache_hit"] is True and r._hidden_params["response_cost"] == 0.0
    assert [d.embedding for d in r.data] == [_vec("y"), _vec("x"), _vec("y")]
    assert r.model == "e" and r.usage.prompt_tokens == 3


def test_embedding_single_string_shares_the_item_entry(api, fake, kw):
    semcache.cache = Cache()
    api.embedding(model="e", input=["hello world"], dimensions=8, **kw)
    r = api.embedding(model="e", input="hello world", dimensions=8, **kw)
    assert fake.calls[EMB] == 1 and r._hidden_params["cache_hit"] is True
    assert r._hidden_params["cache"]["stage"] == "exact"  # one item: its own metadata
    assert r.data[0].embedding == _vec("hello world") and r.data[0].index == 0


def test_embedding_parameters_are_part_of_the_key(api, fake, kw):
    semcache.cache = Cache()
    api.embedding(model="e", input=["x"], dimensions=8, **kw)
    r = api.embedding(model="e", input=["x"], dimensions=4, **kw)
    api.embedding(model="e2", input=["x"], dimensions=8, **kw)
    assert fake.calls[EMB] == 3 and len(r.data[0].embedding) == 4


def test_embedding_without_cache_returns_upstream_response(api, fake, kw):
    r = api.embedding(model="e", input=["a", "b"], dimensions=8, **kw)
    assert [d.embedding for d in r.data] == [_vec("a"), _vec("b")]
    assert r._hidden_params["cache"] is None and fake.calls[EMB] == 1


def test_embedding_token_inputs(api, fake, kw):
    semcache.cache = Cache()
    api.embedding(model="e", input=[[1, 2, 3], [4, 5]], dimensions=8, **kw)
    r = api.embedding(model="e", input=[4, 5], dimensions=8, **kw)  # one token list
    assert fake.calls[EMB] == 1 and r._hidden_params["cache_hit"] is True
    assert r.data[0].embedding == pytest.approx(fake_embedding([4, 5], 8), abs=1e-6)


def _keyed(form, cache):
    """The request arguments that give a batch one custom key, in each form a user has."""
    if form == "cache_key":
        return {"cache_key": "my-batch"}
    if form == "metadata":
        return {"metadata": {"cache_key": "my-batch"}}
    cache.get_cache_key = lambda **kw: "my-batch"  # LiteLLM's docs: assign a function
    return {}


@pytest.mark.parametrize("form", ["cache_key", "metadata", "get_cache_key"])
def test_a_custom_key_names_the_whole_batch_never_each_item(api, fake, kw, form):
    # every item of a batch was filed under the one custom key, the last item's vector
    # overwriting the others', and the repeat served item 2's vector for item 1
    semcache.cache = Cache()
    extra = _keyed(form, semcache.cache)
    first = api.embedding(model="e", input=["apple", "pear"], dimensions=8, **extra, **kw)
    again = api.embedding(model="e", input=["apple", "pear"], dimensions=8, **extra, **kw)
    for r in (first, again):
        assert [d.embedding for d in r.data] == [_vec("apple"), _vec("pear")]
        assert [d.index for d in r.data] == [0, 1]
    assert again._hidden_params["cache_hit"] is True and fake.calls[EMB] == 1
    # an entry of another size under the key answers no batch: 1 vector for 3 inputs,
    # or 2 for 1, would misalign every caller that zips inputs with data
    three = api.embedding(model="e", input=["a", "b", "c"], dimensions=8, **extra, **kw)
    assert three._hidden_params["cache_hit"] is False and fake.calls[EMB] == 2
    assert [d.embedding for d in three.data] == [_vec("a"), _vec("b"), _vec("c")]
    one = api.embedding(model="e", input="a", dimensions=8, **extra, **kw)
    assert one._hidden_params["cache_hit"] is False and fake.calls[EMB] == 3
    assert len(one.data) == 1


def _rows(*indexed):
    return {"object": "list", "model": "e", "usage": {"prompt_tokens": 2, "total_tokens": 2},
            "data": [{"object": "embedding", "index": i, "embedding": [v]} for i, v in indexed]}


@pytest.mark.parametrize("rows", [((0, 1.0),), ((0, 1.0), (2, 2.0)), ((0, 1.0), (0, 2.0)),
                                  ((0, 1.0), (1, 2.0), (2, 3.0))],
                         ids=["too-few", "gap", "repeat", "too-many"])
def test_rows_that_do_not_match_the_inputs_are_never_cached_as_an_items(api, fake, rows):
    # an upstream that dropped, repeated or renumbered rows: its row 2 was filed as
    # item 1's vector (or a row missing raised a raw IndexError), and then served to
    # every later request for item 1
    semcache.cache = Cache()
    r = api.embedding(model="e", input=["a", "b"], mock_response=_rows(*rows))
    assert [(d.index, d.embedding) for d in r.data] == [(i, [v]) for i, v in rows]  # as sent
    assert r._hidden_params["cache_hit"] is False and len(semcache.cache.store) == 0
    # with an item from the cache, there is no way to put the batch together ("c" is
    # filed under the key the batch's item will have: mock_response is in the key)
    c = api.embedding(model="e", input=["c"], mock_response=_rows((0, 7.0)))
    semcache.cache.add_cache(c, model="e", input=["c"], mock_response=_rows(*rows))
    with pytest.raises(semcache.BackendError, match="upstream") as e:
        api.embedding(model="e", input=["c", "a", "b"], mock_response=_rows(*rows))
    assert e.value.backend == "upstream" and len(semcache.cache.store) == 2


# ---------------------------------------------------------------- transcription
AUDIO_BYTES = b"RIFF\x00\x00WAVEfmt " + bytes(range(256)) * 8


def test_docs_transcription_by_content(api, fake, kw, tmp_path):
    semcache.cache = Cache()
    path = tmp_path / "meeting.wav"
    path.write_bytes(AUDIO_BYTES)
    first = api.transcription(model="whisper-1", file=str(path), **kw)
    assert isinstance(first, Transcription) and first.text == fake_transcript(AUDIO_BYTES)
    assert first._hidden_params["cache_hit"] is False
    assert fake.requests[0]["body"]["file"]["filename"] == "meeting.wav"
    # the same audio under other names and in every accepted form: hits
    for file in (path, AUDIO_BYTES, ("renamed.mp3", AUDIO_BYTES),
                 io.BytesIO(AUDIO_BYTES), ("x.wav", io.BytesIO(AUDIO_BYTES))):
        r = api.transcription(model="whisper-1", file=file, **kw)
        assert r._hidden_params["cache_hit"] is True and r.text == first.text
    assert fake.calls[AUDIO] == 1
    # other audio under the same name: a miss
    path.write_bytes(AUDIO_BYTES + b"\x01")
    r = api.transcription(model="whisper-1", file=str(path), **kw)
    assert r._hidden_params["cache_hit"] is False and fake.calls[AUDIO] == 2
    assert r.text == fake_transcript(AUDIO_BYTES + b"\x01")


def test_transcription_file_object_is_read_once(fake, kw):
    class OnceFile(io.BytesIO):
        reads = 0

        def read(self, *a):
            OnceFile.reads += 1
            return super().read(*a)

    semcache.cache = Cache()
    f = OnceFile(AUDIO_BYTES)
    f.name = "/tmp/clip.wav"
    r = semcache.transcription(model="whisper-1", file=f, **kw)
    assert OnceFile.reads == 1 and r.text == fake_transcript(AUDIO_BYTES)
    assert fake.requests[0]["body"]["file"] == {
        "filename": "clip.wav", "sha256": fake.requests[0]["body"]["file"]["sha256"],
        "size": len(AUDIO_BYTES)}


def test_transcription_options_are_part_of_the_key(api, fake, kw):
    semcache.cache = Cache()
    api.transcription(model="whisper-1", file=AUDIO_BYTES, language="en", **kw)
    api.transcription(model="whisper-1", file=AUDIO_BYTES, language="fr", **kw)
    t = api.transcription(model="whisper-1", file=AUDIO_BYTES, response_format="text", **kw)
    t2 = api.transcription(model="whisper-1", file=AUDIO_BYTES, response_format="text", **kw)
    assert fake.calls[AUDIO] == 3
    assert isinstance(t2, str) and t2 == t == fake_transcript(AUDIO_BYTES)
    assert t._hidden_params["cache_hit"] is False and t2._hidden_params["cache_hit"] is True


def test_bad_file_argument_is_an_error(fake, kw):
    with pytest.raises(semcache.InvalidRequestError, match="file must be"):
        semcache.transcription(model="whisper-1", file=12345, **kw)


class GatheringStore(MemoryStore):
    """A memory store whose async reads wait (bounded) until ``n`` are in flight: it
    proves an async embedding call looks its items up concurrently."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.in_flight, self.peak = n, 0, 0
        self.all_in: asyncio.Event | None = None

    async def aget(self, key):
        if self.all_in is None:
            self.all_in = asyncio.Event()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.n:
            self.all_in.set()
        try:
            await asyncio.wait_for(self.all_in.wait(), timeout=2)
        except TimeoutError:
            pass
        self.in_flight -= 1
        return self.get(key)


async def test_async_embedding_looks_items_up_concurrently(fake, kw):
    store = GatheringStore(4)
    semcache.cache = Cache(store=store)
    try:
        r = await semcache.aembedding(model="e", input=["a", "b", "c", "d"], dimensions=8,
                                      **kw)
    finally:
        await aclose_clients()
    assert store.peak == 4 and [d.index for d in r.data] == [0, 1, 2, 3]
    assert len(store) == 4  # and each item was stored


# ---------------------------------------------------------------- per-item property
WORDS = ["apple", "pear", "fig", "kiwi", "lime", "plum"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6), min_size=1,
                max_size=5),
       st.lists(st.booleans(), min_size=5, max_size=5))
def test_every_item_gets_its_own_vector_whatever_is_cached(fake_server, batches, asyncs):
    # order, duplicates and partly cached batches, sync and async, through a Router's
    # caching group and an upstream that sends its rows in reverse: item i's vector is
    # never served for item j
    fake_server.reset()
    with FakeOpenAI(embeddings_reversed=True) as rev:
        dep = [{"model_name": name, "litellm_params": {"model": "e", "api_base": base,
                                                       "api_key": "k"}}
               for name, base in (("emb-a", fake_server.base_url), ("emb-b", rev.base_url))]
        router = Router(model_list=dep, caching_groups=[("emb-a", "emb-b")], cache=Cache())
        for i, (batch, is_async) in enumerate(zip(batches, asyncs)):
            model = ("emb-a", "emb-b")[i % 2]
            if is_async:
                async def call(model=model, batch=batch):
                    try:
                        return await router.aembedding(model=model, input=batch, dimensions=8)
                    finally:
                        await aclose_clients()

                r = asyncio.run(call())
            else:
                r = router.embedding(model=model, input=batch, dimensions=8)
            rows = sorted(r.data, key=lambda d: d.index)  # a fresh batch comes as sent
            assert [d.index for d in rows] == list(range(len(batch)))
            assert [d.embedding for d in rows] == [_vec(w) for w in batch]
