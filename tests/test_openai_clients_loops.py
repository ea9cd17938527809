"""OpenAIClients (the OpenAI embedder's and the LLM verifier's clients) across event
loops: each loop gets its own async client, and a loop's client is closed when the loop
shuts down instead of being kept, unclosed, for the life of the process."""

from __future__ import annotations

import asyncio
import gc

from semcache._connections import openai as connections


def test_each_asyncio_run_closes_the_client_it_made() -> None:
    clients = connections.OpenAIClients({"api_key": "x", "base_url": "http://127.0.0.1:9/v1"})
    made = []

    async def call() -> None:
        made.append(clients.async_())
        assert clients.async_() is made[-1]  # one client per loop

    retired = len(connections._RETIRED)
    for _ in range(4):
        asyncio.run(call())
    gc.collect()
    assert len({id(c) for c in made}) == 4
    assert all(c.is_closed() for c in made)
    assert len(connections._RETIRED) == retired  # nothing kept for good


def test_a_client_in_use_stays_open_on_its_loop() -> None:
    clients = connections.OpenAIClients({"api_key": "x", "base_url": "http://127.0.0.1:9/v1"})

    async def main() -> None:
        first = clients.async_()
        gc.collect()  # the closer is referenced while its client is current
        for _ in range(10):  # loop iterations (no time): a dropped closer would run by now
            await asyncio.sleep(0)
        assert not first.is_closed() and clients.async_() is first
        await clients.aclose()
        assert first.is_closed()

    asyncio.run(main())
