"""onnxruntime session settings for the embedder, A/B in one process (issue #25).

    .venv/bin/python benchmarks/ort_ab.py            # 300 texts, 3 rounds
    .venv/bin/python benchmarks/ort_ab.py --texts 120 --rounds 4 --fresh \
        --configs plain t2_nospin t2_spin10us t2_spin30us t2_spin100us [--busy 2]

Sessions on the same export, tokenized the same way: plain onnxruntime (default
options: all cores, spinning), and semcache's candidates (intra-op threads 1 or 2,
spinning on or off, inter-op 1, sequential). One text at a time, in blocks of
``--block`` texts per config, configs in rotating order (until issue #25's s4 work it
was text by text, which timed each config after another's spinning threads); then 8
threads, config after config in rotating rounds. On a
shared machine only the ratios between configs of one run mean anything, so each
figure is the median over rounds of the config's value over plain onnxruntime's.
``--fresh`` builds new sessions every round (two sessions with the same settings
differed by up to 20% in one process, so one session per config measures where its
weights landed as much as its settings); ``--busy N`` runs N busy-loop processes beside
the measurement. Writes ``benchmarks/results/ort_ab.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _bench_data import QQP, busy_processes, load_pairs, stats  # noqa: E402

from semcache.embedders.onnx import OnnxEmbedder, ensure_onnx  # noqa: E402

#: name -> (intra-op threads, spinning, stop spinning when the last run returns,
#: microseconds a worker spins before it sleeps: onnxruntime's
#: ``session.intra_op.spin_duration_us``, None for its default); None: plain defaults
CONFIGS: dict[str, tuple[int, bool, bool, int | None] | None] = {
    "plain": None, "t2_nospin": (2, False, False, None), "t2_spin": (2, True, False, None),
    "t1": (1, False, False, None), "t2_spinstop": (2, True, True, None),
    **{f"t2_spin{us}us": (2, True, False, us) for us in (10, 30, 50, 100, 300)},
    **{f"t2_spinstop{us}us": (2, True, True, us) for us in (30, 100)}}
DEFAULT_CONFIGS = ["plain", "t2_nospin", "t2_spin", "t1"]


def session(folder: Path, cfg: tuple[int, bool, bool, int | None] | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if cfg is not None:
        threads, spin, stop, spin_us = cfg
        if stop:  # spin between a run's parallel sections only, not after it returns
            opts.add_session_config_entry("session.force_spinning_stop", "1")
        if spin_us is not None:
            opts.add_session_config_entry("session.intra_op.spin_duration_us", str(spin_us))
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(folder / "model.onnx"), opts,
                                providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block", type=int, default=20,
                    help="texts each config runs in a row before the next config")
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    ap.add_argument("--fresh", action="store_true",
                    help="build new sessions for every round")
    ap.add_argument("--busy", type=int, default=0,
                    help="CPU-bound processes to run beside the measurement (a loaded "
                         "machine, in the same run as the quiet one when run twice)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ort_ab.json"))
    args = ap.parse_args(argv)
    with busy_processes(args.busy):
        return _measure(args, "python benchmarks/ort_ab.py " +
                        " ".join(sys.argv[1:] if argv is None else argv))


def _measure(args: argparse.Namespace, command: str) -> int:
    from tokenizers import Tokenizer

    pairs, _ = load_pairs(QQP, args.texts, 0)
    texts = [b for _, b in pairs]
    folder = ensure_onnx("all-MiniLM-L6-v2", OnnxEmbedder().variant)
    manifest = json.loads((folder / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(manifest["max_seq_length"])
    feeds = []
    for t in texts:
        e = tok.encode(t)
        ids = np.asarray([e.ids], np.int64)
        feeds.append({"input_ids": ids, "attention_mask": np.asarray([e.attention_mask],
                                                                     np.int64),
                      "token_type_ids": np.zeros_like(ids)})
    sess = {name: session(folder, CONFIGS[name]) for name in args.configs}
    names = {n: [i.name for i in s.get_inputs()] for n, s in sess.items()}

    def run(name: str, f: dict[str, np.ndarray]) -> None:
        sess[name].run(None, {k: f[k] for k in names[name]})

    for name in sess:  # warm-up
        for f in feeds[:10]:
            run(name, f)
    result: dict[str, Any] = {"issue": 25, "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                 time.gmtime()),
                              "cores": os.cpu_count(), "texts": len(texts),
                              "busy_processes": args.busy, "fresh_sessions": args.fresh,
                              "command": command,
                              "loadavg_before": os.getloadavg(), "rounds": []}
    order = list(sess)
    for rnd in range(args.rounds):
        if args.fresh and rnd:
            # new sessions each round: two sessions with the same settings differed by up
            # to 20% in one process (where their weights and arenas landed), so one
            # session per config measures the session as much as the config
            sess.clear()
            sess.update({name: session(folder, CONFIGS[name]) for name in args.configs})
            for name in sess:
                for f in feeds[:10]:
                    run(name, f)
        lat: dict[str, list[float]] = {n: [] for n in sess}
        # in blocks of --block texts, config after config in rotating order: text by
        # text, a spinning session's threads (plain's default) spin into the *next*
        # config's run, so each config was timed after another's leftovers
        for b, s in enumerate(range(0, len(feeds), args.block)):
            k = (b + rnd) % len(order)
            for name in order[k:] + order[:k]:
                for f in feeds[s:s + args.block]:
                    t0 = time.perf_counter()
                    run(name, f)
                    lat[name].append(time.perf_counter() - t0)
        single = {n: stats(v) for n, v in lat.items()}
        conc: dict[str, Any] = {}
        for name in order[rnd % len(order):] + order[:rnd % len(order)]:
            each: list[float] = []

            def one(f: dict[str, np.ndarray], name: str = name,
                    each: list[float] = each) -> None:
                t0 = time.perf_counter()
                run(name, f)
                each.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, feeds))
            conc[name] = {"per_s": round(len(feeds) / (time.perf_counter() - t0), 1),
                          **stats(each)}
        row = {"single": single, "threads8": conc}
        result["rounds"].append(row)
        print(json.dumps(row), flush=True)
    ratio: dict[str, Any] = {}
    for n in sess:
        ratio[n] = {
            "single_p50_over_plain": round(float(np.median(
                [r["single"][n]["p50_ms"] / r["single"]["plain"]["p50_ms"]
                 for r in result["rounds"]])), 3) if "plain" in sess else None,
            "single_p99_over_p50": round(float(np.median(
                [r["single"][n]["p99_ms"] / r["single"][n]["p50_ms"]
                 for r in result["rounds"]])), 3),
            "threads8_rate_over_plain": round(float(np.median(
                [r["threads8"][n]["per_s"] / r["threads8"]["plain"]["per_s"]
                 for r in result["rounds"]])), 3) if "plain" in sess else None}
    result["median_ratios"] = ratio
    result["loadavg_after"] = os.getloadavg()
    print(json.dumps(ratio, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
