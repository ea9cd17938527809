"""The 1M-entry search, on real-embedding data: which IVF layout meets <= 1 ms p50 at
recall@1 >= 0.99 (issue #25), measured, not guessed.

    .venv/bin/python benchmarks/search_1m.py                       # 1M, the sweep
    .venv/bin/python benchmarks/search_1m.py --n 200000 --nlist 512 1024 --nprobe 8 16

Data as ``hit_latency.py``: one side of Quora label-1 pairs embedded by the default ONNX
embedder (the stored questions), the context filled to ``--n`` with clustered filler
around real question embeddings; queries are the other side of each pair (paraphrases),
truth is the brute-force top-1 over all ``--n`` rows. For each ``nlist`` an
``IndexIVFScalarQuantizer`` with FAISS's trained 8-bit codes is built, as
``_faiss_shard.IVF`` built it until 2026-12-07 (it has the int8 copy's direct codes
since: the ``FaissIndex`` run below is the index as shipped), then for each
``nprobe`` one query at a time on one thread (as a lookup searches): the IVF proposes
``max(4k, 32)`` ids and they are rescored exactly, which is the search a hit pays.
Last, the index itself (``FaissIndex``, its defaults) is searched the same way.
Writes ``benchmarks/results/search_1m.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, filler, load_pairs  # noqa: E402

from semcache.embedders.onnx import OnnxEmbedder  # noqa: E402
from semcache.indexes._faiss_shard import REPROBE_BELOW, scores  # noqa: E402
from semcache.indexes.base import IndexEntry  # noqa: E402
from semcache.indexes.faiss import FaissIndex  # noqa: E402


def build(x: np.ndarray, nlist: int) -> Any:
    import faiss

    n, dim = x.shape
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist,
                                          faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    sample = x
    if n > 64 * nlist:
        sample = x[np.sort(np.random.default_rng(n).choice(n, 64 * nlist, replace=False))]
    if len(sample) < 20_000:
        index.sq.rangestat_arg = 0.5  # as the IVF was: a small sample's range widened
    index.train(sample)
    index.add(x)
    quantizer.this.disown()  # type: ignore[attr-defined]
    index.own_fields = True
    return index


def timed(fn: Any, qs: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    lat, good = [], 0
    for q, t in zip(qs, truth):
        t0 = time.perf_counter()
        best = fn(q)
        lat.append(time.perf_counter() - t0)
        good += best == t
    ms = np.asarray(lat) * 1e3
    return {"recall_at_1": round(good / len(qs), 4), "p50_ms": round(float(np.median(ms)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--centres", type=int, default=2000)
    ap.add_argument("--nlist", type=int, nargs="*", default=[1000, 2048])
    ap.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 24, 32, 48])
    ap.add_argument("--no-index", action="store_true", help="skip the FaissIndex run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_1m.json"))
    args = ap.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(2)  # building may use both cores; each search is 1 query
    pairs, other = load_pairs(QQP, args.pairs, args.centres)
    emb = OnnxEmbedder(cache_size=0)
    t0 = time.perf_counter()
    stored = emb.embed([a for a, _ in pairs])
    qs = emb.embed([b for _, b in pairs])
    centres = emb.embed(other)
    embed_s = time.perf_counter() - t0
    x = np.empty((args.n, stored.shape[1]), np.float32)
    x[:len(stored)] = stored
    x[len(stored):] = filler(np.random.default_rng(25), centres, args.n - len(stored))
    truth = np.concatenate([(x @ qs[s:s + 100].T).argmax(0) for s in range(0, len(qs), 100)])
    result: dict[str, Any] = {
        "issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "n": args.n, "queries": len(qs), "cores": os.cpu_count(),
        "loadavg_before": os.getloadavg(), "embed_s": round(embed_s, 1),
        "faiss": faiss.__version__,
        "truth_is_stored_pair": round(float(np.mean(truth == np.arange(len(qs)))), 3),
        "layouts": []}
    print(json.dumps({k: v for k, v in result.items() if k != "layouts"}), flush=True)
    for nlist in args.nlist:
        t0 = time.perf_counter()
        index = build(x, nlist)
        row: dict[str, Any] = {"nlist": nlist, "build_s": round(time.perf_counter() - t0, 1),
                               "nprobe": {}}
        faiss.omp_set_num_threads(1)
        for nprobe in args.nprobe:
            params = faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]

            wide = faiss.SearchParametersIVF(nprobe=4 * nprobe)  # type: ignore[call-arg]

            def search(q: np.ndarray, index: Any = index, params: Any = params,
                       wide: Any = wide) -> int:
                _, ids = index.search(q[None, :], 32, params=params)
                rows = ids[0][ids[0] >= 0]
                sims = scores(x[rows], q)
                if float(sims.max()) < REPROBE_BELOW:  # as the shard: nothing near, wider
                    _, ids = index.search(q[None, :], 32, params=wide)
                    rows = ids[0][ids[0] >= 0]
                    sims = scores(x[rows], q)
                return int(rows[int(np.argmax(sims))])

            row["nprobe"][str(nprobe)] = timed(search, qs, truth)
        faiss.omp_set_num_threads(2)
        del index
        result["layouts"].append(row)
        print(json.dumps(row), flush=True)
    if not args.no_index:
        idx = FaissIndex(x.shape[1])
        t0 = time.perf_counter()
        idx.add([IndexEntry(f"n:{i}", "big", "n", "", 0.0, None) for i in range(args.n)], x)
        build_s = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        keys = np.array([f"n:{i}" for i in truth])
        r = timed(lambda q: idx.search(q, "big", k=1)[0].key, qs, keys)
        result["faiss_index"] = {"build_s": round(build_s, 1), "nprobe": idx.nprobe, **r}
        print(json.dumps(result["faiss_index"]), flush=True)
        idx.close()
    result["loadavg_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
