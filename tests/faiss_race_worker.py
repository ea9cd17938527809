"""A process holding one ``FaissIndex`` on a shared folder, driven line by line by a test
(tests/test_multiprocess_faiss_races.py) so that the test decides the exact order of
every write, lookup, compaction and kill across processes. Nothing sleeps.

Each command is one JSON list on the input (``["add", 3, 300, null]``); each answer is
one JSON line. ``arm`` makes the next compaction, append or purge stop at a chosen
point and say ``"paused"``: the test then SIGKILLs it (``die-*``) or lets it go on with
a ``"go"`` line (``hold-*``). The code under test runs unchanged up to that point.

Run as ``python -m tests.faiss_race_worker FOLDER`` (spawned), or ``serve()`` in a
forked child with the index its parent opened.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DIM = 8


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v)


def open_index(folder: str) -> Any:
    from semcache.indexes.faiss import FaissIndex

    return FaissIndex(DIM, path=Path(folder), model_id="m")


def _arm(idx: Any, point: str, say: Callable[[str], None],
         readline: Callable[[], str]) -> None:
    from semcache.indexes import _faiss_log

    def pause() -> None:
        say('"paused"')
        if point.startswith("die-"):
            while True:  # until the test's SIGKILL
                signal.pause()
        readline()  # "go"

    if point in ("die-after-snapshot", "hold-after-snapshot"):
        # the new snapshot renamed into place, the old log not yet switched
        real_write = _faiss_log._atomic_write

        def write(path: Any, data: bytes) -> None:
            if path.name == "log.jsonl":
                _faiss_log._atomic_write = real_write  # type: ignore[assignment]
                pause()
            real_write(path, data)
        _faiss_log._atomic_write = write  # type: ignore[assignment]
    elif point == "die-mid-append":  # half a record on disk, lock held
        disk = idx._disk

        def torn(records: list[dict[str, Any]]) -> None:
            import orjson

            data = b"".join(orjson.dumps(r) + b"\n" for r in records)
            with open(disk.path / "log.jsonl", "ab") as f:
                f.write(data[: len(data) // 2])
            pause()
        disk.append = torn
    elif point == "hold-before-delete":  # a purge has chosen its keys, not deleted yet
        real_delete = idx.delete

        def delete(keys: Any) -> int:
            idx.delete = real_delete
            pause()
            return int(real_delete(keys))
        idx.delete = delete
    else:
        raise ValueError(point)


def _keys(idx: Any, ctx: str) -> list[str]:
    return sorted(c.key for c in idx.search(vec(0)[0], ctx, k=10_000))


def serve(idx: Any, readline: Callable[[], str], say: Callable[[str], None]) -> None:
    from semcache.indexes.base import IndexEntry

    say('"ready"')
    while True:
        line = readline()
        if not line:
            return
        cmd, *args = json.loads(line)
        out: Any = None
        if cmd == "add":  # ["add", i, seed, expires_at]
            i, seed, expires = args
            idx.add([IndexEntry(f"n:{i}", "c", "n", f"p{i}", 0.0, expires)], vec(seed))
        elif cmd == "delete":
            out = idx.delete(args[0])
        elif cmd == "clear":
            out = idx.clear(args[0])
        elif cmd == "compact":
            idx.compact()
        elif cmd == "purge":
            out = idx.purge_expired(now=args[0])
        elif cmd == "keys":  # what a lookup of this process finds, by key
            out = _keys(idx, "c")
        elif cmd == "nearest":  # the key a lookup of vec(seed) finds first, and how close
            found = idx.search(vec(args[0])[0], "c", k=1)
            out = [found[0].key, round(found[0].similarity, 4)] if found else None
        elif cmd == "arm":
            _arm(idx, args[0], say, readline)
        elif cmd == "close":
            idx.close()
            say("null")
            return
        else:
            raise ValueError(cmd)
        say(json.dumps(out))


def main(argv: list[str]) -> None:
    def say(msg: str) -> None:
        sys.stdout.write(msg + "\n")
        sys.stdout.flush()

    serve(open_index(argv[0]), sys.stdin.readline, say)


if __name__ == "__main__":
    main(sys.argv[1:])
