from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from semcache._registry import get_embedder
from semcache.embedders.base import Embedder

# Real-server fixtures (redis_stack_url, redis_cluster_nodes, s3_endpoint, gcs_endpoint,
# azurite_connection_string, ...): see semcache_testing/pytest_plugin.py.
pytest_plugins = ["semcache_testing.pytest_plugin"]


class FakeClock:
    """A settable clock for deterministic TTL tests (no sleeping)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _restore_module_cache() -> Iterator[None]:
    """``semcache.cache`` (LiteLLM's module-level cache) as it was before each test: a
    test that set it and did not put it back made later tests hit its entries (two
    Router tests failed only after tests/test_calls_embedding.py had run)."""
    import semcache

    saved = semcache.cache
    yield
    semcache.cache = saved


@pytest.fixture(autouse=True)
def _close_openai_clients() -> Iterator[None]:
    """Close the proxy tests' openai clients when each test ends (proxy_helpers)."""
    yield
    helpers = sys.modules.get("tests.proxy_helpers")  # imported by the proxy tests only
    if helpers is not None:
        helpers.close_clients()


@pytest.fixture
def proxies(fake):
    """Proxies on the requesting module's ``fake`` upstream, reset for each test and
    stopped after it; a module that needs more set-up defines its own ``proxies``."""
    from .proxy_helpers import Proxies

    fake.reset()
    p = Proxies(fake.base_url)
    yield p
    p.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real default embedder, loaded once per test session."""
    return get_embedder("all-MiniLM-L6-v2")
