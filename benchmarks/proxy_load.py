"""Load benchmark of the caching proxy: exact hits, semantic hits and misses.

Runs everything on loopback: FakeOpenAI (fixed delay) and ``semcache serve`` as
subprocesses, this process as the asyncio httpx client. For each concurrency level it
reports requests/s and p50/p99 latency per kind, bounded by ``--requests`` per phase and
``--seconds`` per phase, plus two references measured in this process on an identical
cache: a direct library lookup (``Cache.abegin``) for the same hits, and the rate at which
the embedder can embed one query at a time (the ceiling of un-batched semantic lookups).

    python benchmarks/proxy_load.py                      # 1, 32, 200; 50 ms upstream
    python benchmarks/proxy_load.py --concurrency 32 --seconds 5 --json out.json

Every semantic-hit request is a distinct text (so the embedder's LRU cannot answer it);
every miss has a distinct ``seed`` (its own context key), so it is embedded, searched,
forwarded and stored like any miss but cannot match an earlier one. The proxy and the
in-process references run the embedding model with one intra-op thread (the proxy's
default, see ``semcache serve --embedding-threads``). The stage header of each reply
is counted, so the report shows what each phase really measured.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads, here and in children
os.environ.setdefault("SEMCACHE_ONNX_THREADS", os.environ["OMP_NUM_THREADS"])  # and ONNX
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._loadgen import TRIVIAL_SERVER, RawConn
from semcache_testing.proxy_server import free_port

MASTER = "sk-bench"
TOPICS = [
    "How tall is Mount Everest", "What is the capital of Australia",
    "Who wrote Pride and Prejudice", "How do I reverse a list in Python", "What causes the seasons on Earth",
    "How many bones are in the human body", "What is the boiling point of water at sea level",
    "Who painted the Sistine Chapel ceiling", "How does a refrigerator work",
    "What is the speed of light", "How do vaccines train the immune system",
    "What is the largest ocean on Earth", "Who discovered penicillin",
    "How do I make a sourdough starter", "What is the population of Japan",
    "Why is the sky blue",
]
PARAPHRASE = ["Tell me: {t}?", "{t}, please?", "Quick question: {t}?", "I wonder, {t}?",
              "{t}? Thanks!", "Could you tell me {t}?", "{t} (asking for a friend)?"]
WORDS = ["amber", "basalt", "cobalt", "dune", "ember", "fjord", "glacier", "harbor", "iris", "juniper", "kelp", "lagoon", "mesa", "nectar", "obsidian", "prairie", "quartz", "reef", "sierra", "tundra", "umber", "valley", "willow", "xenon", "yarrow", "zephyr", "anvil", "bracket", "cipher", "dynamo", "ledger", "gasket", "hinge", "lathe", "piston", "rivet", "sprocket", "turbine", "valve", "widget", "pylon"]

# FakeOpenAI as a subprocess, with two socket settings a real upstream has: a listen
# backlog for 200 concurrent connections (socketserver's default is 5), and Nagle off
# (its headers and body go out in separate writes, so on a keep-alive connection each
# answer waited for the client's delayed ACK: measured 44 ms per request at delay 0).
FAKE_SRC = ("import http.server as h; h.ThreadingHTTPServer.request_queue_size = 1024; "
            "import semcache_testing.fake_openai as f; "
            "f._Handler.disable_nagle_algorithm = True; f.main()")


def spawn(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a server process (before any load is generated, so blocking is harmless)."""
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited early: {proc.communicate()[1][-2000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in {timeout} s")


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


async def phase(clients: list, bodies, concurrency: int,
                max_requests: int, seconds: float) -> dict:
    """Send bodies (an iterator) with ``concurrency`` workers until either bound.

    Each worker has its own connection: a ``RawConn`` (benchmarks/_loadgen.py, the
    default) or, with ``--client httpx``, its own httpx client with one connection (one
    shared httpx pool of many connections costs the client more per request as it
    grows: 455 req/s at 1 connection, 143 at 32 on ``/health``).
    """
    lat: list[float] = []
    stages: dict[str, int] = {}
    errors = 0
    deadline = time.perf_counter() + seconds
    it = iter(bodies)
    sent = 0

    async def worker(http):
        nonlocal sent, errors
        raw = isinstance(http, RawConn)
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            body = next(it)
            t = time.perf_counter()
            if raw:
                status, headers, _ = await http.request("POST", "/v1/chat/completions", body)
                st = headers.get(b"x-semcache-stage", b"?").decode()
            else:
                r = await http.post("/v1/chat/completions", content=body)
                status, st = r.status_code, r.headers.get("x-semcache-stage", "?")
            lat.append(time.perf_counter() - t)
            if status != 200:
                errors += 1
            stages[st] = stages.get(st, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(clients[i]) for i in range(concurrency)))
    wall = time.perf_counter() - t0
    ms = [x * 1000 for x in lat]
    return {"requests": len(lat), "rps": len(lat) / wall if wall else 0.0,
            "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "errors": errors,
            "stages": stages}


async def generator_ceiling(args, headers: dict[str, str]) -> dict[str, float]:
    """The load client's own ceiling: requests/s against a fixed-answer server (no
    proxy) at each concurrency, with the exact phase's bodies, in this run."""
    port = free_port()
    server = spawn([sys.executable, "-c", TRIVIAL_SERVER, str(port)], dict(os.environ))
    try:
        for _ in range(200):
            try:
                conns = [await RawConn.open("127.0.0.1", port, headers)
                         for _ in range(max(args.concurrency))]
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise SystemExit("the trivial server did not start")
        out = {}
        for c in args.concurrency:
            res = await phase(conns, exact_bodies(), c, args.requests, args.seconds)
            out[f"c{c}_rps"] = res["rps"]
            print(f"load client ceiling (fixed-answer server), concurrency {c:>3}: "
                  f"{res['rps']:>8.0f} req/s", flush=True)
        await asyncio.gather(*(c.aclose() for c in conns))
        return out
    finally:
        server.terminate()
        server.wait(timeout=20)


def body(q: str) -> bytes:
    import orjson

    return orjson.dumps({"model": "chat", "messages": [{"role": "user", "content": q}]})


def exact_bodies():
    while True:
        for t in TOPICS:
            yield body(t + "?")


def semantic_bodies(rng: random.Random):
    n = 0
    while True:
        n += 1
        t = rng.choice(TOPICS)
        # distinct text every time (the embedder's LRU cannot answer), same meaning
        yield body(rng.choice(PARAPHRASE).format(t=t.lower()) + f" [{n}]")


_SEEDS = itertools.count(1)


def miss_bodies(rng: random.Random):
    # a distinct seed is a distinct context: a miss by construction, whatever the text
    # (word salads would match each other semantically once stored)
    import orjson

    while True:
        n = next(_SEEDS)  # one counter for every phase: no seed is ever reused
        yield orjson.dumps({"model": "chat", "seed": n, "messages": [
            {"role": "user", "content": " ".join(rng.sample(WORDS, 7))}]})


async def library_reference(args) -> dict:
    """p50 of a direct library lookup on an identical cache, and one-at-a-time embedding."""
    from semcache import Cache
    from semcache._registry import get_embedder

    emb = get_embedder(None)
    # the in-process reference is this checkout's library: "unset" (an older proxy
    # without verifiers) compares with the cosine alone
    cache = Cache(type="faiss-semantic", embedder=emb, similarity_threshold=args.threshold,
                  verifier="none" if args.verifier == "unset" else args.verifier)
    for t in TOPICS:
        cache.add_cache({"choices": [{"message": {"role": "assistant", "content": "x"}}]},
                        model="chat", messages=[{"role": "user", "content": t + "?"}],
                        cache={"namespace": "default"})
    rng = random.Random(7)
    out = {}
    for kind, gen in (("exact", exact_bodies()), ("semantic", semantic_bodies(rng))):
        times = []
        for _ in range(200 if kind == "exact" else 50):
            import orjson

            kw = orjson.loads(next(gen))
            kw["cache"] = {"namespace": "default"}
            t = time.perf_counter()
            o = await cache.abegin("acompletion", **kw)
            times.append((time.perf_counter() - t) * 1000)
            assert o.hit, (kind, kw)
        out[f"library_{kind}_p50_ms"] = statistics.median(times)
    texts = [f"single query embedding number {i} {rng.random()}" for i in range(40)]
    t = time.perf_counter()
    for x in texts:
        emb.embed([x])
    out["embed_one_at_a_time_per_s"] = len(texts) / (time.perf_counter() - t)
    cache.close()
    return out


async def run(args) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fake_port, proxy_port = free_port(), free_port()
    fake = spawn([sys.executable, "-c", FAKE_SRC, "--port", str(fake_port),
                  "--delay-ms", str(args.delay_ms)], env)
    tmp = tempfile.mkdtemp(prefix="semcache-bench-")
    cfg = Path(tmp) / "config.yaml"
    cfg.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "gpt-4o-mini", "api_base": f"http://127.0.0.1:{fake_port}/v1"}}],
        "litellm_settings": {"cache": True, "cache_params": (
            {"type": "faiss-semantic", "similarity_threshold": args.threshold,
             **({} if args.verifier == "unset" else {"verifier": args.verifier})}
            if args.cache_type == "faiss-semantic" else {"type": args.cache_type})},
        "general_settings": {"master_key": MASTER},
        "semcache_settings": {"max_connections": 256,
                              "embedding_batching": not args.no_batching},
    }))
    # --proxy-root: the proxy runs another checkout's code (a before/after comparison
    # with everything else, load client included, the same)
    proxy_env = {**env, "PYTHONPATH": str(args.proxy_root or ROOT)}
    proxy = spawn([sys.executable, "-m", "semcache.proxy", "--config", str(cfg),
                   "--port", str(proxy_port), "--workers", str(args.workers)], proxy_env)
    report: dict = {"config": vars(args), "cpus": os.cpu_count(),
                    "loadavg_start": os.getloadavg()}
    try:
        wait_http(f"http://127.0.0.1:{fake_port}/v1/models", fake)
        base = f"http://127.0.0.1:{proxy_port}"
        wait_http(base + "/health", proxy)
        headers = {"Authorization": f"Bearer {MASTER}", "content-type": "application/json"}
        http = httpx.AsyncClient(base_url=base, timeout=120, headers=headers)
        clients: list = [http]  # the phases' connections, one per worker
        if args.client == "raw":
            report["generator_ceiling"] = await generator_ceiling(args, headers)
            clients = [await RawConn.open("127.0.0.1", proxy_port, headers)
                       for _ in range(max(args.concurrency))]
        else:
            clients += [httpx.AsyncClient(base_url=base, timeout=120, headers=headers,
                                          limits=httpx.Limits(max_connections=1))
                        for _ in range(max(args.concurrency) - 1)]
        try:
            # warm: store the topics (and load the model in the proxy)
            for t in TOPICS:
                r = await http.post("/v1/chat/completions", content=body(t + "?"))
                r.raise_for_status()
            # the HTTP floor: the same client and server answering /health (no cache)
            floor = []
            for _ in range(300):
                t = time.perf_counter()
                (await http.get("/health")).raise_for_status()
                floor.append((time.perf_counter() - t) * 1000)
            report["health_p50_ms"] = statistics.median(floor)
            print(f"HTTP floor: GET /health p50 {report['health_p50_ms']:.2f} ms", flush=True)
            rng = random.Random(1)
            for c in args.concurrency:
                kinds = [("exact", exact_bodies()), ("semantic", semantic_bodies(rng)),
                         ("miss", miss_bodies(rng))]
                for kind, gen in kinds:
                    if kind == "semantic" and args.cache_type != "faiss-semantic":
                        continue
                    res = await phase(clients, gen, c, args.requests, args.seconds)
                    report[f"c{c}_{kind}"] = res
                    print(f"concurrency {c:>3} {kind:<8} {res['rps']:>8.0f} req/s  "
                          f"p50 {res['p50_ms']:>8.2f} ms  p99 {res['p99_ms']:>8.2f} ms  "
                          f"n={res['requests']} errors={res['errors']} stages={res['stages']}",
                          flush=True)
            r = await http.get("/cache/stats")
            report["proxy_stats"] = {k: r.json()[k] for k in ("requests", "by_stage",
                                                               "latency_ms")}
        finally:
            await asyncio.gather(*(c.aclose() for c in {id(c): c for c in
                                                         [http, *clients]}.values()))
    finally:
        for p in (proxy, fake):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    if args.cache_type != "faiss-semantic":
        return report
    ref = await library_reference(args)
    report.update(ref)
    report["loadavg_end"] = os.getloadavg()
    print(f"library lookup p50 (same cache, in process): exact "
          f"{ref['library_exact_p50_ms']:.3f} ms, semantic {ref['library_semantic_p50_ms']:.3f} ms")
    print(f"embedding one query at a time: {ref['embed_one_at_a_time_per_s']:.0f} queries/s")
    if "c1_exact" in report:
        print(f"proxy overhead at concurrency 1 (p50): exact "
              f"{report['c1_exact']['p50_ms'] - ref['library_exact_p50_ms']:.3f} ms, semantic "
              f"{report['c1_semantic']['p50_ms'] - ref['library_semantic_p50_ms']:.3f} ms")
    print(f"load average start/end: {report['loadavg_start']} / {report['loadavg_end']}")
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 32, 200])
    p.add_argument("--requests", type=int, default=3000, help="max requests per phase")
    p.add_argument("--seconds", type=float, default=8.0, help="max seconds per phase")
    p.add_argument("--delay-ms", type=float, default=50.0, help="upstream delay")
    p.add_argument("--threshold", type=float, default=0.7,
                   help="the paraphrases scored >= 0.778 against their topic (300 samples)")
    # the semantic phase's paraphrases carry a prefix and a counter, which the structural
    # verifier may refuse (a miss then costs the upstream's delay): "none" measures the
    # serving path alone, as before the verifier existed; "structural" the default cache
    p.add_argument("--verifier", default="none", choices=["none", "structural", "unset"],
                   help="unset: leave the key out (a --proxy-root from before verifiers)")
    p.add_argument("--proxy-root", help="run the proxy from this checkout (before/after)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--cache-type", default="faiss-semantic",
                   help="faiss-semantic (default) or an exact-only type such as local: "
                        "isolates the server from the embedder")
    p.add_argument("--no-batching", action="store_true",
                   help="embed each request on its own (for comparison)")
    p.add_argument("--client", default="raw", choices=["raw", "httpx"],
                   help="load client: raw (benchmarks/_loadgen.py; its ceiling is measured "
                        "first) or httpx (as runs before December 2026)")
    p.add_argument("--json", help="write the report here")
    args = p.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        report = asyncio.run(run(args))
    else:
        report = uvloop.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
