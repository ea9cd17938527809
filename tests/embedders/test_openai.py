"""OpenAIEmbedder against a real HTTP server on 127.0.0.1: the project's one fake
upstream (semcache_testing/fake_openai.py), sending scaled vectors in reverse order."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from semcache import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from semcache.embedders.openai import OpenAIEmbedder
from semcache_testing.fake_openai import FakeOpenAI, fake_embedding
from tests.contracts.embedder import EmbedderContract

DIM = 16


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    # retry_errors: error replies let the client retry (10 ms apart), as the real API's
    with FakeOpenAI(embedding_dim=DIM, embedding_scale=3.0, embeddings_reversed=True,
                    retry_errors=True) as s:
        yield s


def bodies(server: FakeOpenAI) -> list[dict[str, object]]:
    """The bodies of the embeddings requests the server received, in order."""
    return [r["body"] for r in server.requests if r["endpoint"] == "embeddings"]


_OPEN: list[OpenAIEmbedder] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Close every embedder's HTTP clients on the test's own loop (no ResourceWarning)."""
    yield
    while _OPEN:
        e = _OPEN.pop()
        e.close()
        await e.aclose()
    # asyncio closes a transport's socket on the loop's next turn: give it that turn
    # before the test's loop is closed, or the socket is reported unclosed
    await asyncio.sleep(0.01)


def track(e: OpenAIEmbedder) -> OpenAIEmbedder:
    _OPEN.append(e)
    return e


def make(server: FakeOpenAI, **kw: object) -> OpenAIEmbedder:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("max_retries", 0)
    return track(OpenAIEmbedder("fake-embed", api_base=server.base_url, dim=DIM, **kw))


class TestOpenAIContract(EmbedderContract):

    @pytest.fixture
    def embedder(self, server: FakeOpenAI) -> OpenAIEmbedder:
        return make(server)


def test_vectors_are_the_servers_normalised(server: FakeOpenAI) -> None:
    e = make(server)
    v = e.embed(["a", "b"])
    for row, text in zip(v, ["a", "b"]):
        ref = np.array(fake_embedding(text, DIM))  # sent as 3x this, row order reversed
        np.testing.assert_allclose(row, ref / np.linalg.norm(ref), atol=1e-6)
    assert bodies(server)[0]["model"] == "fake-embed"
    assert bodies(server)[0]["encoding_format"] == "float"


def test_batches_by_batch_size(server: FakeOpenAI) -> None:
    e = make(server, batch_size=4)
    texts = [f"t{i}" for i in range(10)]
    assert e.embed(texts).shape == (10, 16)
    assert [len(b["input"]) for b in bodies(server)] == [4, 4, 2]
    assert server.inputs == texts


def test_lru_means_one_request_per_text(server: FakeOpenAI) -> None:
    e = make(server)
    e.embed(["q", "q"])
    e.embed(["q"])
    e.embed_one("q")
    assert server.inputs == ["q"]


async def test_async_shares_lru_with_sync(server: FakeOpenAI) -> None:
    e = make(server)
    a = e.embed(["shared"])
    b = await e.aembed(["shared", "new"])
    np.testing.assert_array_equal(a[0], b[0])
    assert server.inputs == ["shared", "new"]


async def test_async_is_native_not_a_thread(server: FakeOpenAI,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    e = make(server, batch_size=2)

    def blocking(*a: object, **k: object) -> None:
        raise AssertionError("aembed must not fall back to the blocking client")

    monkeypatch.setattr(e, "_embed", blocking)
    monkeypatch.setattr(e, "embed", blocking)
    v = await e.aembed(["x", "y", "z"])
    assert v.shape == (3, 16)
    assert [len(b["input"]) for b in bodies(server)] == [2, 1]


def test_dimensions_parameter_is_sent(server: FakeOpenAI) -> None:
    e = track(OpenAIEmbedder("text-embedding-3-small", api_base=server.base_url,
                             dimensions=8, max_retries=0))
    assert e.dim == 8 and e.model_id == "openai/text-embedding-3-small@8"
    assert server.requests == []  # dim known without a call
    assert e.embed(["x"]).shape == (1, 8)
    assert bodies(server)[0]["dimensions"] == 8


def test_known_model_dim_without_probe(server: FakeOpenAI) -> None:
    for model, dim in [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072),
                       ("openai/text-embedding-ada-002", 1536)]:
        assert OpenAIEmbedder(model, api_base=server.base_url).dim == dim
    assert server.requests == []


def test_unknown_model_dim_probes_once(server: FakeOpenAI) -> None:
    e = track(OpenAIEmbedder("custom-model", api_base=server.base_url, max_retries=0))
    assert e.dim == 16 and e.dim == 16
    assert len(server.requests) == 1


def test_retries_then_succeeds(server: FakeOpenAI) -> None:
    server.fail_next = 2
    e = make(server, max_retries=2)
    assert e.embed(["retry me"]).shape == (1, 16)
    assert len(server.requests) == 3


def test_retries_are_limited(server: FakeOpenAI) -> None:
    server.fail_next = 10
    e = make(server, max_retries=1)
    with pytest.raises(BackendUnavailable) as info:
        e.embed(["nope"])
    assert info.value.backend == "embedder" and "503" in str(info.value)
    assert len(server.requests) == 2


def test_client_error_is_backend_error_not_retried(server: FakeOpenAI) -> None:
    server.fail_next, server.fail_status = 1, 400
    e = make(server, max_retries=2)
    with pytest.raises(BackendError) as info:
        e.embed(["bad"])
    assert not isinstance(info.value, (BackendUnavailable, BackendTimeout))
    assert len(server.requests) == 1


def test_timeout_when_server_never_answers(server: FakeOpenAI) -> None:
    server.hang.set()
    e = make(server, timeout=0.3, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout):
        e.embed(["hello?"])
    assert time.monotonic() - t0 < 3


async def test_async_timeout_when_server_never_answers(server: FakeOpenAI) -> None:
    server.hang.set()
    e = make(server, timeout=0.3, max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(BackendTimeout):
        await e.aembed(["hello?"])
    assert time.monotonic() - t0 < 3


def test_unavailable_when_nothing_listens() -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = track(OpenAIEmbedder("m", api_base=f"http://127.0.0.1:{port}/v1", dim=4,
                             max_retries=0))
    with pytest.raises(BackendUnavailable):
        e.embed(["x"])


def test_env_fallback(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    e = track(OpenAIEmbedder("fake-embed", dim=16, max_retries=0))
    assert e.api_base == server.base_url
    e.embed(["via env"])
    assert server.inputs == ["via env"]


def test_no_key_for_openai_itself_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError) as info:
        OpenAIEmbedder("text-embedding-3-small")
    assert info.value.parameter == "api_key"


@pytest.mark.parametrize("kw", [{"timeout": 0}, {"max_retries": -1}, {"dimensions": 0},
                                {"batch_size": 0}])
def test_bad_config(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OpenAIEmbedder("m", api_base="http://127.0.0.1:9/v1", **kw)


def test_constructor_makes_no_request(server: FakeOpenAI) -> None:
    OpenAIEmbedder("text-embedding-3-small", api_base=server.base_url)
    assert server.requests == []


def _rows(answer: dict, fn) -> dict:  # type: ignore[type-arg, no-untyped-def]
    return {**answer, "data": [fn(i, d) for i, d in enumerate(answer["data"])]}


#: a misbehaving server's answers to ["a", "b"] (sent reversed, as the fixture does)
BROKEN_ANSWERS = {
    "one index twice": lambda a: _rows(a, lambda i, d: dict(d, index=0)),
    "indices past the inputs": lambda a: _rows(a, lambda i, d: dict(d, index=d["index"] + 5)),
    "no index": lambda a: _rows(a, lambda i, d: {k: v for k, v in d.items() if k != "index"}),
    "numbers as strings": lambda a: _rows(a, lambda i, d: dict(d, embedding=["1.5"] * DIM)),
    "strings": lambda a: _rows(a, lambda i, d: dict(d, embedding="AAAA")),
    "null rows": lambda a: _rows(a, lambda i, d: dict(d, embedding=None)),
    "ragged rows": lambda a: _rows(a, lambda i, d: dict(d, embedding=d["embedding"][: i + 1])),
    "NaN": lambda a: _rows(a, lambda i, d: dict(d, embedding=[float("nan")] * DIM)),
    "wrong dim": lambda a: _rows(a, lambda i, d: dict(d, embedding=d["embedding"] * 2)),
    "one row short": lambda a: {**a, "data": a["data"][:1]},
    "data is null": lambda a: {**a, "data": None},
    "data is an object": lambda a: {**a, "data": {"0": [1.0] * DIM}},
    "not an object": lambda a: [1, 2],
}


@pytest.mark.parametrize("name", sorted(BROKEN_ANSWERS))
async def test_a_broken_answer_is_a_typed_error_and_nothing_is_stored(
        server: FakeOpenAI, name: str) -> None:
    server.embeddings_answer = BROKEN_ANSWERS[name]
    e = make(server)
    with pytest.raises(BackendError):
        e.embed(["a", "b"])
    with pytest.raises(BackendError):
        await e.aembed(["a", "b"])
    assert len(e._lru) == 0  # no garbage vector planted for a later hit
    server.embeddings_answer = None  # the server recovers: the true rows, in place
    v = e.embed(["a", "b"])
    for row, text in zip(v, ["a", "b"]):
        ref = np.array(fake_embedding(text, DIM))
        np.testing.assert_allclose(row, ref / np.linalg.norm(ref), atol=1e-6)


def test_the_dimension_probe_of_a_broken_answer_is_a_typed_error(server: FakeOpenAI) -> None:
    server.embeddings_answer = BROKEN_ANSWERS["data is null"]
    e = track(OpenAIEmbedder("custom-model", api_base=server.base_url, max_retries=0))
    with pytest.raises(BackendError):
        e.dim  # noqa: B018 - the probe call
    server.embeddings_answer = None
    assert e.dim == DIM
