"""100 concurrent identical misses: upstream calls and the waiters' added latency (#22).

One popular question arrives 100 times at once, before any answer is stored. With
single-flight the first request calls upstream and the other 99 wait for its answer,
then read it back as exact hits. Measured three ways, against FakeOpenAI on loopback
answering after ``--delay-ms`` (an LLM's latency):

- library, asyncio: ``asyncio.gather`` of 100 ``semcache.acompletion`` calls;
- library, threads: 100 threads calling ``semcache.completion``, released by a barrier;
- proxy: 100 concurrent ``POST /v1/chat/completions`` to the proxy app (in process,
  served by uvicorn on loopback), ``cache: true`` (LiteLLM's default: in-memory exact);
- two proxies sharing one Redis (``type: redis``), each its own app and ``Cache``, the
  burst split between them: only the Redis lock coalesces across the two.

Each also runs with ``cache: {"no-cache": true}`` (no lookup, so no coalescing: every
request calls upstream, which is what happened before single-flight). The waiters'
added latency is their end-to-end time minus the leader's (negative: the leader still
does its bookkeeping after it has released them). A warm-up call with another question
comes first, so the leader does not also pay the client's cold start.

    python benchmarks/single_flight.py --json benchmarks/results/single_flight.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import semcache  # noqa: E402
from semcache import Cache  # noqa: E402
from semcache.proxy.app import create_app  # noqa: E402
from semcache.proxy.config import parse_config  # noqa: E402
from semcache_testing.fake_openai import FakeOpenAI  # noqa: E402
from semcache_testing.proxy_server import ProxyServer  # noqa: E402

MASTER = "sk-bench"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(rows: list[tuple[float, bool]], calls: int) -> dict[str, Any]:
    """rows: (seconds, served from cache) per request."""
    leaders = [s * 1000 for s, hit in rows if not hit]
    waiters = [s * 1000 for s, hit in rows if hit]
    out: dict[str, Any] = {"requests": len(rows), "upstream_calls": calls,
                           "leaders": len(leaders), "waiters": len(waiters)}
    if leaders:
        out["leader_ms"] = round(statistics.median(leaders), 1)
    if waiters:
        out["waiter_ms"] = {"p50": round(pct(waiters, 50), 1),
                            "p99": round(pct(waiters, 99), 1),
                            "max": round(max(waiters), 1)}
        if leaders:
            lead = statistics.median(leaders)
            out["waiter_added_ms"] = {k: round(v - lead, 1)
                                      for k, v in out["waiter_ms"].items()}
    else:
        out["all_ms"] = {"p50": round(pct(leaders, 50), 1), "max": round(max(leaders), 1)}
    return out


def library_async(fake: FakeOpenAI, n: int, q: str, extra: dict[str, Any]) -> dict[str, Any]:
    semcache.cache = Cache()
    fake.reset()
    kw = {"api_base": fake.base_url, "api_key": "sk", "max_retries": 0, **extra}

    async def one(text: str = q) -> tuple[float, bool]:
        t = time.perf_counter()
        r = await semcache.acompletion(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": text}], **kw)
        return time.perf_counter() - t, bool(r._hidden_params["cache_hit"])

    async def main() -> list[tuple[float, bool]]:
        # warm-up (another question): the first call imports and builds the client,
        # seconds of blocking work that would land on the leader only
        await one(q + " (warm-up)")
        fake.reset()
        return list(await asyncio.gather(*(one() for _ in range(n))))
    rows = asyncio.run(main())
    return summary(rows, fake.calls.get("chat/completions", 0))


def library_threads(fake: FakeOpenAI, n: int, q: str, extra: dict[str, Any]) -> dict[str, Any]:
    semcache.cache = Cache()
    fake.reset()
    kw = {"api_base": fake.base_url, "api_key": "sk", "max_retries": 0, **extra}
    start = threading.Barrier(n)

    def one(_: int, text: str = q, barrier: bool = True) -> tuple[float, bool]:
        if barrier:
            start.wait(timeout=60)
        t = time.perf_counter()
        r = semcache.completion(model="gpt-4o-mini",
                                messages=[{"role": "user", "content": text}], **kw)
        return time.perf_counter() - t, bool(r._hidden_params["cache_hit"])

    one(0, q + " (warm-up)", False)
    fake.reset()

    with ThreadPoolExecutor(n) as pool:
        rows = list(pool.map(one, range(n)))
    return summary(rows, fake.calls.get("chat/completions", 0))


def proxy(fake: FakeOpenAI, n: int, q: str, extra: dict[str, Any],
          redis_url: str | None = None, proxies: int = 1) -> dict[str, Any]:
    lite: dict[str, Any] = {"cache": True}
    if redis_url is not None:
        lite["cache_params"] = {"type": "redis", "redis_url": redis_url,
                                "namespace": f"bench-{time.time_ns()}"}
    cfg = parse_config({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "gpt-4o-mini", "api_base": fake.base_url}}],
        "litellm_settings": lite,
        "general_settings": {"master_key": MASTER},
        # FakeOpenAI's listen backlog is 5: the no-cache run's 100 upstream requests
        # queue in the proxy's pool instead of overflowing it
        "semcache_settings": {"max_connections": 16},
    }, environ={})
    # several proxies: each its own app and Cache, so only Redis is shared between them
    servers = [ProxyServer(create_app(cfg)).start() for _ in range(proxies)]
    body = {"model": "chat", "messages": [{"role": "user", "content": q}], **extra}
    try:
        async def main() -> list[tuple[float, bool]]:
            async with httpx.AsyncClient(timeout=120, headers={
                    "Authorization": f"Bearer {MASTER}"},
                    limits=httpx.Limits(max_connections=n)) as c:
                async def one(i: int = 0) -> tuple[float, bool]:
                    t = time.perf_counter()
                    r = await c.post(servers[i % len(servers)].url +
                                     "/v1/chat/completions", json=body)
                    r.raise_for_status()
                    return time.perf_counter() - t, r.headers["x-semcache-hit"] == "true"
                for server in servers:
                    warm = await c.post(server.url + "/v1/chat/completions",
                                        json={**body, "messages": [{"role": "user",
                                                                    "content": q + " warm"}]})
                    warm.raise_for_status()
                fake.reset()
                return list(await asyncio.gather(*(one(i) for i in range(n))))
        rows = asyncio.run(main())
    finally:
        for server in servers:
            server.stop()
    return summary(rows, fake.calls.get("chat/completions", 0))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=100, help="concurrent identical requests")
    p.add_argument("--delay-ms", type=float, default=500.0, help="upstream latency")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    report: dict[str, Any] = {"n": args.n, "upstream_delay_ms": args.delay_ms,
                              "cpus": os.cpu_count(), "runs": {}}
    with FakeOpenAI(delay_ms=args.delay_ms) as fake:
        for name, fn in (("library_asyncio", library_async),
                         ("library_threads", library_threads), ("proxy", proxy)):
            for mode, extra in (("single_flight", {}),
                                ("no_cache", {"cache": {"no-cache": True}})):
                q = f"{name} {mode}: what is the capital of France?"
                report["runs"][f"{name}/{mode}"] = fn(fake, args.n, q, extra)
                print(name, mode, json.dumps(report["runs"][f"{name}/{mode}"]),
                      flush=True)
        # two proxies (two machines or workers) sharing one Redis: the burst split
        # between them, coalesced by the Redis lock (SET NX PX) across the two
        from semcache_testing.servers import RedisStackServer

        with RedisStackServer() as redis_server:
            for mode, extra in (("single_flight", {}),
                                ("no_cache", {"cache": {"no-cache": True}})):
                q = f"two proxies {mode}: what is the capital of France?"
                key = f"proxy_x2_redis/{mode}"
                report["runs"][key] = proxy(fake, args.n, q, extra,
                                            redis_url=redis_server.url, proxies=2)
                print(key, json.dumps(report["runs"][key]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
