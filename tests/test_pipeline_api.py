"""The pipeline's public API (``cache.begin`` / ``Pending``), and that nothing outside the
pipeline's own modules reaches into its privates (issue #19)."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import semcache
from semcache import Cache, InvalidRequestError, Pending

ROOT = Path(__file__).resolve().parent.parent
#: the modules the pipeline is made of: they may use each other's privates
PIPELINE = {"semcache/_cache.py", "semcache/_pipeline.py", "semcache/_pending.py",
            "semcache/_policies_by_ns.py",
            "semcache/_learning.py"}
#: the pipeline's private methods, and its private types
PRIVATE_ATTRS = {"_begin", "_abegin", "_finish", "_afinish", "_drive", "_adrive",
                 "_lookup_flow", "_store_flow", "_outcome", "_learning"}
PRIVATE_NAMES = {"_Outcome", "_Request", "_Op"}


def private_uses(source: str, name: str) -> list[str]:
    """Where ``source`` touches the pipeline's privates: its private methods as
    attributes, its private names, or anything imported from ``_pipeline``."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRS:
            found.append(f"{name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in PRIVATE_NAMES:
            found.append(f"{name}:{node.lineno}: {node.id}")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            for alias in node.names:
                if alias.name in PRIVATE_NAMES or mod.endswith("_pipeline"):
                    found.append(f"{name}:{node.lineno}: from {mod} import {alias.name}")
    return found


def test_nothing_outside_the_pipeline_touches_its_privates():
    found = []
    for top in ("semcache", "benchmarks"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in PIPELINE:
                found += private_uses(path.read_text(encoding="utf-8"), rel)
    assert not found, "use cache.begin()/Pending instead:\n" + "\n".join(found)


@pytest.mark.parametrize("src", [
    "out = cache._begin('completion', kw)",
    "await cache._afinish(out, value)",
    "from semcache._cache import _Outcome",
    "from semcache._pipeline import Request",
    "def f(o: _Outcome) -> None: ...",
])
def test_the_check_sees_each_kind_of_private_use(src):
    assert private_uses(src, "x.py")


# -- the API ----------------------------------------------------------------------
def ask(q: str, **kw):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": q}], **kw}


ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Practice daily."}}]}


def test_miss_store_then_hit():
    c = Cache()
    p = c.begin("completion", **ask("How do I learn Python?"))
    assert isinstance(p, Pending) and isinstance(p, semcache.Pending)
    assert not p.hit and p.value is None and p.entry is None
    assert p.metadata["stage"] == "miss" and p.metadata["key"] == p.key
    assert p.reads and p.writes and p.call_type == "completion"
    assert p.store(ANSWER) == p.key
    again = c.begin("completion", **ask("How do I learn Python?"))
    assert again.hit and again.value == ANSWER
    assert again.metadata["stage"] == "exact" and again.metadata["similarity"] == 1.0
    assert again.entry is not None and again.entry.key == p.key
    assert c.stats()["stores"] == 1


def test_the_async_twin():
    async def main():
        c = Cache()
        p = await c.abegin("acompletion", **ask("Q"))
        assert not p.hit
        assert await p.astore(ANSWER) == p.key
        hit = await c.abegin("acompletion", **ask("Q"))
        assert hit.hit and hit.value == ANSWER
        # the sync and async call types key alike: one entry serves both
        assert c.begin("completion", **ask("Q")).value == ANSWER

    asyncio.run(main())


def test_storing_twice_is_an_error_that_says_so():
    c = Cache()
    p = c.begin("completion", **ask("Q"))
    p.store(ANSWER)
    with pytest.raises(InvalidRequestError, match="already stored"):
        p.store({"other": 1})
    with pytest.raises(InvalidRequestError, match="already stored"):
        asyncio.run(p.astore({"other": 1}))
    assert c.begin("completion", **ask("Q")).value == ANSWER  # the first answer stays


def test_an_answer_that_is_not_json_is_refused_and_the_pending_stays_usable():
    c = Cache()
    p = c.begin("completion", **ask("Q"))
    with pytest.raises(InvalidRequestError, match="not JSON-serialisable"):
        p.store({"n": 2**70})
    assert not c.begin("completion", **ask("Q")).hit
    p.store(ANSWER)
    assert c.begin("completion", **ask("Q")).value == ANSWER


def test_a_no_store_pending_does_not_store():
    c = Cache()
    p = c.begin("completion", **ask("Q", cache={"no-store": True}))
    assert p.reads and not p.writes
    assert p.store(ANSWER) is None
    assert not c.begin("completion", **ask("Q")).hit
    assert c.stats()["skipped_writes"] == 1


def test_call_type_is_positional_so_a_request_field_of_that_name_cannot_clash():
    c = Cache()
    # "" infers the call type from the request's fields
    assert c.begin("", **ask("Q")).call_type == "completion"
    assert c.begin("embedding", input="x", model="e").call_type == "embedding"
    # an untrusted body (the proxy's) may hold any field name, these two included
    p = c.begin("completion", **ask("Q"), self=1, call_type="embedding")
    assert p.call_type == "completion" and p.request["call_type"] == "embedding"
    assert p.request["self"] == 1


def test_a_semantic_hit_through_begin(minilm):
    c = Cache(type="faiss-semantic", embedder=minilm, verifier=None,
              similarity_threshold=0.8)
    c.begin("completion", **ask("How do I learn Python quickly?")).store(ANSWER)
    p = c.begin("completion", **ask("What is the fastest way to learn Python?"))
    assert p.hit and p.value == ANSWER and p.metadata["stage"] == "semantic"
    assert 0.8 <= p.metadata["similarity"] < 1.0


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=40), answer=st.dictionaries(
    st.text(max_size=5), st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=10)),
    max_size=3))
def test_what_a_pending_stores_is_what_the_next_begin_serves(text, answer):
    c = Cache()
    p = c.begin("completion", **ask(text))
    assert not p.hit
    p.store(answer)
    got = c.begin("completion", **ask(text))
    assert got.hit and got.value == answer
