"""Races between real processes on one faiss-semantic folder (issue #26), in an order
the test dictates step by step: each worker (tests/faiss_race_worker.py) is a separate
process holding its own ``FaissIndex``, told what to do next over a pipe, and stopped or
SIGKILLed at a point of the test's choosing. What the other files do not cover: an
append that lands after a compaction died half-way, a purge racing a peer's rewrite,
and deletes seen by a process (forked after open, or independent) that holds the
deleted entry in memory across compactions.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import filelock
import pytest

from tests import faiss_race_worker as rw
from tests.multiprocess_support import fork_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0  # bounds every wait: a hang fails the test instead of the suite


_LIVE: list[Worker] = []


@pytest.fixture(autouse=True)
def _kill_leftovers() -> Any:
    """A failed test leaves no worker behind (each is ours: killed by its pid)."""
    yield
    while _LIVE:
        w = _LIVE.pop()
        if not w.done:
            w.kill()


class Worker:
    """One process on the folder: spawned (it opens the folder itself) or forked from
    this one after ``idx`` was opened here (it goes on with the inherited index)."""

    def __init__(self, folder: Path, idx: Any = None) -> None:
        self.popen: subprocess.Popen[bytes] | None = None
        if idx is None:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "tests.faiss_race_worker", str(folder)], cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert self.popen.stdin is not None and self.popen.stdout is not None
            self.pid, self.rfd, self.wfd = (self.popen.pid, self.popen.stdout.fileno(),
                                            self.popen.stdin.fileno())
        else:
            cr, pw = os.pipe()
            pr, cw = os.pipe()

            def child() -> None:
                os.close(pw)
                os.close(pr)
                inp = os.fdopen(cr, "r")
                rw.serve(idx, inp.readline, lambda m: os.write(cw, (m + "\n").encode()))

            pid = fork_child(child)
            os.close(cr)
            os.close(cw)
            self.pid, self.rfd, self.wfd = pid, pr, pw
        self.buf = b""
        self.killed = self.done = False
        _LIVE.append(self)
        assert self.read() == "ready"

    def send(self, *cmd: Any) -> None:
        os.write(self.wfd, (json.dumps(list(cmd)) + "\n").encode())

    def read(self) -> Any:
        end = time.monotonic() + DEADLINE_S
        with selectors.DefaultSelector() as sel:
            sel.register(self.rfd, selectors.EVENT_READ)
            while b"\n" not in self.buf:
                left = end - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    raise AssertionError(f"worker {self.pid} stuck")
                chunk = os.read(self.rfd, 65536)
                if not chunk:
                    raise AssertionError(f"worker {self.pid} died")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def __call__(self, *cmd: Any) -> Any:
        self.send(*cmd)
        return self.read()

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.killed = True
        self.reap()

    def close(self) -> None:
        if not self.killed:
            assert self("close") is None
            self.reap()

    def reap(self) -> None:
        self.done = True
        if self.popen is not None:
            status = self.popen.wait(timeout=DEADLINE_S)
            assert self.popen.stdin is not None and self.popen.stdout is not None
            self.popen.stdin.close()
            self.popen.stdout.close()
        else:
            status = os.waitpid(self.pid, 0)[1]
            os.close(self.rfd)
            os.close(self.wfd)
        assert self.killed or status == 0, status


def keys(*ids: int) -> list[str]:
    return sorted(f"n:{i}" for i in ids)


def lock_is_free(folder: Path) -> bool:
    lock = filelock.FileLock(folder / "write.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    lock.release()
    return True


def test_an_append_after_a_compaction_killed_mid_switch_is_not_dropped(tmp_path: Path) -> None:
    """B's compaction renames its snapshot into place and is SIGKILLed before it switches
    the log. A was current, so nothing tells it a compaction happened: its next write is
    appended to the old log and acknowledged. The next process to open the folder
    finishes B's compaction; it used to do so by emptying the old log (\"the snapshot
    holds every record of it\"), dropping A's acknowledged entry for every process."""
    a, b = Worker(tmp_path), Worker(tmp_path)
    for i in range(3):
        a("add", i, i, None)
    assert b("keys") == keys(0, 1, 2)
    b("arm", "die-after-snapshot")
    b.send("compact")
    assert b.read() == "paused"
    b.kill()
    a("add", 3, 3, None)  # acknowledged
    a("delete", ["n:0"])  # acknowledged too: must not come back
    c = Worker(tmp_path)  # finds the dead compaction's snapshot and finishes it
    assert c("keys") == keys(1, 2, 3)
    assert a("keys") == keys(1, 2, 3)
    a("add", 4, 4, None)
    assert c("keys") == keys(1, 2, 3, 4)
    c("compact")
    d = Worker(tmp_path)
    assert d("keys") == a("keys") == c("keys") == keys(1, 2, 3, 4)
    assert d("nearest", 3) == ["n:3", 1.0]
    for w in (a, c, d):
        w.close()


def test_a_current_peer_that_compacts_after_a_dead_compaction_keeps_everything(
        tmp_path: Path) -> None:
    """The other way out of the same state: the peer that appended after the dead
    compaction compacts itself (its memory is the old snapshot + the whole old log)."""
    a, b = Worker(tmp_path), Worker(tmp_path)
    for i in range(3):
        a("add", i, i, None)
    assert b("keys") == keys(0, 1, 2)
    b("arm", "die-after-snapshot")
    b.send("compact")
    assert b.read() == "paused"
    b.kill()
    a("add", 3, 3, None)
    a("compact")
    a("add", 4, 4, None)
    c = Worker(tmp_path)
    assert c("keys") == a("keys") == keys(0, 1, 2, 3, 4)
    for w in (a, c):
        w.close()


def test_a_writer_killed_mid_append_after_a_dead_compaction_loses_no_peer_write(
        tmp_path: Path) -> None:
    """Both kinds of death in a row: a compaction killed before its log switch, then a
    writer killed half-way through a record (its torn tail must be cut, not glued to
    the next record, and not taken for the end of the acknowledged ones)."""
    a, b, w = Worker(tmp_path), Worker(tmp_path), Worker(tmp_path)
    for i in range(3):
        a("add", i, i, None)
    assert b("keys") == w("keys") == keys(0, 1, 2)
    b("arm", "die-after-snapshot")
    b.send("compact")
    assert b.read() == "paused"
    b.kill()
    a("add", 3, 3, None)
    w("arm", "die-mid-append")
    w.send("add", 9, 9, None)  # never acknowledged
    assert w.read() == "paused"
    w.kill()
    a("add", 4, 4, None)
    c = Worker(tmp_path)
    assert c("keys") == a("keys") == keys(0, 1, 2, 3, 4)
    c("add", 5, 5, None)
    assert a("keys") == keys(0, 1, 2, 3, 4, 5)
    for x in (a, c):
        x.close()


def test_a_purge_does_not_delete_an_entry_a_peer_rewrote_meanwhile(tmp_path: Path) -> None:
    """B's purge picks the expired entries, then deletes them. If A rewrites one of them
    (a fresh answer, a new expiry) in between, B's delete used to remove A's fresh,
    acknowledged entry from the index of every process. Either the purge holds the
    folder lock from its choice to its delete (A then writes after it), or A's write
    lands in between: the fresh entry must survive both ways."""
    a, b = Worker(tmp_path), Worker(tmp_path)
    a("add", 0, 0, 50.0)
    a("add", 1, 1, None)
    assert b("keys") == keys(1)  # (n:0 is expired at the worker's real clock)
    b("arm", "hold-before-delete")
    b.send("purge", 100.0)
    assert b.read() == "paused"
    if lock_is_free(tmp_path):  # the purge lets writes in here: make A's land now
        a("add", 0, 100, 10_000_000_000.0)
        b.send("go")
        assert b.read() == 0  # nothing of what it chose was still expired
    else:  # B holds the lock until its delete: A's rewrite comes after it
        a.send("add", 0, 100, 10_000_000_000.0)
        b.send("go")
        assert b.read() == 1
        assert a.read() is None
    for w in (a, b, Worker(tmp_path)):
        assert w("keys") == keys(0, 1)
        assert w("nearest", 100) == ["n:0", 1.0]
        w.close()


@pytest.mark.parametrize("who_deletes", ["forked child", "spawned peer"])
def test_a_delete_elsewhere_is_never_served_again_by_a_process_holding_the_entry(
        tmp_path: Path, who_deletes: str) -> None:
    """This process (the parent) has n:1 in memory; a forked child (its memory a copy of
    the parent's) or an independent peer deletes it, compacts, writes on, compacts
    again. No process serves n:1 again, and none loses the writes after it; the parent
    keeps working on its own file handles and lock after the child exits."""
    idx = rw.open_index(str(tmp_path))
    from semcache.indexes.base import IndexEntry

    for i in range(3):
        idx.add([IndexEntry(f"n:{i}", "c", "n", f"p{i}", 0.0, None)], rw.vec(i))
    other = Worker(tmp_path, idx if who_deletes == "forked child" else None)
    peer = Worker(tmp_path)
    assert peer("keys") == keys(0, 1, 2)
    assert other("delete", ["n:1"]) == 1
    assert [c.key for c in idx.search(rw.vec(1)[0], "c", k=1)] != ["n:1"]
    assert peer("nearest", 1) != ["n:1", 1.0]
    other("compact")
    other("add", 3, 3, None)
    other("clear", "x")  # another namespace: changes nothing here
    other("compact")
    other("add", 4, 4, None)
    want = keys(0, 2, 3, 4)
    assert peer("keys") == want
    assert sorted(c.key for c in idx.search(rw.vec(0)[0], "c", k=100)) == want
    other.close()
    idx.add([IndexEntry("n:5", "c", "n", "p5", 0.0, None)], rw.vec(5))
    idx.compact()
    want = keys(0, 2, 3, 4, 5)
    fresh = Worker(tmp_path)
    assert fresh("keys") == peer("keys") == want
    assert sorted(c.key for c in idx.search(rw.vec(0)[0], "c", k=100)) == want
    for w in (peer, fresh):
        w.close()
    idx.close()
