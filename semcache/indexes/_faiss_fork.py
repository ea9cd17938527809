"""Fork safety of the embedded index: one opened before a fork stays usable in the child.

Every open index's thread lock is taken before a fork, so the child's copy of its
memory is never caught half-way through a change by another thread; the child gets a
fresh lock (the parent's threads do not exist there), and its folder lock object is
replaced on first use (FolderLog.held), so the child never releases a parent's hold.
A child also runs FAISS's OpenMP on one thread (see ``after_in_child``).
``faiss.py`` registers these hooks when it is imported, after ``_faiss_log`` (and so
filelock) registered its own: at-fork "before" hooks run in reverse order of
registration, so filelock's gate closes after these have taken the index locks.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import Any

__all__ = ["OPEN", "after_in_child", "after_in_parent", "before"]

#: every open ``FaissIndex`` of this process (each has a ``_lock``, an RLock)
OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
_HELD: list[Any] = []


def before() -> None:
    for idx in list(OPEN):
        idx._lock.acquire()
        _HELD.append(idx)


def after_in_parent() -> None:
    while _HELD:
        _HELD.pop()._lock.release()


def after_in_child() -> None:
    while _HELD:
        _HELD.pop()._lock = threading.RLock()
    # FAISS's OpenMP (GNU libgomp in its wheels) is not fork-safe: once the parent has
    # run a parallel region (k-means for an int8 copy or an IVF, adding many rows), a
    # child's next one waits forever for the parent's pool threads, which do not exist
    # in the child. One thread never uses the pool. Process-wide in the child, by need.
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        faiss.omp_set_num_threads(1)
