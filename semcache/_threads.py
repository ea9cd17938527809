"""The one place that decides how many threads semcache's computations use (issue #25).

Why: on a 2-core machine a semantic hit cost 1.7-2.8x its embedding alone. Right after
an onnxruntime run its intra-op threads kept spinning on the cores, numpy's OpenBLAS
woke its own threads for the search's matrix-vector product, and the two pools fought
for the same two cores; a search's leftover BLAS threads slowed the next embedding
too. A process that serves requests gets its parallelism from requests (and from
batching them, ``BatchingEmbedder``), not from several thread pools inside one call.

The policy, and what applies it:

- ``compute`` (``set_threads(n)``, ``$SEMCACHE_THREADS``; the older
  ``$SEMCACHE_ONNX_THREADS`` still counts): threads one embedding may use, i.e.
  onnxruntime's intra-op pool. Default ``min(2, cores)``.
- ``torch`` (``set_threads(torch=n)``, ``$SEMCACHE_TORCH_THREADS``): torch's intra-op
  threads for the sentence-transformers embedder. Default 1, not ``compute``: torch's
  OpenMP threads spin at barriers and cannot be told not to once loaded; measured on 2
  busy cores, one query took p50 33-124 ms, p99 557-610 ms with 2 threads and p50
  13-15 ms, p99 21-28 ms (1.6-1.8x its p50) with 1.
- onnxruntime threads spin-wait only briefly (``spin_us``, default 30 microseconds):
  after each parallel section of a run a worker spins that long for the next one, then
  sleeps (``session.intra_op.spin_duration_us``). Never spinning (the default until
  2026-12-07, ``spin=False``) woke a sleeping worker for every section: one text cost
  1.35x a plain onnxruntime session on idle cores, where 30 us costs 0.95x
  (benchmarks/ort_ab.py --fresh, new sessions every round because two sessions with
  the same settings differed by up to 20% in one process; results/ort_ab_s8_fresh.json).
  Beside 2 busy processes one text is 0.81x plain's (never: 0.90x); in whole lookups
  there (benchmarks/spin_ab.py --busy 2, results/spin_ab_s8_busy2.json) the p50 is
  1.09x never spinning's and the p99 0.83x. onnxruntime's own spinning (``spin=True``:
  threads keep spinning after a run) made that p50 1.58x (results/spin_ab_busy2.json)
  and a hit cost 1.9-2.1x its embedding before this policy. ``spin_us=0`` for hosts
  whose cores are always busy.
  Inter-op parallelism is off (one sequential graph).
- The search takes no thread pool at all: exact shards score with FAISS's
  single-threaded SIMD kernel (``fvec_inner_products_ny``) instead of a BLAS
  matrix-vector product (``indexes/_faiss_shard.py``), and an IVF search of one query
  starts no OpenMP team. So by default semcache does *not* change the process-wide
  BLAS or OpenMP pools, which belong to the host application.
- ``blas`` / ``openmp`` (``set_threads(blas=1, openmp=1)``, ``$SEMCACHE_BLAS_THREADS``,
  ``$SEMCACHE_OPENMP_THREADS``): opt-in process-wide limits, applied through
  threadpoolctl (not environment variables) when the first embedder or index is built,
  or at once if one already was. Useful where the host's own numpy work shares the
  cores with lookups.

Nothing here runs at import time: importing semcache changes no process state.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from typing import Any

from ._errors import ConfigError

__all__ = ["ThreadPolicy", "apply_process_limits", "ort_session_options", "set_threads",
           "thread_policy", "torch_threads"]


@dataclass(frozen=True)
class ThreadPolicy:
    """What semcache's computations may use; see the module docstring."""

    compute: int
    spin_us: int | None = 30  # 0: never spin; None: onnxruntime's own spinning
    torch: int = 1
    blas: int | None = None
    openmp: int | None = None


_lock = threading.Lock()
_overrides: dict[str, Any] = {}  # what set_threads() was given; the rest is read from env
_applied: tuple[int | None, int | None] | None = None  # (blas, openmp) last applied
_torch_done = False


def _env_int(*names: str) -> int | None:
    for name in names:
        raw = os.environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"${name} must be an integer, got {raw!r}",
                              parameter=name) from None
        if value < 1:
            raise ConfigError(f"${name} must be >= 1, got {value}", parameter=name)
        return value
    return None


def _spin_env() -> int | None:
    raw = os.environ.get("SEMCACHE_SPIN_US", "").strip()
    if raw == "":
        return ThreadPolicy.spin_us
    if raw.lower() in ("default", "onnxruntime"):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"$SEMCACHE_SPIN_US must be an integer >= 0 or 'onnxruntime', "
                          f"got {raw!r}", parameter="SEMCACHE_SPIN_US") from None
    if value < 0:
        raise ConfigError(f"$SEMCACHE_SPIN_US must be >= 0, got {value}",
                          parameter="SEMCACHE_SPIN_US")
    return value


def _check(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ConfigError(f"{name} must be a positive int or None, got {value!r}",
                          parameter=name)
    return value


def _from_env() -> ThreadPolicy:
    compute = _env_int("SEMCACHE_THREADS", "SEMCACHE_ONNX_THREADS")
    return ThreadPolicy(compute=compute or min(2, os.cpu_count() or 1),
                        spin_us=_spin_env(),
                        torch=_env_int("SEMCACHE_TORCH_THREADS") or 1,
                        blas=_env_int("SEMCACHE_BLAS_THREADS"),
                        openmp=_env_int("SEMCACHE_OPENMP_THREADS"))


def thread_policy() -> ThreadPolicy:
    """The policy in force: ``set_threads`` settings over the environment's."""
    with _lock:
        overrides = dict(_overrides)
    return replace(_from_env(), **overrides)


_KEEP: Any = object()


def set_threads(compute: int | None = None, *, spin: bool | None = None,
                spin_us: int | None = _KEEP, torch: int | None = None,
                blas: int | None = _KEEP, openmp: int | None = _KEEP) -> ThreadPolicy:
    """Change the policy; returns the new one.

    ``compute``: threads per onnxruntime embedding (embedders loaded afterwards use
    it; a loaded session keeps its pool). ``spin_us``: microseconds an onnxruntime
    worker spins between a run's parallel sections before sleeping (0: never; None:
    onnxruntime's own spinning); ``spin=True`` is ``spin_us=None``, ``spin=False``
    ``spin_us=0``. ``torch``: torch's intra-op threads (set when
    the first sentence-transformers model loads). ``blas`` / ``openmp``: process-wide limits
    (None: leave the host's); applied now if an embedder or index was already built.
    """
    _check("compute", compute)
    _check("torch", torch)
    if spin_us is not _KEEP and spin_us is not None and (
            isinstance(spin_us, bool) or not isinstance(spin_us, int) or spin_us < 0):
        raise ConfigError(f"spin_us must be an int >= 0 or None, got {spin_us!r}",
                          parameter="spin_us")
    if spin is not None and spin_us is not _KEEP:
        raise ConfigError("give spin or spin_us, not both", parameter="spin")
    _check("blas", None if blas is _KEEP else blas)
    _check("openmp", None if openmp is _KEEP else openmp)
    changes: dict[str, Any] = {}
    if compute is not None:
        changes["compute"] = compute
    if torch is not None:
        changes["torch"] = torch
    if spin is not None:
        changes["spin_us"] = None if spin else 0
    if spin_us is not _KEEP:
        changes["spin_us"] = spin_us
    if blas is not _KEEP:
        changes["blas"] = blas
    if openmp is not _KEEP:
        changes["openmp"] = openmp
    with _lock:
        _overrides.update(changes)
        reapply = _applied is not None
    if reapply:
        apply_process_limits()
    return thread_policy()


def apply_process_limits() -> None:
    """Apply the opt-in process-wide BLAS/OpenMP limits (once per change). Called when
    an embedder or index is built; a no-op under the default policy."""
    global _applied
    p = thread_policy()
    want = (p.blas, p.openmp)
    with _lock:
        if _applied == want:
            return
        _applied = want
    if want == (None, None):
        return
    from threadpoolctl import threadpool_limits

    if p.blas is not None:
        threadpool_limits(limits=p.blas, user_api="blas")
    if p.openmp is not None:
        threadpool_limits(limits=p.openmp, user_api="openmp")


def ort_session_options(threads: int | None = None) -> Any:
    """onnxruntime ``SessionOptions`` under the policy (``threads`` overrides compute)."""
    import onnxruntime as ort

    p = thread_policy()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or p.compute
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spin = "0" if p.spin_us == 0 else "1"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if p.spin_us:  # read by onnxruntime 1.32 (the lock's); a version without it ignores it
        opts.add_session_config_entry("session.intra_op.spin_duration_us", str(p.spin_us))
    return opts


def torch_threads() -> None:
    """Give torch the policy's threads (once; torch's pools are process-wide and torch
    is only imported when a sentence-transformers embedder is used)."""
    global _torch_done
    if _torch_done:
        return
    import torch as _torch

    _torch.set_num_threads(thread_policy().torch)
    try:  # allowed only before torch's inter-op pool first runs
        _torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    _torch_done = True
