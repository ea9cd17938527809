"""One FAISS folder, several handles (issue #26): what one writes, the others read back
before their next lookup; compaction by a handle that had not caught up drops nothing;
a forked child's lock and close() are its own. Several ``FaissIndex`` objects on one
folder in one process behave as separate processes do (each has its own lock
descriptor, its own memory, its own position in the log); the real-process scenarios
with SIGKILLs are in tests/test_multiprocess_faiss.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache.indexes import _faiss_log
from semcache.indexes.base import IndexEntry, Observation
from semcache.indexes.faiss import FaissIndex
from tests.multiprocess_support import in_child

DIM = 8


def vec(i: int) -> np.ndarray:
    v = np.random.default_rng(i).standard_normal((1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(i: int, ctx: str = "c", ns: str = "n", expires: float | None = None) -> IndexEntry:
    return IndexEntry(f"{ns}:{i}", ctx, ns, f"p{i}", 0.0, expires)


def keys(idx: FaissIndex, ctx: str = "c") -> set[str]:
    return {c.key for c in idx.search(vec(0)[0], ctx, k=10_000)}


def opened(path: Path, n: int) -> list[FaissIndex]:
    return [FaissIndex(DIM, path=path, model_id="m") for _ in range(n)]


def test_each_handle_reads_the_others_writes_before_a_lookup(tmp_path):
    a, b = opened(tmp_path, 2)
    a.add([entry(i) for i in range(3)], np.concatenate([vec(i) for i in range(3)]))
    assert keys(b) == {"n:0", "n:1", "n:2"} and b.count() == 3
    got = b.search(vec(1)[0], "c", k=1)[0]
    assert got.key == "n:1" and got.similarity == pytest.approx(1.0, abs=1e-5)
    assert b.delete(["n:0"]) == 1
    assert keys(a) == {"n:1", "n:2"}
    b.add([entry(9, ctx="d", ns="m")], vec(9))  # (a context belongs to one namespace)
    assert a.clear("n") == 2 and b.count() == 1 and b.count("m") == 1
    assert a.observe("m:9", Observation(0.9, True))
    assert b.search(vec(9)[0], "d", k=1)[0].observations == (Observation(0.9, True),)
    for i in (a, b):
        i.close()


def test_a_handle_that_never_caught_up_compacts_without_dropping_anything(tmp_path):
    """The reported loss: a worker's compaction wrote its own stale view and truncated the
    shared log. Compaction now catches up first, under the lock."""
    a, b = opened(tmp_path, 2)
    b.add([entry(i) for i in range(50)], np.concatenate([vec(i) for i in range(50)]))
    a.compact()  # a has not looked at anything since b wrote
    b.add([entry(50)], vec(50))
    fresh = FaissIndex(DIM, path=tmp_path, model_id="m")
    assert keys(fresh) == {f"n:{i}" for i in range(51)}
    assert keys(a) == keys(b) == keys(fresh)
    for i in (a, b, fresh):
        i.close()


def test_a_peer_current_at_compaction_keeps_its_memory(tmp_path):
    """The new log names the state it continues from: a peer that had read exactly that
    far goes on without reloading the snapshot (its shard objects are kept)."""
    a, b = opened(tmp_path, 2)
    a.add([entry(i) for i in range(5)], np.concatenate([vec(i) for i in range(5)]))
    assert b.count() == 5
    shard = b._shards["c"]
    a.compact()
    a.add([entry(5)], vec(5))
    assert b.count() == 6 and b._shards["c"] is shard  # applied the one record only
    c = FaissIndex(DIM, path=tmp_path, model_id="m")
    a.compact()
    a.compact()
    assert c.count() == 6 and keys(c) == keys(a)  # two generations behind: reloads
    for i in (a, b, c):
        i.close()


def test_a_compaction_killed_after_its_snapshot_is_finished_by_the_next_reader(tmp_path):
    """Snapshot renamed into place, old log not yet reset (the process died): readers
    take the snapshot alone; replaying the old log on top would count observations
    twice."""
    a = FaissIndex(DIM, path=tmp_path, model_id="m")
    a.add([entry(0)], vec(0))
    a.observe("n:0", Observation(0.8, True))
    real = _faiss_log._atomic_write

    def die_before_log_reset(path: Path, data: bytes) -> None:
        if path.name == "log.jsonl":
            raise KeyboardInterrupt  # stands in for the SIGKILL at this exact point
        real(path, data)

    _faiss_log._atomic_write = die_before_log_reset  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            a.compact()
    finally:
        _faiss_log._atomic_write = real  # type: ignore[assignment]
    b = FaissIndex(DIM, path=tmp_path, model_id="m")
    assert b.search(vec(0)[0], "c", k=1)[0].observations == (Observation(0.8, True),)
    b.add([entry(1)], vec(1))
    c = FaissIndex(DIM, path=tmp_path, model_id="m")
    assert keys(c) == {"n:0", "n:1"}
    for i in (a, b, c):
        i.close()


def test_expiry_purged_by_one_handle_is_a_record_the_others_apply(tmp_path):
    a, b = opened(tmp_path, 2)
    a.add([entry(0, expires=50.0), entry(1)], np.concatenate([vec(0), vec(1)]))
    assert b.count() == 2
    assert a.purge_expired(now=100.0) == 1
    assert b.count() == 1 and keys(b) == {"n:1"}
    for i in (a, b):
        i.close()


def test_a_lookup_with_no_peer_write_reads_no_file(tmp_path):
    """The fast path is one compare against the shared counter: no lock, no read."""
    a, b = opened(tmp_path, 2)
    a.add([entry(0)], vec(0))
    assert b.count() == 1
    calls = []
    real = b._disk.catch_up
    b._disk.catch_up = lambda: calls.append(1) or real()  # type: ignore[method-assign]
    for _ in range(5):
        b.search(vec(0)[0], "c")
    assert calls == []
    a.add([entry(1)], vec(1))
    b.search(vec(0)[0], "c")
    assert calls == [1]
    for i in (a, b):
        i.close()


def test_an_async_lookup_waits_for_the_folder_lock_off_the_event_loop(tmp_path):
    """While another process holds the lock (a long compaction, say), a lookup that must
    catch up waits in a thread: the event loop goes on serving other tasks."""
    a, b = opened(tmp_path, 2)
    a.add([entry(1)], vec(1))  # b is now behind

    async def main() -> str:
        assert a._disk is not None
        held = a._disk.held()
        held.__enter__()  # "another process" holds the folder lock
        try:
            task = asyncio.create_task(b.asearch(vec(1)[0], "c", k=1))
            for _ in range(5):
                await asyncio.sleep(0)  # the loop runs: the search is not blocking it
            assert not task.done()
        finally:
            held.__exit__(None, None, None)
        return (await asyncio.wait_for(task, 30))[0].key

    assert asyncio.run(main()) == "n:1"
    for i in (a, b):
        i.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_childs_lock_and_close_are_its_own(tmp_path):
    """A lock belongs to the process that took it: a child forked while its parent holds
    the folder lock cannot take it, and its close() does not release the parent's."""
    idx = FaissIndex(DIM, path=tmp_path, model_id="m")
    idx.add([entry(0)], vec(0))
    probe = ("import sys, filelock\n"
             "try:\n    filelock.FileLock(sys.argv[1]).acquire(timeout=0)\n"
             "except filelock.Timeout:\n    print('held')\nelse:\n    print('free')\n")
    lock = str(tmp_path / "write.lock")

    def held_elsewhere() -> str:
        return subprocess.run([sys.executable, "-c", probe, lock], capture_output=True,
                              text=True, check=True, timeout=60).stdout.strip()

    assert idx._disk is not None
    with idx._disk.held():
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                import filelock

                try:
                    filelock.FileLock(lock).acquire(timeout=0)
                    os.write(w, b"child took the parent's lock\n")
                except filelock.Timeout:
                    pass
                idx.close()
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            said = f.read()
        assert os.waitpid(pid, 0)[1] == 0 and said == ""
        assert held_elsewhere() == "held"  # the child's close() released nothing
    assert held_elsewhere() == "free"
    idx.add([entry(1)], vec(1))  # the parent goes on as before
    assert idx.count() == 2
    idx.close()


OPS = st.lists(st.tuples(st.sampled_from(["add", "del", "clear", "compact", "look"]),
                         st.integers(0, 2), st.integers(0, 7)), min_size=1, max_size=25)


@settings(max_examples=25, deadline=None)
@given(OPS)
def test_any_interleaving_of_handles_agrees_with_one_dict(ops):
    """Property: three handles writing in any order (adds, deletes, clears, compactions)
    all see what one dictionary, applied in the same order, holds; so does a handle
    opened afterwards."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)
        handles = opened(path, 3)
        want: dict[str, int] = {}
        for op, h, i in ops:
            idx = handles[h]
            if op == "add":
                seed = 100 * i + len(want)
                idx.add([entry(i)], vec(seed))
                want[f"n:{i}"] = seed
            elif op == "del":
                assert idx.delete([f"n:{i}"]) == int(f"n:{i}" in want)
                want.pop(f"n:{i}", None)
            elif op == "clear":
                idx.clear("n")
                want.clear()
            elif op == "compact":
                idx.compact()
            else:
                assert keys(idx) == set(want)
        handles.append(FaissIndex(DIM, path=path, model_id="m"))
        for idx in handles:
            assert keys(idx) == set(want)
            for k, seed in want.items():
                got = idx.search(vec(seed)[0], "c", k=1)[0]
                assert got.key == k and got.similarity == pytest.approx(1.0, abs=1e-5)
            idx.close()


def test_a_conditional_delete_is_a_record_every_handle_applies_alike(tmp_path):
    # b read the entry, a re-wrote it, b's cleanup of what it read must spare a's entry
    # in every handle (b catches up under the lock, and the record carries the condition)
    a, b = opened(tmp_path, 2)
    a.add([entry(1), entry(2)], np.concatenate([vec(1), vec(2)]))
    seen = {c.key: c for c in b.search(vec(1)[0], "c", k=2)}
    a.add([IndexEntry("n:1", "c", "n", "p1", 1.0, None)], vec(1))
    assert b.delete_if_unchanged(seen["n:1"]) is False
    assert b.delete_if_unchanged(seen["n:2"]) is True
    log = (tmp_path / "log.jsonl").read_text().splitlines()
    assert '"if":[0.0,null]' in log[-1].replace(" ", "")  # the condition is logged
    c = opened(tmp_path, 1)[0]  # a handle that replays the whole log
    for idx in (a, b, c):
        assert keys(idx) == {"n:1"} and idx.search(vec(1)[0], "c")[0].created_at == 1.0
    c.compact()
    assert keys(opened(tmp_path, 1)[0]) == {"n:1"}


def test_a_logged_condition_that_does_not_hold_deletes_nothing(tmp_path, caplog):
    a = opened(tmp_path, 1)[0]
    a.add([entry(1)], vec(1))
    a.close()
    with open(tmp_path / "log.jsonl", "ab") as f:
        f.write(b'{"op":"del","keys":["n:1"],"if":[5.0,null]}\n')
        f.write(b'{"op":"del","keys":["n:1"],"if":"soon"}\n')  # malformed: skipped
    assert keys(opened(tmp_path, 1)[0]) == {"n:1"}
    assert "skipped a malformed record" in caplog.text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_builds_an_int8_copy_and_an_ivf_after_the_parent_did():
    """FAISS's OpenMP is not fork-safe: a child forked after the parent had trained
    k-means (the int8 copy from 4k rows, the IVF from 20k) hung in its own k-means for
    ever, waiting for pool threads that exist only in the parent. The child's k-means
    must finish; ``in_child``'s watchdog turns a hang into a failure."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5_000, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    idx = FaissIndex(DIM, approx_threshold=4_500, compact_threshold=2_000)
    idx.add([entry(i, "parent") for i in range(3_000)], x[:3_000])
    assert idx.compact_shards() == 1  # the parent ran k-means: its OpenMP pool exists

    def child() -> str:
        idx.add([entry(i, "child", "m") for i in range(2_500)], x[:2_500])  # a copy
        idx.add([entry(i, "child2", "o") for i in range(5_000)], x)  # an IVF
        return f"{idx.compact_shards()} {idx.approximate_shards()}"

    assert in_child(child) == "2 1"
    assert idx.search(x[7], "parent", k=1)[0].key == "n:7"  # the parent is unaffected
    idx.close()
