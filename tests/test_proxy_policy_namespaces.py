"""The proxy's tenants each learn their own verified policy: team A's judged
explorations do not make the proxy serve team B risky candidates (docs/proxy.md)."""

from __future__ import annotations

import pytest

from semcache import Cache
from semcache.policies.verified import VerifiedPolicy
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import KEY_A, KEY_B, ask, openai_client

Q = "How do I learn Python quickly?"
PARA = "What is the fastest way to learn Python?"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


def chat(c, q: str):
    raw = c.chat.completions.with_raw_response.create(model="chat", messages=ask(q))
    return raw.headers


def test_one_tenants_judged_outcomes_do_not_serve_another_tenant(proxies, minilm):
    policy = VerifiedPolicy(0.5, min_judged=10, audit_rate=0.0, min_audits=0,
                            min_budget_samples=0, seed=0)
    cache = Cache(type="faiss-semantic", embedder=minilm, policy=policy,
                  judge=lambda *a: True, verifier=None, similarity_threshold=0.7)
    proxy = proxies.start(cache=cache)
    a, b = openai_client(proxy.base_url, KEY_A), openai_client(proxy.base_url, KEY_B)
    # team A's paraphrases are explored and judged right until A trusts them
    for i in range(40):
        chat(a, f"{Q} ({i})")
        if chat(a, f"{PARA} ({i})")["x-semcache-stage"] == "semantic":
            break
    else:
        pytest.fail("team A's explorations never taught its policy to serve")
    chat(a, Q)
    chat(b, Q)
    assert chat(a, PARA)["x-semcache-stage"] == "semantic"  # A learned to trust these
    assert chat(b, PARA)["x-semcache-stage"] == "miss"  # B has judged nothing yet
    cache.close()
