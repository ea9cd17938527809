"""Many processes on one faiss-semantic folder (issue #26), with real processes: forked
from a parent that opened the cache first, and spawned; killed with SIGKILL at points
the test chooses (mid-append, mid-compaction) or wherever they happen to be.

Afterwards a fresh process must find every acknowledged entry in the store, in the
index and by a paraphrase, and no index entry without its stored answer. The workers'
code is in tests/multiprocess_support.py.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import multiprocess_support as mp

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 90.0  # bounds every wait: a hang fails the test instead of the suite


@dataclass
class Proc:
    name: str
    pid: int
    fd: int  # the worker's acknowledgements, one line each
    popen: subprocess.Popen[bytes] | None = None
    to_child: int | None = None  # forked peers: the "go" pipe
    kill_after: int | None = None  # SIGKILL once this many acks arrived (anywhere)
    buf: bytes = b""
    lines: list[str] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    killed: bool = False
    eof: bool = False

    def kill(self) -> None:
        if not self.killed:
            os.kill(self.pid, signal.SIGKILL)
            self.killed = True

    def reap(self) -> int:
        if self.popen is not None:
            return self.popen.wait(timeout=DEADLINE_S)
        return os.waitpid(self.pid, 0)[1]


def fork(cache: Any, name: str, body: Callable[[Callable[[str], None],
                                                 Callable[[], None]], None]) -> Proc:
    """A child forked from this process, using the cache this process opened."""
    r, w = os.pipe()
    gr, gw = os.pipe()

    def child() -> None:
        os.close(r)
        os.close(gw)

        def say(msg: str) -> None:
            os.write(w, (msg + "\n").encode())

        def wait() -> None:
            os.read(gr, 1)

        body(say, wait)

    pid = mp.fork_child(child)
    os.close(w)
    os.close(gr)
    return Proc(name, pid, r, to_child=gw)


def spawn(*args: str) -> Proc:
    p = subprocess.Popen([sys.executable, "-m", "tests.multiprocess_support", *args],
                         cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout is not None
    return Proc(args[2], p.pid, p.stdout.fileno(), popen=p)


def pump(procs: list[Proc], done: Callable[[], bool]) -> None:
    """Read every worker's lines until ``done()``; kill a worker that paused or reached
    its ``kill_after``. Acknowledgements still in a killed worker's pipe count."""
    sel = selectors.DefaultSelector()
    for p in procs:
        if not p.eof:
            sel.register(p.fd, selectors.EVENT_READ, p)
    end = time.monotonic() + DEADLINE_S
    try:
        while not done():
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"workers stuck: {[(p.name, p.lines[-3:]) for p in procs]}")
            for key, _ in sel.select(timeout=left):
                p = key.data
                chunk = os.read(p.fd, 65536)
                if not chunk:
                    p.eof = True
                    sel.unregister(p.fd)
                    continue
                p.buf += chunk
                *lines, p.buf = p.buf.split(b"\n")
                for line in lines:
                    msg = line.decode()
                    p.lines.append(msg)
                    if msg == "paused":
                        p.kill()
                    elif msg.isdigit():
                        p.acked.append(int(msg))
                        if p.kill_after is not None and len(p.acked) >= p.kill_after:
                            p.kill()
    finally:
        sel.close()


def finish(procs: list[Proc]) -> None:
    pump(procs, lambda: all(p.eof for p in procs))
    for p in procs:
        status = p.reap()
        if not p.killed:
            assert status == 0, (p.name, status, p.lines[-3:])
        if p.popen is not None:
            assert p.popen.stdout is not None and p.popen.stdin is not None
            p.popen.stdout.close()
            p.popen.stdin.close()
        else:
            os.close(p.fd)
        if p.to_child is not None:
            os.close(p.to_child)


def test_forked_and_spawned_writers_killed_mid_write_and_mid_compaction_lose_nothing(
        tmp_path: Path, minilm: Any) -> None:
    folder = str(tmp_path / "cache")
    cache = mp.open_cache(folder)
    acked: dict[str, list[int]] = {"parent": []}
    for i in range(3):  # entries the forked children inherit in memory
        cache.add_cache(mp.answer("parent", i), **mp.request("parent", i))
        acked["parent"].append(i)

    def forked(name: str, after: int | None, at: str, count: int = 400) -> Proc:
        return fork(cache, name, lambda say, _wait: mp.write(cache, name, 0, count, after,
                                                            at, say))

    # round 1: four writers at once, each killed at a different kind of point
    procs = [
        forked("fork-anywhere", None, "-"),  # killed wherever it is after 12 acks
        forked("fork-mid-append", 6, "append"),  # half a record written, lock held
        spawn("write", folder, "spawn-snapshot-written", "0", "400", "8", "snapshot-written"),
        spawn("write", folder, "spawn-snapshot-tmp", "0", "400", "5", "snapshot-tmp"),
    ]
    procs[0].kill_after = 12
    finish(procs)
    for p in procs:
        assert p.killed
        acked[p.name] = p.acked
    assert [p.lines[-1] == "paused" for p in procs[1:]] == [True] * 3, \
        [p.lines[-2:] for p in procs]

    # round 2: the parent (its memory from before round 1) writes on, a new forked child
    # and a spawned writer append after the torn tail and finish a compaction
    for i in range(3, 5):
        cache.add_cache(mp.answer("parent", i), **mp.request("parent", i))
        acked["parent"].append(i)
    procs = [forked("fork-after", 3, "-", 6),
             spawn("write", folder, "spawn-after", "0", "6", "3", "-")]
    finish(procs)
    for p in procs:
        assert len(p.acked) == 6 and not p.killed, p.lines[-3:]
        acked[p.name] = p.acked
    cache.close()

    out = subprocess.run([sys.executable, "-m", "tests.multiprocess_support", "check", folder,
                          json.dumps(acked)], cwd=ROOT, capture_output=True, text=True,
                         timeout=DEADLINE_S, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    total = sum(len(v) for v in acked.values())
    assert report["lost"] == {"store": [], "index": [], "paraphrase": []}, report
    assert report["orphans"] == []
    assert report["entries"] >= total  # at most the killed writes in flight on top
    assert all(len(acked[p]) >= 5 for p in acked), acked


def test_each_worker_sees_what_its_peers_acknowledged(tmp_path: Path, minilm: Any) -> None:
    """Read-your-peers'-writes: a forked child's memory predates its peers' entries,
    and a lookup still finds them once their writes returned."""
    folder = str(tmp_path / "cache")
    cache = mp.open_cache(folder)
    cache.add_cache(mp.answer("parent", 0), **mp.request("parent", 0))
    names = ["fork-a", "fork-b", "spawn-c"]

    def forked(name: str) -> Proc:
        peers = [n for n in [*names, "parent"] if n != name]
        return fork(cache, name, lambda say, wait: mp.peer(cache, name, peers, say, wait))

    procs = [forked("fork-a"), forked("fork-b"),
             spawn("peer", folder, "spawn-c", "fork-a,fork-b,parent")]
    pump(procs, lambda: all("stored" in p.lines for p in procs))
    for p in procs:  # every peer has stored: go
        if p.popen is not None:
            assert p.popen.stdin is not None
            p.popen.stdin.write(b"go\n")
            p.popen.stdin.flush()
        else:
            assert p.to_child is not None
            os.write(p.to_child, b"g")
    pump(procs, lambda: all(len(p.lines) >= 2 for p in procs))
    seen = {p.name: sorted(json.loads(p.lines[1])) for p in procs}
    finish(procs)
    assert seen == {n: sorted(m for m in [*names, "parent"] if m != n) for n in names}
    # and the parent, whose memory is older than all three
    for n in names:
        hit = cache.lookup(**mp.request(n, 0, paraphrase=True))
        assert hit is not None and hit.stage == "semantic" and hit.value == mp.answer(n, 0)
    cache.close()
