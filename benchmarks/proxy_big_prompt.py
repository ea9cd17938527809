"""One big prompt must not stall the other clients of the proxy (issue #18, item 5).

Runs FakeOpenAI and ``semcache serve`` (faiss-semantic, the ONNX default embedder) as
subprocesses, as ``proxy_load.py`` does, with the prompt limit raised so that 5 MB
prompts are accepted and go the whole way (embedded, forwarded, stored). While they are
in flight, one client probes ``GET /health`` and another asks an exact hit every 20 ms;
the report gives their latencies during the flight, the big requests' own times, and
the proxy's RSS before, after the big prompts and after ``/cache/flush``.

    python benchmarks/proxy_big_prompt.py --json benchmarks/results/proxy_big_prompt.json
    python benchmarks/proxy_big_prompt.py --root /path/to/older/checkout --old  # compare
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.proxy_load import FAKE_SRC, MASTER, percentile, spawn, wait_http  # noqa: E402
from semcache_testing.proxy_server import free_port  # noqa: E402

HEADERS = {"Authorization": f"Bearer {MASTER}", "content-type": "application/json"}


def chat(q: str, **extra: object) -> bytes:
    return orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": q}],
                         **extra})


def big_prompt(i: int, size: int) -> str:
    words = f"request {i}: the quick brown fox jumps over the lazy dog. "
    return (words * (size // len(words) + 1))[:size]


def stats(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else float("nan")}


async def run(args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(args.root)}
    fake_port, proxy_port = free_port(), free_port()
    fake = spawn([sys.executable, "-c", FAKE_SRC, "--port", str(fake_port),
                  "--delay-ms", str(args.delay_ms)], env)
    cfg = Path(tempfile.mkdtemp(prefix="semcache-big-")) / "config.yaml"
    own: dict = {"max_connections": 64}
    if not args.old:
        own.update(max_prompt_chars=2 * args.size, max_body_bytes=4 * args.size)
    cfg.write_text(json.dumps({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "gpt-4o-mini", "api_base": f"http://127.0.0.1:{fake_port}/v1"}}],
        "litellm_settings": {"cache": True, "cache_params": {"type": "faiss-semantic"}},
        "general_settings": {"master_key": MASTER},
        "semcache_settings": own}))
    # run from the root: ``python -m`` puts the working directory first on sys.path
    proxy = subprocess.Popen([sys.executable, "-m", "semcache.proxy", "--config", str(cfg),
                              "--port", str(proxy_port)], env=env, cwd=args.root,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    report: dict = {"config": {k: str(v) for k, v in vars(args).items()},
                    "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    try:
        wait_http(f"http://127.0.0.1:{fake_port}/v1/models", fake)
        base = f"http://127.0.0.1:{proxy_port}"
        wait_http(base + "/health", proxy)
        proc = psutil.Process(proxy.pid)
        mk = lambda: httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=600)  # noqa: E731
        big_http, health_http, hit_http = mk(), mk(), mk()
        try:
            for q in ("warm question one", "warm question two"):
                (await hit_http.post("/v1/chat/completions", content=chat(q))).raise_for_status()
            hit = chat("warm question one")
            r = await hit_http.post("/v1/chat/completions", content=hit)
            assert r.headers["x-semcache-stage"] == "exact", r.headers
            # quiet reference: the same probes with nothing else in flight
            quiet_h, quiet_x = [], []
            for _ in range(50):
                t = time.perf_counter()
                (await health_http.get("/health")).raise_for_status()
                quiet_h.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                (await hit_http.post("/v1/chat/completions", content=hit)).raise_for_status()
                quiet_x.append((time.perf_counter() - t) * 1000)
            report["quiet_health"], report["quiet_exact_hit"] = stats(quiet_h), stats(quiet_x)
            report["rss_before_mb"] = proc.memory_info().rss / 2**20
            bodies = [chat(big_prompt(i, args.size), max_tokens=16) for i in range(args.n)]
            done = asyncio.Event()
            big_ms: list[float] = []
            statuses: list[int] = []

            async def big() -> None:
                try:
                    for b in bodies:  # one after another: one is always in flight
                        t = time.perf_counter()
                        r = await big_http.post("/v1/chat/completions", content=b)
                        big_ms.append((time.perf_counter() - t) * 1000)
                        statuses.append(r.status_code)
                finally:
                    done.set()

            async def probe(send, out: list[float]) -> None:
                while not done.is_set():
                    t = time.perf_counter()
                    r = await send()
                    if not done.is_set():
                        out.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
                    await asyncio.sleep(0.02)

            health_ms: list[float] = []
            hit_ms: list[float] = []
            await asyncio.gather(
                big(),
                probe(lambda: health_http.get("/health"), health_ms),
                probe(lambda: hit_http.post("/v1/chat/completions", content=hit), hit_ms))
            report["big_prompt_chars"] = args.size
            report["big_requests"] = {"statuses": statuses, **stats(big_ms)}
            report["health_during"] = stats(health_ms)
            report["exact_hit_during"] = stats(hit_ms)
            report["rss_after_big_mb"] = proc.memory_info().rss / 2**20
            r = await health_http.post("/cache/flush")
            r.raise_for_status()
            report["rss_after_flush_mb"] = proc.memory_info().rss / 2**20
        finally:
            for c in (big_http, health_http, hit_http):
                await c.aclose()
    finally:
        for p in (proxy, fake):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    report["loadavg_end"] = os.getloadavg()
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=5_000_000, help="characters per big prompt")
    p.add_argument("--n", type=int, default=3, help="big prompts, sent one after another")
    p.add_argument("--delay-ms", type=float, default=50.0, help="upstream delay")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="source tree the proxy runs from (an older checkout to compare)")
    p.add_argument("--old", action="store_true",
                   help="the proxy predates the max_prompt_chars / max_body_bytes settings")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    report = asyncio.run(run(args))
    print(json.dumps({k: v for k, v in report.items() if k != "config"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
