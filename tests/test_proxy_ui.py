"""The dashboard in a real browser: headless Chromium against a running proxy.

Needs Debian's ``chromium`` (``scripts/install_chromium.sh``); without it the test fails.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import httpx
import pytest

from semcache import Cache
from semcache.embedders.batching import BatchingEmbedder
from semcache_testing.fake_openai import FakeOpenAI

from .proxy_helpers import MASTER, Proxies, ask, openai_client

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--virtual-time-budget=8000"]


@pytest.fixture
def chromium(tmp_path):
    exe = shutil.which("chromium")
    assert exe, "chromium is not installed: run scripts/install_chromium.sh"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        profile = tmp_path / "profile"
        return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=True)
    return run


def text_of(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, f"#{element_id} not in the rendered page"
    return html.unescape(m.group(1))


def test_dashboard_renders_live_stats_in_a_browser(chromium, tmp_path, minilm):
    cache = Cache(type="faiss-semantic", embedder=BatchingEmbedder(minilm),
                  similarity_threshold=0.8)
    with FakeOpenAI() as fake:
        proxies = Proxies(fake.base_url)
        try:
            proxy = proxies.start(cache=cache)
            c = openai_client(proxy.base_url, MASTER)
            for q in ["How tall is Mount Everest?", "What is the height of Mount Everest?",
                      "How tall is Mount Everest?", "Who wrote Hamlet?"]:
                c.chat.completions.create(model="chat", messages=ask(q))

            # without the key the page renders but shows no data
            dom = chromium("--dump-dom", proxy.url + "/ui").stdout
            assert text_of(dom, "status") == "enter the master key"
            assert text_of(dom, "kpi-requests") == "–"
            assert "Mount Everest" not in dom

            # with the master key (URL fragment: never sent to the server) it polls stats
            url = f"{proxy.url}/ui#key={MASTER}"
            dom = chromium("--dump-dom", url).stdout
            assert text_of(dom, "kpi-requests") == "4"
            assert text_of(dom, "kpi-hit-rate") == "50.0%"
            assert (text_of(dom, "kpi-exact"), text_of(dom, "kpi-semantic"),
                    text_of(dom, "kpi-miss")) == ("1", "1", "2")
            assert text_of(dom, "threshold") == "0.80"
            assert text_of(dom, "status").startswith("updated ")
            rows = re.findall(r'<tr class="hit">(.*?)</tr>', dom)
            assert len(rows) == 2
            cells = [html.unescape(x) for x in re.findall(r"<td[^>]*>([^<]*)</td>", rows[1])]
            assert cells[1] == "semantic" and cells[5] == "What is the height of Mount Everest?"
            assert cells[6] == "How tall is Mount Everest?" and float(cells[2]) >= 0.8
            assert 'id="flush"' in dom

            # a wrong key: the page says so and shows nothing
            dom = chromium("--dump-dom", f"{proxy.url}/ui#key=sk-wrong").stdout
            assert text_of(dom, "status") == "wrong key" and "Everest" not in dom

            shot = tmp_path / "dashboard.png"
            chromium("--window-size=1280,1100", f"--screenshot={shot}", url)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
            # the page itself is static and public; its data endpoint is not
            assert httpx.get(proxy.url + "/cache/stats").status_code == 401
        finally:
            proxies.stop()
            cache.close()
