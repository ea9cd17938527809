"""Worker and checker processes for tests/test_multiprocess_faiss.py (issue #26).

A writer stores entries through a real ``Cache(type="faiss-semantic", disk_cache_dir=...)``
and acknowledges each one (one line, ``<i>``) only after ``add_cache`` returned. It can be
told to stop at a point of our choosing and announce it (``paused``), so the test kills
it exactly there: in the middle of a log append, or in the middle of a compaction.
Nothing sleeps: a paused worker blocks in ``signal.pause()`` until its SIGKILL.

Run as ``python -m tests.multiprocess_support write|peer|check ...`` (spawned), or
called in a forked child with the cache its parent opened. ``in_child`` runs a function
in a forked child for the fork tests of other files.
"""

from __future__ import annotations

import faulthandler
import inspect
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

#: question i % 8 is stored; its paraphrase must find it (MiniLM cosine 0.94-0.996)
QUESTIONS = [
    ("How do I reset my password?", "How can I reset my password?"),
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I cancel my subscription?", "How can I cancel my subscription?"),
    ("What time does the store open on Sundays?", "When does the store open on Sunday?"),
    ("How do I change my email address?", "How can I change my email address?"),
    ("Where can I download the invoice for my order?",
     "Where do I download the invoice for my order?"),
    ("How long does shipping to Canada take?", "How long does it take to ship to Canada?"),
    ("Can I pay with a credit card?", "Is it possible to pay with a credit card?"),
]
THRESHOLD = 0.85


def fork_child(child: Callable[[], None]) -> int:
    """Fork; the child runs ``child()`` and exits 0, or prints its traceback and exits
    1, and never returns into pytest. The parent gets the child's pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def in_child(body: Callable[[], str], watchdog_s: float = 60.0) -> str:
    """Run ``body()`` in a forked child; what it returns (a short string) comes back. A
    child still running after ``watchdog_s`` dumps its stacks and exits non-zero, so a
    hang (a lock or a thread pool the child inherited) fails the test instead of CI."""
    r, w = os.pipe()

    def child() -> None:
        faulthandler.dump_traceback_later(watchdog_s, exit=True)
        os.close(r)
        os.write(w, body().encode())

    pid = fork_child(child)
    os.close(w)
    with os.fdopen(r) as f:
        said = f.read()
    assert os.waitpid(pid, 0)[1] == 0, "the forked child failed or hung"
    return said


def request(name: str, i: int, paraphrase: bool = False) -> dict[str, Any]:
    """Entry ``i`` of writer ``name``: a model of its own, so its context holds this one
    entry and a paraphrase lookup finds it exactly when the index has it."""
    text = QUESTIONS[i % len(QUESTIONS)][int(paraphrase)]
    return {"model": f"{name}-{i}", "messages": [{"role": "user", "content": text}]}


def answer(name: str, i: int) -> dict[str, str]:
    return {"answer": f"{name}/{i}"}


def open_cache(folder: str) -> Any:
    from semcache import Cache
    from semcache._registry import get_embedder

    # these tests are about the folder, not about which paraphrases a verifier admits:
    # the static threshold alone decides (where this version of Cache has verifiers)
    extra = {"verifier": None} if "verifier" in inspect.signature(Cache).parameters else {}
    return Cache(type="faiss-semantic", disk_cache_dir=folder,
                 embedder=get_embedder("all-MiniLM-L6-v2"), similarity_threshold=THRESHOLD,
                 **extra)


def _pause(say: Callable[[str], None]) -> None:
    say("paused")
    while True:  # until the test's SIGKILL
        signal.pause()


def _arm(cache: Any, pause_at: str, say: Callable[[str], None]) -> None:
    """Make the next log append or compaction stop half-way (the code under test runs
    unchanged up to that point; only the pause is added)."""
    from semcache.indexes import _faiss_log

    disk = cache.index._disk
    if pause_at == "append":  # half a record on disk, as a kill mid-write leaves it
        def torn(records: list[dict[str, Any]]) -> None:
            import orjson

            data = b"".join(orjson.dumps(r) + b"\n" for r in records)
            with open(disk.path / "log.jsonl", "ab") as f:
                f.write(data[: len(data) // 2])
            _pause(say)
        disk.append = torn
    elif pause_at == "snapshot-written":  # new snapshot in place, old log not yet reset
        real_write = _faiss_log._atomic_write

        def write(path: Any, data: bytes) -> None:
            if path.name == "log.jsonl":
                _pause(say)
            real_write(path, data)
        _faiss_log._atomic_write = write  # type: ignore[assignment]
    elif pause_at == "snapshot-tmp":  # new snapshot written beside, not renamed yet
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if str(dst).endswith("snapshot.npz"):
                _pause(say)
            real_replace(src, dst)
        _faiss_log.os.replace = replace  # type: ignore[assignment]


def write(cache: Any, name: str, start: int, count: int, pause_after: int | None,
          pause_at: str, say: Callable[[str], None]) -> None:
    """Store entries start..start+count-1, acknowledging each; after ``pause_after``
    acknowledgements, stop half-way through the next append or a compaction."""
    for n, i in enumerate(range(start, start + count)):
        if n == pause_after:
            _arm(cache, pause_at, say)
            if pause_at != "append":
                cache.index.compact()
        cache.add_cache(answer(name, i), **request(name, i))
        say(str(i))


def peer(cache: Any, name: str, peers: list[str], say: Callable[[str], None],
         wait: Callable[[], None]) -> None:
    """Store one entry, then (once told every peer has stored theirs) look up each
    peer's entry by a paraphrase and report which were semantic hits."""
    cache.add_cache(answer(name, 0), **request(name, 0))
    say("stored")
    wait()
    hits = []
    for p in peers:
        hit = cache.lookup(**request(p, 0, paraphrase=True))
        if hit is not None and hit.stage == "semantic" and hit.value == answer(p, 0):
            hits.append(p)
    say(json.dumps(hits))


def check(folder: str, acked: dict[str, list[int]]) -> dict[str, Any]:
    """From a fresh process: every acknowledged entry in the store, in the index, and
    found by a paraphrase; no index entry without its stored answer."""
    cache = open_cache(folder)
    index, store = cache.index, cache.store
    lost: dict[str, list[str]] = {"store": [], "index": [], "paraphrase": []}
    for name, ids in acked.items():
        for i in ids:
            key = cache.get_cache_key(**request(name, i))
            if store.get(key) is None:
                lost["store"].append(f"{name}/{i}")
            if key not in index._where:
                lost["index"].append(f"{name}/{i}")
            hit = cache.lookup(**request(name, i, paraphrase=True))
            if hit is None or hit.stage != "semantic" or hit.value != answer(name, i):
                lost["paraphrase"].append(f"{name}/{i}")
    orphans = [k for k in list(index._where) if store.get(k) is None]
    out = {"lost": lost, "orphans": orphans, "entries": index.count()}
    cache.close()
    return out


def _say_stdout(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    cmd, folder = argv[0], argv[1]
    if cmd == "check":
        print(json.dumps(check(folder, json.loads(argv[2]))))
        return
    cache = open_cache(folder)
    if cmd == "write":
        name, start, count = argv[2], int(argv[3]), int(argv[4])
        pause_after = int(argv[5]) if argv[5] != "-" else None
        write(cache, name, start, count, pause_after, argv[6], _say_stdout)
    elif cmd == "peer":
        peer(cache, argv[2], argv[3].split(","), _say_stdout, lambda: sys.stdin.readline())
    cache.close()


if __name__ == "__main__":
    main(sys.argv[1:])
