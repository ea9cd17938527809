"""State that must not cross a fork (issue #26), outside the FAISS index (whose fork
tests are in tests/test_index_faiss_shared.py and tests/test_multiprocess_faiss.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from semcache.embedders.openai import OpenAIEmbedder
from semcache_testing.fake_openai import FakeOpenAI, fake_embedding
from tests.multiprocess_support import in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def test_a_forked_child_makes_its_own_embedding_client():
    """A client made before the fork holds pooled connections shared with the parent;
    the child must not read replies on them."""
    server = FakeOpenAI(embedding_dim=16).start()
    e = OpenAIEmbedder("fake-embed", api_base=server.base_url, dim=16, max_retries=0,
                       cache_size=0)
    try:
        e.embed(["before the fork"])  # the parent's client now has a live connection
        parent_client = e._clients._client

        def child() -> str:
            v = e.embed(["in the child"])[0]
            want = np.array(fake_embedding("in the child", 16))
            right = np.allclose(v, want / np.linalg.norm(want), atol=1e-6)
            return f"{e._clients._client is parent_client} {right}"

        assert in_child(child) == "False True"  # a client of its own, and a right answer
        assert e._clients._client is parent_client  # the parent's is untouched and still works
        v = e.embed(["after the fork"])[0]
        want = np.array(fake_embedding("after the fork", 16))
        assert np.allclose(v, want / np.linalg.norm(want), atol=1e-6)
    finally:
        e.close()
        server.stop()


def test_a_forked_child_makes_its_own_completion_client():
    """The call layer's pooled ``openai.OpenAI`` per endpoint: made in the parent, it
    must not be what the child's ``completion()`` uses (shared sockets, crossed replies)."""
    import semcache
    from semcache._calls import POOL

    with FakeOpenAI() as fake:
        kw = {"api_base": fake.base_url, "api_key": "sk-test", "caching": False}
        msg = [{"role": "user", "content": "Hello there"}]
        semcache.completion(model="m", messages=msg, **kw)  # the parent's client is pooled
        parent = dict(POOL._sync)
        assert parent

        def child() -> str:
            r = semcache.completion(model="m", messages=msg, **kw)
            ours = [c for c in POOL._sync.values() if c in parent.values()]
            return f"{len(ours)} {bool(r.choices[0].message.content)}"

        assert in_child(child) == "0 True"  # clients of its own, and an answer
        assert dict(POOL._sync) == parent  # the parent's pool is untouched
        assert semcache.completion(model="m", messages=msg, **kw).choices
