"""``semcache serve --workers 2`` on faiss-semantic with a folder (issue #26): an answer
stored through worker A is a paraphrase (semantic) hit in worker B.

Which worker holds a connection is the kernel's choice, so the test finds out: its
counters (``/metrics``) are per process. One keep-alive connection stores the answer
and sees its own miss counted; fresh connections are opened until one reaches a worker
whose counters show no miss, i.e. the other process, and the paraphrase is asked there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from semcache_testing.fake_openai import FakeOpenAI
from semcache_testing.proxy_server import free_port

from .test_proxy_cli import wait_healthy

KEY = "sk-workers"
HEADERS = {"authorization": f"Bearer {KEY}"}


def chat(client: httpx.Client, text: str) -> httpx.Response:
    r = client.post("/v1/chat/completions", headers=HEADERS, json={
        "model": "chat", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200, r.text
    return r


def misses(client: httpx.Client) -> float:
    """Misses counted by the worker that holds this connection."""
    r = client.get("/metrics", headers=HEADERS)
    assert r.status_code == 200, r.text
    return sum(float(line.rsplit(" ", 1)[1]) for line in r.text.splitlines()
               if line.startswith("semcache_proxy_requests_total{") and 'stage="miss"' in line)


@pytest.mark.skipif(sys.platform == "win32", reason="uvicorn workers share the socket")
def test_two_workers_share_one_faiss_folder(tmp_path):
    with FakeOpenAI() as fake:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(textwrap.dedent(f"""\
            model_list:
              - model_name: chat
                litellm_params: {{model: openai/gpt-4o-mini, api_base: "{fake.base_url}",
                                  api_key: sk-up}}
            litellm_settings:
              cache: true
              cache_params: {{type: faiss-semantic, similarity_threshold: 0.85,
                              disk_cache_dir: "{tmp_path / 'cache'}"}}
            general_settings: {{master_key: {KEY}}}
            """))
        port = free_port()
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "semcache.proxy", "--config", str(cfg), "--port",
             str(port), "--workers", "2"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            with httpx.Client(base_url=url, timeout=60) as a:  # one connection: worker A
                first = chat(a, "How do I reset my password?")
                assert first.headers["x-semcache-stage"] == "miss"
                assert misses(a) == 1
                deadline = time.monotonic() + 60
                for _ in range(200):  # bounded: each try is one new connection
                    assert time.monotonic() < deadline, "never reached the second worker"
                    with httpx.Client(base_url=url, timeout=60) as b:
                        if misses(b) != 0:
                            continue  # worker A again
                        second = chat(b, "How can I reset my password?")
                        assert misses(b) == 0  # still worker B: it served, not stored
                        break
                else:
                    raise AssertionError("no connection reached the second worker")
            assert second.headers["x-semcache-stage"] == "semantic", second.headers
            assert second.json()["choices"][0]["message"]["content"] == \
                first.json()["choices"][0]["message"]["content"]
            assert fake.calls["chat/completions"] == 1
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err[-3000:]
