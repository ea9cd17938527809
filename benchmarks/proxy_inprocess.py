"""The proxy's own work per exact hit, in process: no sockets, no HTTP parser, no client.

Calls the ASGI app directly 3,000 times per round with one stored chat answer, and
compares the app as served (model endpoints dispatched directly, semcache/proxy/asgi.py)
with the same app routed through Starlette's generic stack, interleaved in one process so
that machine load hits both alike. Reports the best round of each and the median ratio.

    python benchmarks/proxy_inprocess.py [--rounds 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from semcache.proxy.app import create_app
from semcache.proxy.config import parse_config

MESSAGES = [{"role": "user", "content": "hello there"}]
VALUE = {"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def make_app(cache_type: str, cache=None):
    params = {"type": cache_type}
    if cache_type == "faiss-semantic":
        params.update(similarity_threshold=0.7, verifier=None)
    cfg = parse_config({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "gpt-4o-mini", "api_base": "http://127.0.0.1:9/v1"}}],
        "litellm_settings": {"cache": True, "cache_params": params},
        "general_settings": {"master_key": "sk-m"}})
    return create_app(cfg, cache=cache)


async def per_request_us(app, body: bytes, n: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
             "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 4000),
             "headers": [(b"authorization", b"Bearer sk-m"),
                         (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())]}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    t = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = (time.perf_counter() - t) / n * 1e6
    start = sent[-2]
    stage = dict(start["headers"]).get(b"x-semcache-stage")
    if start["status"] != 200 or stage != b"exact":
        raise SystemExit(f"not an exact hit: {start['status']} {stage}")
    return elapsed


async def main_async(args) -> dict:
    direct = make_app(args.cache_type)
    cache = direct.state.proxy.cache
    routed = make_app(args.cache_type, cache=cache)
    routed._fast = {}  # the same app, every request through Starlette's router
    cache.add_cache(VALUE, model="chat", messages=MESSAGES,
                    cache={"namespace": direct.state.proxy.default_ns})
    import orjson

    body = orjson.dumps({"model": "chat", "messages": MESSAGES})
    await per_request_us(direct, body, 300)  # warm both
    await per_request_us(routed, body, 300)
    d, r = [], []
    for _ in range(args.rounds):
        d.append(await per_request_us(direct, body, args.n))
        r.append(await per_request_us(routed, body, args.n))
    out = {"command": "python benchmarks/proxy_inprocess.py " + " ".join(sys.argv[1:]),
           "cache_type": args.cache_type, "requests_per_round": args.n, "rounds": args.rounds,
           "loadavg": os.getloadavg(),
           "direct_best_us": min(d), "routed_best_us": min(r),
           "direct_over_routed_median": statistics.median(a / b for a, b in zip(d, r))}
    print(f"exact hit, app's own work: direct {out['direct_best_us']:.1f} us, routed "
          f"{out['routed_best_us']:.1f} us (median ratio "
          f"{out['direct_over_routed_median']:.3f}); load {out['loadavg']}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--cache-type", default="local")
    p.add_argument("--json")
    args = p.parse_args()
    out = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
