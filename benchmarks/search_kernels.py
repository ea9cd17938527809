"""Other kernels for the int8 copy's scan, each right after an embedding (issue #25).

    .venv/bin/python benchmarks/search_kernels.py                 # 10k rows, 300 texts
    .venv/bin/python benchmarks/search_kernels.py --rows 5000 --out x.json

Not a test, and nothing here ships: it records why the 4k-20k rows scan
(``Compact`` in semcache/indexes/_faiss_shard.py) is what it is. One context of real
Quora question embeddings plus the clustered filler of ``hit_latency.py``; for each
paraphrase query, the embedding of its text, then one kernel proposing its best 32 rows
(order rotated per query), then the same call again with warm caches:

- ``faiss_int8_signed``: what ships (FAISS's 8-bit direct signed codes), made to scan
  every one of its k-means lists, as it did before it had them;
- ``faiss_uint8_balanced``: 8-bit direct *unsigned* codes (FAISS can scan those with
  integer products) plus balance dimensions that give every row the same code sum, so
  the unsigned product ranks as the signed one (checked on the first query);
- ``onnxruntime_u8s8``: onnxruntime's MatMulInteger with the codes as a constant
  (pre-packed) initializer and the query as uint8, then ``argpartition``.

Also, for a PCA head of the rows (fitted on the first 4,000), how deep a candidate list
ranked by the head alone must go to hold the exact top 4 (the worst rank over the
queries): what an int8 scan of fewer dimensions would have to rescore. And the
exact scan of 2,000 float32 rows after touching 0-48 MB of other memory: what the CPU
caches keep between two lookups.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, filler, load_pairs  # noqa: E402

from semcache.embedders.onnx import OnnxEmbedder  # noqa: E402
from semcache.indexes._faiss_shard import Compact, scores  # noqa: E402

M = 32  # proposals, as the shipped copy asks for with k=4


def _int8_query(q: np.ndarray, comp: Compact) -> np.ndarray:
    return comp.query(q)[0]  # as the shipped kernel reads it


def kernels(vecs: np.ndarray, comp: Compact) -> dict[str, Callable[[np.ndarray], Any]]:
    import faiss
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n, d = vecs.shape
    codes = np.clip(np.rint(vecs * comp.scale), -127, 127)
    unsigned = codes + 128.0
    extra = 16 * int(np.ceil(float(np.ptp(unsigned.sum(axis=1))) / 255 / 16 + 1))
    need = unsigned.sum(axis=1).max() - unsigned.sum(axis=1)
    balance = np.zeros((n, extra), np.float32)
    for j in range(extra):
        balance[:, j] = np.minimum(need, 255.0)
        need -= balance[:, j]
    assert need.max() == 0
    quant = faiss.IndexFlatIP(d + extra)
    quant.add(np.zeros((1, d + extra), np.float32))
    byte = faiss.IndexIVFScalarQuantizer(quant, d + extra, 1,
                                         faiss.ScalarQuantizer.QT_8bit_direct,
                                         faiss.METRIC_INNER_PRODUCT, False)
    byte.train(np.zeros((1, d + extra), np.float32))
    byte.add(np.concatenate([unsigned, balance], axis=1).astype(np.float32))
    quant.this.disown()
    byte.own_fields = True
    one = faiss.SearchParametersIVF(nprobe=1)

    def uint8_balanced(q: np.ndarray) -> np.ndarray:
        w = np.concatenate([_int8_query(q, comp) + 128.0, np.full(extra, 128.0)])
        return byte.search(w[None].astype(np.float32), M, params=one)[1][0]

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "scan",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, d])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, n])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(codes.T.astype(np.int8)),
                                             "B")])
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString(), so,
        providers=["CPUExecutionProvider"])
    offset = 128 * codes.sum(axis=1).astype(np.int64)

    def ort_u8s8(q: np.ndarray) -> np.ndarray:
        a = (_int8_query(q, comp) + 128.0).astype(np.uint8)[None]
        y = sess.run(None, {"A": a})[0][0] - offset
        return np.argpartition(y, n - M)[n - M:]

    # the three rank the same rows: checked once, on exact integer products
    q0 = vecs[0]
    ref = set(np.argsort(-(codes @ _int8_query(q0, comp)), kind="stable")[:5].tolist())
    for f in (uint8_balanced, ort_u8s8):
        assert ref <= set(f(q0).tolist()), f.__name__
    return {"faiss_int8_signed": lambda q: comp.propose(q, M),
            "faiss_uint8_balanced": uint8_balanced, "onnxruntime_u8s8": ort_u8s8}


def head_depth(vecs: np.ndarray, qv: np.ndarray, dims: int, k: int = 4) -> dict[str, Any]:
    """The rank, by a ``dims``-dimension PCA head's score, of the last of each query's
    exact top ``k``: how many head-ranked candidates a rescoring would need."""
    _, _, vt = np.linalg.svd(vecs[:4000], full_matrices=False)
    head = vt[:dims].astype(np.float32)
    exact, approx = vecs @ qv.T, (vecs @ head.T) @ (qv @ head.T).T
    worst = []
    for j in range(qv.shape[0]):
        pos = np.empty(len(vecs), np.int64)
        pos[np.argsort(-approx[:, j], kind="stable")] = np.arange(len(vecs))
        worst.append(int(pos[np.argsort(-exact[:, j], kind="stable")[:k]].max()))
    w = np.asarray(worst)
    return {"dims": dims, "worst_rank_of_exact_top4": int(w.max()),
            "p99_rank": float(np.percentile(w, 99)), "share_within_32": float((w < 32).mean()),
            "share_within_128": float((w < 128).mean())}


def touched(rows: np.ndarray, q: np.ndarray, repeats: int = 300) -> list[dict[str, Any]]:
    out = []
    for mb in (0, 2, 8, 16, 24, 48):
        junk = np.ones(max(1, mb) * 2 ** 18, np.float32)
        ts = []
        for _ in range(repeats):
            if mb:
                junk += 1.0
            t0 = time.perf_counter()
            scores(rows, q)
            ts.append(time.perf_counter() - t0)
        out.append({"touched_mb": mb, "scan_p50_ms": round(float(np.median(ts)) * 1e3, 3)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_kernels.json"))
    args = ap.parse_args(argv)
    pairs, other = load_pairs(QQP, args.texts, 2_000)
    emb = OnnxEmbedder(cache_size=0)
    queries = [b for _, b in pairs]
    qv = emb.embed(queries)
    stored = emb.embed([a for a, _ in pairs])
    rng = np.random.default_rng(25)
    vecs = np.concatenate([stored, filler(rng, emb.embed(other), args.rows - len(stored))])
    vecs = np.ascontiguousarray(vecs[rng.permutation(len(vecs))], np.float32)
    comp = Compact(vecs, np.arange(len(vecs)), nprobe=1 << 30)  # every list: a whole scan
    fs = kernels(vecs, comp)
    truth = np.argmax(vecs @ qv.T, axis=0)
    cold: dict[str, list[float]] = {k: [] for k in fs}
    warm: dict[str, list[float]] = {k: [] for k in fs}
    found = dict.fromkeys(fs, 0)
    names = list(fs)
    for r in range(args.repeats):
        for i, q in enumerate(qv):
            for name in names[(i + r) % len(names):] + names[:(i + r) % len(names)]:
                emb.embed([queries[i]])
                t0 = time.perf_counter()
                got = fs[name](q)
                cold[name].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                fs[name](q)
                warm[name].append(time.perf_counter() - t0)
                found[name] += int(truth[i]) in set(got.tolist())
    result: dict[str, Any] = {
        "issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/search_kernels.py " + " ".join(argv or sys.argv[1:]),
        "cores": os.cpu_count(), "loadavg_before": os.getloadavg(), "rows": len(vecs),
        "texts": len(queries), "proposals": M,
        "kernels": {k: {"after_embedding_p50_ms": round(float(np.median(cold[k])) * 1e3, 3),
                        "warm_p50_ms": round(float(np.median(warm[k])) * 1e3, 3),
                        "top1_in_proposals": round(found[k] / len(cold[k]), 4)}
                    for k in fs},
        "pca_head": [head_depth(vecs, qv, d) for d in (96, 128, 192)],
        "exact_scan_2000_rows_after_touching": touched(vecs[:2000].copy(), qv[0]),
    }
    result["loadavg_after"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
