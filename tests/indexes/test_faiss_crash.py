"""A FAISS index on disk survives SIGKILL in the middle of a write loop: it always
reopens, and every add that returned before the kill is there (or a later version)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from semcache.indexes.faiss import FaissIndex

KEYS = 300  # writes cycle over these keys, so the log compacts into snapshots often

WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from semcache.indexes.base import IndexEntry
    from semcache.indexes.faiss import FaissIndex

    path, keys = sys.argv[1], int(sys.argv[2])
    idx = FaissIndex(8, path=path, model_id="m")
    i = int(sys.argv[3])
    while True:
        v = np.random.default_rng(i).standard_normal((1, 8)).astype(np.float32)
        v /= np.linalg.norm(v)
        k = i % keys
        if i % 7 == 3:
            idx.delete([f"n:{k}"])
        else:
            idx.add([IndexEntry(f"n:{k}", f"c{k % 5}", "n", f"v{i}", 0.0, None)], v)
        sys.stdout.write(f"{i}\\n")  # acknowledged: this operation returned
        sys.stdout.flush()
        i += 1
""")


def _vec(i: int) -> np.ndarray:
    v = np.random.default_rng(i).standard_normal(8).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("kill_after", [150, 4_000, 23_000])  # the last one is after
def test_sigkill_mid_write_never_corrupts(tmp_path, kill_after: int) -> None:  # snapshots
    path = tmp_path / "idx"
    acked = -1
    start = 0
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for _ in range(2):  # crash, reopen and write on, crash again
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(KEYS),
                                 str(start)], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            acked = int(line)
            if acked - start >= kill_after:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for line in proc.stdout:  # acknowledgements still in the pipe count too
            if line.endswith("\n"):
                acked = int(line)
        proc.stdout.close()
        start = acked + 1
        _check(path, acked)


def _check(path, acked: int) -> None:
    idx = FaissIndex(8, path=path, model_id="m")  # must open
    try:
        # the last acknowledged operation on each key decides what must be there; the
        # operation in flight at the kill (acked + 1) may or may not have landed
        last: dict[int, int] = {}
        for i in range(max(0, acked - 3 * KEYS), acked + 1):
            last[i % KEYS] = i
        for k, i in last.items():
            got = {c.key: c for c in idx.search(_vec(i), f"c{k % 5}", k=KEYS)}.get(f"n:{k}")
            inflight = (acked + 1) % KEYS == k
            if i % 7 == 3:  # deleted
                assert got is None or inflight, (k, i)
            else:
                assert got is not None or inflight, (k, i)
                if got is not None and not inflight:
                    assert got.prompt == f"v{i}"
                    assert got.similarity == pytest.approx(1.0, abs=1e-5)
    finally:
        idx.close()
