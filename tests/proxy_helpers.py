"""Shared setup of the proxy tests: a FakeOpenAI upstream and proxies on loopback."""

from __future__ import annotations

from typing import Any

import httpx
import openai

from semcache.proxy.app import create_app
from semcache.proxy.config import parse_config
from semcache_testing.proxy_server import ProxyServer

#: openai clients the tests opened, closed after each test (tests/conftest.py): a client
#: left to the garbage collector closes its pooled sockets late, as a ResourceWarning
#: that filterwarnings=error turns into an error of whichever test is running then
_CLIENTS: list[openai.OpenAI] = []


def openai_client(base_url: str, key: str, **kw: Any) -> openai.OpenAI:
    """An ``openai.OpenAI`` on ``base_url`` (no retries), closed when the test ends."""
    c = openai.OpenAI(base_url=base_url, api_key=key, max_retries=kw.pop("max_retries", 0),
                      **kw)
    _CLIENTS.append(c)
    return c


def close_clients() -> None:
    while _CLIENTS:
        _CLIENTS.pop().close()


MASTER = "sk-master-test"
KEY_A = "sk-team-a"
KEY_B = "sk-team-b"
KEY_A2 = "sk-team-a-second"


def config_dict(upstream: str, **sections: Any) -> dict[str, Any]:
    """Two client-facing models on the fake (one asks upstream for another name), a
    model whose upstream always answers 429, three keys, a price table."""
    cfg: dict[str, Any] = {
        "model_list": [
            {"model_name": "chat", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_base": upstream, "api_key": "sk-up"}},
            {"model_name": "chat-eu", "litellm_params": {
                "model": "gpt-4o-mini", "api_base": upstream, "api_key": "sk-up"}},
            {"model_name": "solo", "litellm_params": {"model": "gpt-4o", "api_base": upstream}},
            {"model_name": "limited", "litellm_params": {"model": "fail-429",
                                                         "api_base": upstream}},
            {"model_name": "embed", "litellm_params": {"model": "text-embedding-3-small",
                                                       "api_base": upstream}},
            {"model_name": "whisper", "litellm_params": {"model": "whisper-1",
                                                         "api_base": upstream}},
            {"model_name": "instruct", "litellm_params": {"model": "gpt-3.5-turbo-instruct",
                                                          "api_base": upstream}},
        ],
        "litellm_settings": {"cache": True, "cache_params": {"type": "local"}},
        "router_settings": {"caching_groups": [["chat", "chat-eu"]]},
        "general_settings": {"master_key": MASTER},
        "semcache_settings": {
            "keys": [{"key": KEY_A, "namespace": "team-a"},
                     {"key": KEY_B, "namespace": "team-b"},
                     # a second key of team A: the config shares team A's entries with it
                     {"key": KEY_A2, "namespace": "team-a"}],
            "prices": {"chat": {"input": 150.0, "output": 600.0}},
            # FakeOpenAI is a ThreadingHTTPServer with a listen backlog of 5: a burst of
            # hundreds of fresh connections overflows it, which real upstreams do not
            "max_connections": 16,
        },
    }
    cfg.update(sections)
    return cfg


class Proxies:
    """Starts proxies for a test and stops them all at its end."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.running: list[ProxyServer] = []

    def start(self, cache: Any = None, **sections: Any) -> ProxyServer:
        cfg = parse_config(config_dict(self.upstream, **sections))
        app = create_app(cfg, cache=cache)
        server = ProxyServer(app).start()
        server.state = app.state.proxy  # type: ignore[attr-defined]
        self.running.append(server)
        return server

    def stop(self) -> None:
        for s in self.running:
            s.stop()


def master() -> dict[str, str]:
    return {"Authorization": f"Bearer {MASTER}"}


def stats(proxy: ProxyServer) -> dict[str, Any]:
    r = httpx.get(proxy.url + "/cache/stats", headers=master())
    r.raise_for_status()
    return r.json()


def ask(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]
