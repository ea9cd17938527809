"""Writer processes for tests/test_reliability.py's many-writers-on-the-same-keys test.

A writer opens a real ``Cache`` (from a JSON spec: the type and its parameters), says
``ready``, and on ``go`` writes ``ROUNDS`` rounds over every shared key (its own
shuffled order), reading each key back after its write. Then it says ``done`` with what
it wrote and any anomaly it saw, and obeys ``write KEY SEQ`` lines one at a time
(``ok`` after each), the ordered phase, until ``quit``. Nothing sleeps: the parent
orders the phases by these lines.

Run as ``python -m tests.writers_support SPEC WRITER KEYS ROUNDS`` from the repository
root.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from typing import Any

import numpy as np

from semcache.embedders.base import Embedder

#: characters of each value's body: large enough that a write done in parts is seen
#: half done (diskcache and Redis both store it as one value below 32 KB)
BODY = 20_000


class Hashing(Embedder):
    """A deterministic embedder: the test is about the exact store, not the model."""

    model_id = "hashing-writers"
    dim = 16

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
            .standard_normal(16) for t in texts]).astype(np.float32)


def open_cache(spec: dict[str, Any]) -> Any:
    from semcache import Cache

    params = dict(spec)
    if params["type"] == "faiss-semantic":
        params["embedder"] = Hashing()
    return Cache(**params)


def request(key: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": f"shared key {key}"}]}


def value(writer: int, key: int, seq: int) -> dict[str, Any]:
    """Writer ``writer``'s ``seq``-th value for ``key``: a body only it writes, and a
    digest of all of it, so a torn or mixed value cannot pass for a whole one."""
    rng = random.Random(f"{writer}/{key}/{seq}")
    body = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=BODY))
    return {"writer": writer, "key": key, "seq": seq, "body": body,
            "digest": _digest(writer, key, seq, body)}


def _digest(writer: Any, key: Any, seq: Any, body: Any) -> str:
    return hashlib.sha256(json.dumps([writer, key, seq, body]).encode()).hexdigest()


def problem(got: Any, key: int) -> str | None:
    """What is wrong with ``got`` as the value of ``key``: None when it is a whole
    value written for this key."""
    if not isinstance(got, dict) or set(got) != {"writer", "key", "seq", "body", "digest"}:
        return f"not a value: {str(got)[:80]!r}"
    if got["digest"] != _digest(got["writer"], got["key"], got["seq"], got["body"]):
        return f"torn: {got['writer']}/{got['key']}/{got['seq']}"
    if got["key"] != key:
        return f"key {key} holds the value of key {got['key']}"
    return None


def write_rounds(cache: Any, writer: int, keys: int, rounds: int) -> dict[str, Any]:
    """Writer ``writer``'s rounds over keys 0..keys-1 (its own shuffled order each
    round), each write read back: what it wrote (``[key, seq]``) and what it saw wrong."""
    rng = random.Random(writer)
    written: list[list[int]] = []
    anomalies: list[str] = []
    seq = 0
    for _ in range(rounds):
        order = list(range(keys))
        rng.shuffle(order)
        for k in order:
            cache.add_cache(value(writer, k, seq), **request(k))
            written.append([k, seq])
            got = cache.get_cache(**request(k))
            bad = problem(got, k)
            if bad is not None:
                anomalies.append(bad)
            elif got["writer"] == writer and got["seq"] < seq:
                # another writer's value may be newer than ours; our own older one may
                # not: that write was acknowledged before this one began
                anomalies.append(f"key {k}: read own seq {got['seq']} after writing {seq}")
            seq += 1
    return {"written": written, "anomalies": anomalies}


def last_writes(reports: dict[int, dict[str, Any]]) -> dict[tuple[int, int], int]:
    """(writer, key) -> the seq of that writer's last write to that key."""
    last: dict[tuple[int, int], int] = {}
    for w, rep in reports.items():
        for k, seq in rep["written"]:
            last[w, k] = max(seq, last.get((w, k), -1))
    return last


def main(argv: list[str]) -> int:
    spec, writer, keys, rounds = json.loads(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    cache = open_cache(spec)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    report = write_rounds(cache, writer, keys, rounds)
    print("done " + json.dumps({**report, "errors": cache.stats()["errors_total"]}),
          flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[:1] == ["write"]:
            cache.add_cache(value(writer, int(cmd[1]), int(cmd[2])), **request(int(cmd[1])))
            print("ok", flush=True)
        elif cmd[:1] == ["quit"]:
            break
    cache.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
