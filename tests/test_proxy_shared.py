"""N proxies on one shared cache server: an entry stored through one is served by all."""

from __future__ import annotations

import uuid

import httpx

from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import MASTER, Proxies, ask, master, openai_client


def test_two_proxies_share_one_redis(redis_stack_url):
    ns = f"proxy-{uuid.uuid4().hex[:8]}"
    settings = {"cache": True, "cache_params": {"type": "redis", "redis_url": redis_stack_url,
                                                "namespace": ns}}
    with FakeOpenAI(numbered=True) as fake:
        proxies = Proxies(fake.base_url)
        try:
            one = proxies.start(litellm_settings=settings)
            two = proxies.start(litellm_settings=settings)
            c1 = openai_client(one.base_url, MASTER)
            c2 = openai_client(two.base_url, MASTER)
            r1 = c1.chat.completions.with_raw_response.create(model="chat",
                                                              messages=ask("shared?"))
            r2 = c2.chat.completions.with_raw_response.create(model="chat",
                                                              messages=ask("shared?"))
            assert r1.headers["x-semcache-stage"] == "miss"
            assert r2.headers["x-semcache-stage"] == "exact"
            assert r2.headers["x-semcache-key"] == r1.headers["x-semcache-key"]
            assert r2.parse().choices[0].message.content == \
                r1.parse().choices[0].message.content
            assert fake.calls["chat/completions"] == 1
            ping = httpx.get(two.url + "/cache/ping", headers=master())
            assert ping.status_code == 200 and ping.json()["backends"]["store"]["ok"]
            # a flush through either proxy empties the shared namespace for both
            flushed = httpx.post(two.url + "/cache/flush", headers=master()).json()["flushed"]
            assert flushed[ns] == 1
            r3 = c1.chat.completions.with_raw_response.create(model="chat",
                                                              messages=ask("shared?"))
            assert r3.headers["x-semcache-stage"] == "miss"
        finally:
            proxies.stop()
