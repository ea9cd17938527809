"""OpenAI-compatible clients made on first use, one per process and per event loop.

The OpenAI embedder and the LLM verifier both talk to an OpenAI-compatible server
through the ``openai`` SDK, and both need the same care with its pooled connections:

- nothing is made in a constructor (no network, no import of ``openai`` before a call);
- a client made before a fork shares its pooled sockets with the parent: two processes
  reading one socket could each get the other's reply (issue #26), so a child makes its
  own. The inherited ones are kept referenced, unclosed: closing (or collecting) them
  would shut connections the parent is still using;
- an async client's connections belong to the loop that opened them: a second loop (one
  ``asyncio.run`` after another) gets its own client, and the first is closed when its
  loop shuts down (``asyncio.run`` finalises the loop's async generators; one such
  generator per client closes it). It used to be kept, unclosed, for good: every
  ``asyncio.run`` around a call left a client and its sockets behind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["OpenAIClients"]

#: clients no longer used but never closed: a forked child's inherited ones
_RETIRED: list[Any] = []


async def _closed_with_its_loop(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def _close_with_loop(client: Any) -> AsyncIterator[None]:
    """An async generator, started on the running loop, whose finalisation (the loop's
    shutdown, or the generator being dropped while the loop runs) closes ``client``.
    Keep it referenced while the client is in use."""
    closer = _closed_with_its_loop(client)
    try:  # run it to its first yield: the loop's first-iteration hook registers it
        closer.__anext__().send(None)  # type: ignore[attr-defined]
    except StopIteration:
        pass
    return closer


class OpenAIClients:
    """The sync and async ``openai`` clients of one component, made from ``kwargs``
    (``api_key``, ``base_url``, ``timeout``, ``max_retries``, ``default_headers``)."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs
        self._client: Any = None
        self._aclient: Any = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._acloser: AsyncIterator[None] | None = None
        self._pid = os.getpid()

    def _own(self) -> None:
        if self._pid != os.getpid():
            _RETIRED.extend(c for c in (self._client, self._aclient) if c is not None)
            self._client = self._aclient = self._aloop = self._acloser = None
            self._pid = os.getpid()

    def sync(self) -> Any:
        self._own()
        if self._client is None:
            from openai import OpenAI  # a core dependency, imported on first use

            self._client = OpenAI(**self._kwargs)
        return self._client

    def async_(self) -> Any:
        self._own()
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            from openai import AsyncOpenAI

            # the replaced client, if any, is closed by its own loop's closer
            self._aclient, self._aloop = AsyncOpenAI(**self._kwargs), loop
            self._acloser = _close_with_loop(self._aclient)
        return self._aclient

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.close()
            self._aclient = self._aloop = self._acloser = None
