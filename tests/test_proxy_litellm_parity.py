"""A LiteLLM proxy config brought as is (issue #22): ``cache: true``'s default cache,
LiteLLM's extra ``cache_params``, the start-up line, ``/cache/ping`` and the key header."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.parse
import uuid

import httpx
import pytest
import redis

from semcache.proxy.config import parse_config
from semcache.proxy.defaults import REDIS_ENV
from semcache_testing.fake_openai import FakeOpenAI
from semcache_testing.proxy_server import free_port

from .proxy_helpers import MASTER, ask, config_dict, master, openai_client
from .test_proxy_cli import wait_healthy


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(numbered=True) as f:
        yield f


@pytest.fixture
def no_redis_env(monkeypatch):
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def chat(proxy, text: str) -> httpx.Response:
    r = httpx.post(proxy.url + "/v1/chat/completions", headers=master(),
                   json={"model": "chat", "messages": ask(text)})
    assert r.status_code == 200, r.text
    return r


def test_cache_true_alone_with_redis_env_is_a_shared_exact_redis_cache(
        proxies, no_redis_env, redis_stack_url):
    url = urllib.parse.urlsplit(redis_stack_url)
    no_redis_env.setenv("REDIS_HOST", url.hostname or "127.0.0.1")
    no_redis_env.setenv("REDIS_PORT", str(url.port))
    a = proxies.start(litellm_settings={"cache": True})
    b = proxies.start(litellm_settings={"cache": True})
    assert a.state.cache.type == "redis"
    q = f"What is the capital of France? ({uuid.uuid4().hex})"
    first = chat(a, q)
    assert first.headers["x-semcache-stage"] == "miss"
    # a second proxy (another worker) reads the entry the first one wrote, from Redis
    assert chat(b, q).headers["x-semcache-stage"] == "exact"
    key = first.headers["x-semcache-key"]
    with redis.Redis.from_url(redis_stack_url) as r:  # the entry is in Redis itself
        assert r.exists(key)
    # exact only: a paraphrase is a miss, never a semantic answer nobody asked for
    para = chat(a, q.replace("What is the capital of France?", "Which city is France's "
                                                                 "capital?"))
    assert para.headers["x-semcache-stage"] == "miss"


def test_cache_true_alone_without_redis_env_is_in_memory_exact(proxies, no_redis_env):
    p = proxies.start(litellm_settings={"cache": True})
    assert p.state.cache.type == "local" and p.state.cache.index is None
    assert chat(p, "What is the capital of France?").headers["x-semcache-stage"] == "miss"
    assert chat(p, "What is the capital of France?").headers["x-semcache-stage"] == "exact"
    assert chat(p, "Which city is France's capital?").headers["x-semcache-stage"] == "miss"


def test_litellm_extra_cache_params_warn_and_are_dropped(no_redis_env):
    cfg = parse_config(config_dict("http://127.0.0.1:9/v1", litellm_settings={
        "cache": True, "cache_params": {
            "type": "local", "redis_flush_size": 100, "default_in_redis_ttl": 60,
            "s3_use_ssl": True, "qdrant_quantization_config": "binary",
            "similarity_threshold": 0.8, "max_connections": 10}}))
    assert set(cfg.unsupported) == {f"litellm_settings.cache_params.{k}" for k in (
        "default_in_redis_ttl", "s3_use_ssl", "qdrant_quantization_config",
        "similarity_threshold", "max_connections")}
    # redis_flush_size: accepted by Cache itself (and warned about there)
    assert "s3_use_ssl" not in cfg.cache_params and cfg.cache_params["type"] == "local"


def test_ping_answers_litellms_fields_and_the_key_header_has_litellms_name(proxies):
    p = proxies.start()
    r = httpx.get(p.url + "/cache/ping", headers=master())
    body = r.json()
    assert r.status_code == 200
    assert body["status"] == "healthy" and body["cache_type"] == "local"
    assert body["ping_response"] is True and body["set_cache_response"] == "success"
    assert body["litellm_cache_params"] == {"type": "local"}
    assert body["backends"]["store"]["ok"] is True  # semcache's own, kept
    h = chat(p, "ping header question").headers
    assert h["x-litellm-cache-key"] == h["x-semcache-key"] != ""


def _serve(tmp_path, fake, cache_params: str, master_line: str, env_extra=None):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        model_list:
          - model_name: chat
            litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake.base_url}"}}
        litellm_settings:
          cache: true
        {cache_params}
        {master_line}
        """))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in REDIS_ENV}
    env.update(PYTHONPATH=os.getcwd(), **(env_extra or {}))
    proc = subprocess.Popen([sys.executable, "-m", "semcache.proxy", "--config", str(cfg),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{port}"


def test_serve_starts_with_litellm_extras_and_prints_one_startup_line(tmp_path, fake):
    proc, url = _serve(tmp_path, fake, "  cache_params: {redis_flush_size: 100, "
                       "default_in_redis_ttl: 60, s3_use_ssl: true}", "")
    try:
        wait_healthy(url, proc)
        c = openai_client(url + "/v1", "anything")
        r = c.chat.completions.with_raw_response.create(model="chat", messages=ask("hi"))
        assert r.headers["x-semcache-stage"] == "miss"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "cache_params.s3_use_ssl" in err and "cache_params.default_in_redis_ttl" in err
    lines = [ln for ln in err.splitlines() if ln.startswith("semcache serve on ")]
    assert len(lines) == 1, err
    assert url in lines[0] and "cache local (memory)" in lines[0]
    assert "0 client keys" in lines[0] and "WARNING: open proxy" in lines[0]


def test_serve_with_a_master_key_is_not_called_open(tmp_path, fake):
    proc, url = _serve(tmp_path, fake, "", f"general_settings: {{master_key: {MASTER}}}")
    try:
        wait_healthy(url, proc)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    line = next(ln for ln in err.splitlines() if ln.startswith("semcache serve on "))
    assert "master key set" in line and "open proxy" not in line


def test_a_real_typo_in_cache_params_still_stops_the_proxy(tmp_path, fake):
    proc, _ = _serve(tmp_path, fake, "  cache_params: {redis_flsh_size: 100}", "")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "redis_flsh_size" in err and "did you mean 'redis_flush_size'" in err
