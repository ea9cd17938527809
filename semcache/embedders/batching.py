"""``BatchingEmbedder``: coalesce concurrent ``aembed`` calls into one ``embed`` call.

A server handling many requests at once would otherwise embed each query on its own,
one model call per request, and a transformer forward pass on one text costs nearly as
much as on 32. The wrapper keeps one embedding in flight per event loop; requests that
arrive while it runs queue up and are embedded together, in one ``inner.embed`` call
(in a worker thread, never on the loop), as soon as it finishes. Nothing waits on a
timer: at low load a request is embedded at once, exactly as without the wrapper.

It is an ``Embedder``, so it is passed as ``Cache(embedder=BatchingEmbedder(inner))``
and the lookup pipeline is unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np

from .._errors import BackendTimeout, BackendUnavailable, InvalidRequestError
from .base import Embedder, checked_texts

__all__ = ["BatchingEmbedder"]


def _input_refused(exc: Exception) -> bool:
    """Whether the backend refused the request's input (HTTP 4xx other than a timeout,
    conflict or rate limit; a typed ``InvalidRequestError``), so that one caller's text
    may be the cause. An outage (unavailable, timed out, 5xx, 429) is not retried caller
    by caller: that would multiply the calls to a failing backend."""
    if isinstance(exc, InvalidRequestError):
        return True
    if isinstance(exc, (BackendUnavailable, BackendTimeout)):
        return False
    status = getattr(exc.__cause__, "status_code", None)  # openai's APIStatusError
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)


class _Queue:
    __slots__ = ("loop", "pending", "running")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self.running = False


class BatchingEmbedder(Embedder):
    """Wraps ``inner``; ``aembed`` batches concurrent callers, ``embed`` passes through.

    ``max_batch`` bounds the texts of one model call (the rest wait for the next).
    ``batches`` and ``batched_texts`` count the model calls made and the texts in them.
    """

    def __init__(self, inner: Embedder, *, max_batch: int = 128) -> None:
        super().__init__(cache_size=0)  # the inner embedder keeps its own LRU
        self.inner = inner
        self.model_id = inner.model_id
        self.max_batch = max_batch
        self.batches = 0
        self.batched_texts = 0
        self._queues: dict[asyncio.AbstractEventLoop, _Queue] = {}
        self._queues_lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _embed(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - embed overrides
        return self.inner.embed(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        texts = checked_texts(texts)  # here: one caller's mistake must not fail a batch
        if not texts:
            return self.inner.embed(texts)
        loop = asyncio.get_running_loop()
        q = self._queues.get(loop)
        if q is None:
            # one queue per loop (each uvicorn worker / test loop has its own); drop
            # queues of loops that have closed so they are not kept alive. Under a lock:
            # threads with loops of their own rebuilt the dict at once ("dictionary
            # changed size during iteration", or one's new queue dropped by another)
            with self._queues_lock:
                q = self._queues.get(loop)
                if q is None:
                    self._queues = {lp: qq for lp, qq in self._queues.items()
                                    if not lp.is_closed()}
                    q = self._queues[loop] = _Queue(loop)
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        q.pending.append((texts, fut))
        if not q.running:
            q.running = True
            loop.create_task(self._run(q))
        return await fut

    async def _run(self, q: _Queue) -> None:
        take: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        try:
            while q.pending:
                take, n = [], 0
                while q.pending and (not take or n + len(q.pending[0][0]) <= self.max_batch):
                    item = q.pending.pop(0)
                    take.append(item)
                    n += len(item[0])
                flat = [t for texts, _ in take for t in texts]
                try:
                    vecs = await asyncio.to_thread(self.inner.embed, flat)
                except Exception as exc:  # noqa: BLE001 - each caller gets it, typed
                    if len(take) > 1 and _input_refused(exc):
                        # one caller's text may be the one refused (an input over the
                        # server's token limit): the others must not fail with it
                        await self._one_by_one(take)
                        continue
                    for _, fut in take:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                self.batches += 1
                self.batched_texts += len(flat)
                start = 0
                for texts, fut in take:
                    if not fut.done():
                        fut.set_result(vecs[start:start + len(texts)])
                    start += len(texts)
        finally:
            q.running = False
            for _, fut in take + q.pending:  # cancelled mid-batch: nobody waits forever
                if not fut.done():
                    fut.cancel()
            q.pending.clear()

    async def _one_by_one(self, take: list[tuple[list[str], asyncio.Future[np.ndarray]]]
                          ) -> None:
        for texts, fut in take:
            if fut.done():  # its caller was cancelled meanwhile
                continue
            try:
                vecs = await asyncio.to_thread(self.inner.embed, texts)
            except Exception as exc:  # noqa: BLE001 - this caller's own error
                if not fut.done():
                    fut.set_exception(exc)
                continue
            self.batches += 1
            self.batched_texts += len(texts)
            if not fut.done():
                fut.set_result(vecs)

    def __repr__(self) -> str:
        return f"BatchingEmbedder({self.inner!r}, max_batch={self.max_batch})"
