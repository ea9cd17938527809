"""onnxruntime spin-waiting inside whole lookups, on free and on busy cores (issue #25).

    .venv/bin/python benchmarks/spin_ab.py                 # cores otherwise idle
    .venv/bin/python benchmarks/spin_ab.py --busy 2        # 2 busy-loop processes beside it

One process, one ``faiss-semantic`` cache of 2,000 Quora questions (the stored side of
label-1 pairs; LRU off, so every lookup embeds), and one onnxruntime session per
setting on the same export: ``off`` (semcache's default: no spin-waiting), ``run``
(spin inside a run, stop when it returns: ``session.force_spinning_stop``) and ``on``
(onnxruntime's own default: threads keep spinning after a run), ``short10``,
``short30``, ``short50``, ``short100`` (spin at most 10-100 microseconds after each parallel
section, then sleep: ``session.intra_op.spin_duration_us``). The embedder's session
is swapped between blocks of 20 texts, in rotating order, so each setting runs after
itself and every setting sees the same minutes:

- one stream: per paraphrase, the embedding alone, then the whole lookup (exact stage,
  embed, search, verifier, fetch); p50/p90/p99 of both and the lookup's time beyond its
  embedding;
- 8 threads: the embedder alone, then the lookups, over the same texts, per setting in
  rotating rounds; throughput and lookup p50/p99.

``--busy N`` starts N processes that only spin a Python loop for the whole run: a host
whose cores are shared with other work. Writes one JSON (``--out``). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, busy_processes, load_pairs, req, stats  # noqa: E402

import semcache.embedders.onnx as onnx_mod  # noqa: E402
from semcache import Cache  # noqa: E402
from semcache._threads import ort_session_options  # noqa: E402
from semcache.embedders.onnx import OnnxEmbedder, ensure_onnx  # noqa: E402

#: setting -> extra session config entries over semcache's own options
SETTINGS: dict[str, dict[str, str]] = {
    "off": {},
    "run": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    "on": {"session.intra_op.allow_spinning": "1"},
    # spin at most this long after a parallel section before sleeping (onnxruntime 1.2x+)
    **{f"short{us}": {"session.intra_op.allow_spinning": "1",
                      "session.intra_op.spin_duration_us": str(us)} for us in (10, 30, 50, 100)},
}


def runtime(setting: str, threads: int) -> Any:
    """A fresh ``_Runtime`` of the default export whose session uses ``setting``."""
    def opts(n: int | None = None) -> Any:
        o = ort_session_options(n)
        for k, v in SETTINGS[setting].items():
            o.add_session_config_entry(k, v)
        return o

    saved = onnx_mod.ort_session_options
    onnx_mod.ort_session_options = opts  # the runtime builds its options through this name
    try:
        return onnx_mod._Runtime(ensure_onnx("all-MiniLM-L6-v2", "fp32"), threads)
    finally:
        onnx_mod.ort_session_options = saved


def pcts(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {f"p{p}_ms": round(float(np.percentile(a, p)), 3) for p in (50, 90, 99)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=300, help="paraphrase queries")
    ap.add_argument("--rounds", type=int, default=4, help="one-stream passes over the texts")
    ap.add_argument("--rounds8", type=int, default=6, help="8-thread rounds per setting")
    ap.add_argument("--busy", type=int, default=0, help="busy-loop processes beside the run")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    out_path = Path(args.out or ROOT / "benchmarks" / "results" /
                    f"spin_ab{'_busy' + str(args.busy) if args.busy else ''}.json")

    pairs, _ = load_pairs(QQP, args.texts, 10)
    emb = OnnxEmbedder(cache_size=0)
    cache = Cache(type="faiss-semantic", embedder=emb, similarity_threshold=0.8)
    for a, _ in pairs:
        cache.add_cache({"answer": f"answer to {a}"}, **req(a))
    rts = {s: runtime(s, emb.threads) for s in args.settings}
    texts = [b for _, b in pairs]
    busy = ExitStack()
    busy.enter_context(busy_processes(args.busy))
    result: dict[str, Any] = {
        "issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(), "busy_processes": args.busy, "texts": len(texts),
        "command": "python benchmarks/spin_ab.py " + " ".join(argv or sys.argv[1:]),
        "loadavg_before": os.getloadavg(), "settings": {}}
    try:
        one: dict[str, dict[str, list[float]]] = {s: {"embed": [], "lookup": []} for s in rts}
        names = list(rts)
        for rnd in range(args.rounds):
            for b, s0 in enumerate(range(0, len(texts), 20)):
                k = (b + rnd) % len(names)
                for s in names[k:] + names[:k]:
                    emb._rt = rts[s]
                    for t in texts[s0:s0 + 20]:
                        t0 = time.perf_counter()
                        emb.embed([t])
                        t1 = time.perf_counter()
                        cache.lookup(**req(t))
                        one[s]["embed"].append(t1 - t0)
                        one[s]["lookup"].append(time.perf_counter() - t1)
        eight: dict[str, dict[str, list[Any]]] = {s: {"embed": [], "lookup": [], "lat": []}
                                                  for s in rts}
        for rnd in range(args.rounds8):
            k = rnd % len(names)
            for s in names[k:] + names[:k]:
                emb._rt = rts[s]
                for kind in ("embed", "lookup"):
                    lat: list[float] = []

                    def call(t: str, kind: str = kind, lat: list[float] = lat) -> None:
                        t0 = time.perf_counter()
                        if kind == "embed":
                            emb.embed([t])
                        else:
                            cache.lookup(**req(t))
                        lat.append(time.perf_counter() - t0)

                    t0 = time.perf_counter()
                    with ThreadPoolExecutor(8) as ex:
                        list(ex.map(call, texts[:160]))
                    eight[s][kind].append(160 / (time.perf_counter() - t0))
                    if kind == "lookup":
                        eight[s]["lat"] += lat
        result["loadavg_after"] = os.getloadavg()
    finally:
        busy.close()
    for s in rts:
        e, lk = one[s]["embed"], one[s]["lookup"]
        extra = [b - a for a, b in zip(e, lk)]
        e_rate, l_rate = float(np.mean(eight[s]["embed"])), float(np.mean(eight[s]["lookup"]))
        result["settings"][s] = {
            "config": SETTINGS[s],
            "one_stream": {"embed": pcts(e), "lookup": pcts(lk),
                           "lookup_beyond_embed_p50_ms": round(float(np.median(extra)) * 1e3, 3),
                           "lookup_p99_over_p50": round(stats(lk)["p99_ms"] / stats(lk)["p50_ms"], 3)},
            "threads8": {"embed_per_s": round(e_rate, 1), "lookup_per_s": round(l_rate, 1),
                         "lookup_over_embed": round(l_rate / e_rate, 3),
                         "lookup": pcts(eight[s]["lat"])}}
    base = result["settings"].get("off")
    if base:
        for s, r in result["settings"].items():
            r["vs_off"] = {
                "one_stream_lookup_p50": round(r["one_stream"]["lookup"]["p50_ms"] /
                                               base["one_stream"]["lookup"]["p50_ms"], 3),
                "one_stream_lookup_p99": round(r["one_stream"]["lookup"]["p99_ms"] /
                                               base["one_stream"]["lookup"]["p99_ms"], 3),
                "threads8_lookup_per_s": round(r["threads8"]["lookup_per_s"] /
                                               base["threads8"]["lookup_per_s"], 3)}
    print(json.dumps(result["settings"], indent=1))
    out_path.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
