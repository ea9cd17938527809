"""Single-flight in the proxy (issue #22): concurrent identical misses make one upstream
call, within one proxy and across proxies sharing a Redis store."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from semcache._flight import FLIGHTS
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import MASTER, Proxies, ask, master

N = 16


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as f:
        yield f


@pytest.fixture
def proxies(fake):
    fake.reset()
    fake.delay_ms = 400  # the first call is still in flight when all have looked up
    p = Proxies(fake.base_url)
    yield p
    p.stop()
    fake.delay_ms = 0
    assert not FLIGHTS._slots  # every lease released


async def _burst(urls: list[str], body: dict, n: int = N) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, headers=master()) as c:
        return list(await asyncio.gather(*(
            c.post(urls[i % len(urls)] + "/v1/chat/completions", json=body)
            for i in range(n))))


def test_identical_misses_in_one_proxy_make_one_upstream_call(proxies, fake):
    p = proxies.start()
    body = {"model": "chat", "messages": ask(f"popular {uuid.uuid4().hex}")}
    out = asyncio.run(_burst([p.url], body))
    assert all(r.status_code == 200 for r in out)
    assert fake.calls["chat/completions"] == 1
    stages = sorted(r.headers["x-semcache-stage"] for r in out)
    assert stages == ["exact"] * (N - 1) + ["miss"]
    assert len({r.json()["choices"][0]["message"]["content"] for r in out}) == 1


def test_streams_and_no_cache_are_not_coalesced(proxies, fake):
    p = proxies.start()
    body = {"model": "chat", "messages": ask(f"fresh {uuid.uuid4().hex}"),
            "cache": {"no-cache": True}}
    asyncio.run(_burst([p.url], body, n=4))
    assert fake.calls["chat/completions"] == 4


def test_proxies_sharing_redis_coalesce(proxies, fake, redis_stack_url):
    ns = f"flight-{uuid.uuid4().hex[:8]}"
    params = {"cache": True, "cache_params": {"type": "redis", "redis_url": redis_stack_url,
                                              "namespace": ns}}
    a = proxies.start(litellm_settings=params)
    b = proxies.start(litellm_settings=params)
    try:
        body = {"model": "chat", "messages": ask("one question for two proxies")}
        out = asyncio.run(_burst([a.url, b.url], body))
        assert all(r.status_code == 200 for r in out)
        assert fake.calls["chat/completions"] == 1
    finally:
        a.state.cache.flush()


def test_two_proxy_processes_coalesce_through_redis(tmp_path, fake, redis_stack_url):
    # two `semcache serve` processes sharing one Redis (two machines, or workers):
    # half of the burst goes to each, and only one upstream call is made
    import os
    import subprocess
    import sys
    import textwrap

    from semcache_testing.proxy_server import free_port

    from .test_proxy_cli import wait_healthy

    fake.reset()
    fake.delay_ms = 600
    ns = f"procs-{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        model_list:
          - model_name: chat
            litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake.base_url}"}}
        litellm_settings:
          cache: true
          cache_params: {{type: redis, redis_url: "{redis_stack_url}", namespace: {ns}}}
        general_settings: {{master_key: {MASTER}}}
        """))
    procs, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "semcache.proxy", "--config", str(cfg), "--port",
                 str(port)], env={**os.environ, "PYTHONPATH": os.getcwd()},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs):
            wait_healthy(url, proc)
        body = {"model": "chat", "messages": ask(f"processes {uuid.uuid4().hex}")}
        out = asyncio.run(_burst(urls, body))
        assert all(r.status_code == 200 for r in out)
        assert fake.calls["chat/completions"] == 1
        assert sorted(r.headers["x-semcache-stage"] for r in out).count("miss") == 1
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=30)
        fake.delay_ms = 0
