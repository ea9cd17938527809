"""Call-layer overhead against the fake upstream (no network beyond 127.0.0.1).

    python benchmarks/bench_calls.py [--n 200] [--delay-ms 200]

Prints a markdown table: the raw ``openai`` client, ``semcache.completion`` without a
cache, and with a cache (miss, exact hit, semantic hit, streamed hit), median and p95
per call in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import openai

import semcache
from semcache import Cache
from semcache_testing.fake_openai import FakeOpenAI


def _time(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--delay-ms", type=float, default=200.0,
                   help="upstream latency for the miss-vs-hit rows")
    a = p.parse_args()
    rows: list[tuple[str, float, float]] = []
    with FakeOpenAI() as fake:
        kw = {"api_base": fake.base_url, "api_key": "sk-bench"}
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-bench")

        def msg(i: int) -> list[dict[str, str]]:
            return [{"role": "user", "content": f"question number {i}"}]

        client.chat.completions.create(model="m", messages=msg(-1))  # warm up
        semcache.completion(model="m", messages=msg(-1), **kw)
        rows.append(("openai client, no semcache (upstream 0 ms)", *_time(
            lambda i: client.chat.completions.create(model="m", messages=msg(i)), a.n)))
        semcache.cache = None
        rows.append(("semcache.completion, no cache (upstream 0 ms)", *_time(
            lambda i: semcache.completion(model="m", messages=msg(i), **kw), a.n)))
        semcache.cache = Cache()
        rows.append(("local cache, miss + store (upstream 0 ms)", *_time(
            lambda i: semcache.completion(model="m", messages=msg(i), **kw), a.n)))
        rows.append(("local cache, exact hit", *_time(
            lambda i: semcache.completion(model="m", messages=msg(i), **kw), a.n)))
        list(semcache.completion(model="m", messages=msg(0), stream=True, **kw))  # store
        rows.append(("local cache, streamed exact hit (drained)", *_time(
            lambda i: list(semcache.completion(model="m", messages=msg(0), stream=True,
                                               **kw)), a.n)))
        fake.delay_ms = a.delay_ms
        m = max(5, a.n // 20)
        rows.append((f"local cache, miss (upstream {a.delay_ms:.0f} ms)", *_time(
            lambda i: semcache.completion(model="m", messages=msg(10_000 + i), **kw), m)))
        fake.delay_ms = 0
        semcache.cache = Cache(type="faiss-semantic", similarity_threshold=0.8)
        semcache.completion(model="m", messages=[{"role": "user", "content":
                                                  "What is the capital of France?"}], **kw)
        paraphrases = ["What's the capital city of France?", "Tell me France's capital.",
                       "Which city is the capital of France?"]
        rows.append(("faiss-semantic, exact hit", *_time(
            lambda i: semcache.completion(model="m", messages=[{
                "role": "user", "content": "What is the capital of France?"}], **kw), a.n)))
        rows.append(("faiss-semantic, semantic hit (embed + search)", *_time(
            lambda i: semcache.completion(model="m", messages=[{
                "role": "user", "content": paraphrases[i % 3] + " " * (i // 3 % 50)}],
                **kw), a.n)))
        client.close()
    print(f"n={a.n} calls per row (miss with upstream delay: {max(5, a.n // 20)})\n")
    print("| path | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, med, p95 in rows:
        print(f"| {name} | {med:.2f} | {p95:.2f} |")


if __name__ == "__main__":
    main()
