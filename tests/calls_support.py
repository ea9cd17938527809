"""Shared fixtures of the call-layer tests: one FakeOpenAI upstream per session, a clean
``semcache.cache`` / ``success_callback`` per test, and ``api``: the public functions
run either synchronously or on an event loop, so every case runs both ways with one body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import semcache
from semcache._calls import POOL, aclose_clients
from semcache_testing.fake_openai import FakeOpenAI

MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def fake(fake_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_server.reset()
    fake_server.numbered = False
    fake_server.delay_ms = 0
    fake_server.chunk_delay_ms = 0
    old_cache, old_cb = semcache.cache, semcache.success_callback
    semcache.success_callback = []
    try:
        yield fake_server
    finally:
        semcache.cache, semcache.success_callback = old_cache, old_cb


@pytest.fixture
def kw(fake: FakeOpenAI) -> dict[str, Any]:
    """The endpoint arguments of every call."""
    return {"api_base": fake.base_url, "api_key": "sk-test"}


class Api:
    """``api.completion(...)`` runs ``semcache.completion`` or, in async mode,
    ``semcache.acompletion`` on this test's event loop; streams are drained to lists
    by ``api.stream(...)`` in the same loop."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.loop = asyncio.new_event_loop() if mode == "async" else None

    def _call(self, name: str, kwargs: dict[str, Any]) -> Any:
        if self.loop is None:
            return getattr(semcache, name)(**kwargs)
        return self.loop.run_until_complete(getattr(semcache, "a" + name)(**kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda **kwargs: self._call(name, kwargs)

    def stream(self, name: str = "completion", **kwargs: Any) -> tuple[Any, list[Any]]:
        """(the stream object, its chunks) of a ``stream=True`` call, fully consumed."""
        if self.loop is None:
            s = getattr(semcache, name)(stream=True, **kwargs)
            return s, list(s)

        async def drain() -> tuple[Any, list[Any]]:
            s = await getattr(semcache, "a" + name)(stream=True, **kwargs)
            return s, [c async for c in s]

        return self.loop.run_until_complete(drain())

    def router(self, router: Any, name: str, **kwargs: Any) -> Any:
        if self.loop is None:
            return getattr(router, name)(**kwargs)
        return self.loop.run_until_complete(getattr(router, "a" + name)(**kwargs))

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(aclose_clients())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    a = Api(request.param)
    try:
        yield a
    finally:
        a.close()


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


__all__ = ["MSG", "POOL", "Api", "api", "fake", "fake_server", "kw", "text_of"]
