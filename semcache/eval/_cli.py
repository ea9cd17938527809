"""``semcache eval pairs | replay | multiturn``: thin argument handling over the library."""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import InvalidRequestError

__all__ = ["add_parser", "parse_params", "parse_thresholds"]

#: the most thresholds a --thresholds spec may make (each one is a replay)
MAX_THRESHOLDS = 10_001


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {n}")
        return n
    return parse


#: 0 pairs, 0 seeds, a batch of 0 mean nothing (--limit 0 used to read one pair,
#: --sample 0 all of them)
_positive = _int_at_least(1)
#: numpy's ``default_rng`` refuses a negative seed, after the file was read
_seed = _int_at_least(0)
#: --min-group: a paraphrase group is a connected component of positive pairs, so it
#: has at least 2 questions; below 2 every lone question would count as one
_group_size = _int_at_least(2)


def _unit(text: str) -> float:
    """An argparse type: a similarity in [0, 1] (NaN is not one)."""
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return x


def _path(text: str) -> str:
    """An argparse type: a non-empty path (an empty one was skipped as if not given:
    no report, exit 0)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return text


def _user_errors(func: Callable[[argparse.Namespace], int]
                 ) -> Callable[[argparse.Namespace], int]:
    """A report or plot path that cannot be written (a folder, a file where a folder is
    wanted, no permission) is the user's to fix: a message, not a traceback."""
    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise InvalidRequestError(f"{where}{exc.strerror or exc}") from None
    return run


def add_parser(subparsers: Any) -> None:
    help_ = "measure thresholds and caches on labeled data (pairs, replay, multiturn)"
    parser = subparsers.add_parser("eval", help=help_, description=help_)
    sub = parser.add_subparsers(dest="eval_command", metavar="MODE", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default=None,
                       help="embedding model: a name (default all-MiniLM-L6-v2) or a "
                            "local sentence-transformers folder")
        p.add_argument("--json", metavar="PATH", type=_path, help="write the report as JSON")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    def data(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", help="labeled pairs: JSONL, JSON, CSV or TSV (.gz allowed)")
        p.add_argument("--format", choices=("jsonl", "json", "csv", "tsv"),
                       help="file format (default: from the suffix / first line)")
        p.add_argument("--query-col")
        p.add_argument("--candidate-col")
        p.add_argument("--label-col")
        p.add_argument("--limit", type=_positive, help="read only the first N pairs")
        p.add_argument("--sample", type=_positive, help="use N pairs drawn at random")
        p.add_argument("--seed", type=_seed, default=0, help="seed of --sample")
        p.add_argument("--part", choices=("all", "tune", "test"), default="all",
                       help="split the pairs by question group (connected components: "
                            "no question on both sides) and use one part: choose "
                            "thresholds on tune, report on test")
        p.add_argument("--split-seed", type=_seed, default=0, help="seed of --part")

    def cache(p: argparse.ArgumentParser) -> None:
        p.add_argument("--type", default="faiss-semantic", help="cache type (Cache(type=))")
        p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a Cache parameter (repeatable); VALUE is read as JSON when "
                            "it parses, else as a string")
        p.add_argument("--threshold", type=float,
                       help="similarity_threshold (same as --param similarity_threshold=)")
        p.add_argument("--llm-model", default="gpt-4o-mini",
                       help="the model named in the replayed requests and price table")
        p.add_argument("--no-precompute", action="store_true",
                       help="embed each request when the cache asks (true per-request "
                            "embed latency; slow) instead of batching all texts up front")
        p.add_argument("--embedding-cache", metavar="DIR", type=_path,
                       help="keep precomputed embeddings as .npy here and reuse them")

    p = sub.add_parser("pairs", help="threshold sweep over labeled pairs")
    data(p)
    common(p)
    p.add_argument("--target-precision", type=float, default=0.95)
    p.add_argument("--out", metavar="DIR", type=_path,
                   help="write report.json and PNG plots here")
    p.add_argument("--batch-size", type=_positive, default=256)
    p.add_argument("--embedding-cache", metavar="DIR", type=_path,
                   help="keep embeddings as .npy here and reuse them on the next run")
    p.set_defaults(func=_user_errors(_run_pairs))

    p = sub.add_parser("replay", help="stream labeled pairs through a real Cache")
    data(p)
    common(p)
    cache(p)
    p.add_argument("--price-per-1k-input", type=float, default=0.0)
    p.add_argument("--price-per-1k-output", type=float, default=0.0)
    p.add_argument("--price-table", metavar="JSON", type=_path,
                   help='{"model": {"input_per_1k": .., "output_per_1k": ..}}')
    p.add_argument("--store-misses", action="store_true",
                   help="store each missed query too (a log that fills the cache)")
    g = p.add_argument_group(
        "error-bounded hits",
        "with --target-error-rate: split the pairs by question group into a tuning and a "
        "test part, build a query stream from each (paraphrase groups joined through "
        "shared questions, their labeled negatives), tune the static threshold on the "
        "tuning stream, and replay it, the hindsight-best static threshold and the "
        "verified policy at each target on the test stream, with the labels as the "
        "judge; the hand-built order-sensitive pairs in their own table")
    g.add_argument("--target-error-rate", type=float, nargs="+", metavar="R",
                   help="targets of the verified policy, e.g. 0.01 0.02 0.05")
    g.add_argument("--thresholds", default="0.5:0.99:0.01", metavar="LO:HI:STEP|A,B,..",
                   help="static thresholds to sweep (default 0.5:0.99:0.01)")
    g.add_argument("--seeds", type=_positive, default=1,
                   help="splits and stream shuffles (default 1; report 3 or more)")
    g.add_argument("--test-fraction", type=float, default=0.5,
                   help="share of the pairs in the test part (default 0.5)")
    g.add_argument("--exhaustive", action="store_true",
                   help="replay every threshold of --thresholds on both parts, instead "
                        "of bisecting for each target's best (about 5x the replays)")
    g.add_argument("--in-sample", action="store_true",
                   help="the old comparison: one stream from all the pairs with the "
                        "hand-built pairs mixed in, the best static threshold chosen "
                        "with hindsight on it (no split: not an honest figure)")
    g.add_argument("--floor", type=_unit, default=0.7,
                   help="the verified policy's similarity floor (default 0.7)")
    g.add_argument("--min-group", type=_group_size, default=3,
                   help="smallest paraphrase group in the stream (at least 2; default 3)")
    g.add_argument("--truth", choices=("labeled", "strict"), default="labeled",
                   help="a hit on another answer class is wrong only when the pairs "
                        "label it so, and left out otherwise (labeled, the default), "
                        "or always wrong (strict)")
    g.add_argument("--no-hard-pairs", action="store_true",
                   help="leave out the built-in order-sensitive and negation pairs")
    g.add_argument("--verifier", default=None, metavar="NAME",
                   help="the verified policy's verifier (Cache(verifier=); 'none': the "
                        "cosine alone; default: structural, as for target_error_rate=)")
    g.add_argument("--policy-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a VerifiedPolicy option (repeatable), e.g. confidence=0.95, "
                        "per=hit, audit_rate=0.03")
    g.add_argument("--out", metavar="DIR", type=_path,
                   help="write report.json and policies.png here")
    p.set_defaults(func=_user_errors(_run_replay))

    p = sub.add_parser("multiturn",
                       help="false hits of follow-ups across conversations, with the "
                            "default context scoping and without it")
    p.add_argument("paths", nargs="+", help="conversation JSON files")
    common(p)
    cache(p)
    p.set_defaults(func=_user_errors(_run_multiturn))


def parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        except (ValueError, RecursionError):  # JSON, but too long a number or too deep
            from ._data import _parse_json

            out[key] = _parse_json(raw, f"--param {key}")  # raises, naming which
    return out


def _progress(args: argparse.Namespace) -> bool | None:
    return False if args.quiet else None


def _load(args: argparse.Namespace):
    from ._data import load_pairs

    cols = (args.query_col, args.candidate_col, args.label_col)
    if any(cols) and not all(cols):
        raise InvalidRequestError("give all of --query-col, --candidate-col and "
                                  "--label-col, or none")
    pairs = load_pairs(args.path, fmt=args.format, columns=cols if all(cols) else None,
                       limit=args.limit)
    pairs = pairs.sample(args.sample, args.seed) if args.sample else pairs
    if getattr(args, "part", "all") != "all":
        from .split import check_splittable, group_split

        check_splittable(pairs)
        pairs = getattr(group_split(pairs, seed=args.split_seed), args.part)
    return pairs


def _emit(report: Any, args: argparse.Namespace) -> None:
    print(report.summary())
    if args.json:
        report.write_json(args.json)
        print(f"report: {args.json}", file=sys.stderr)


def _run_pairs(args: argparse.Namespace) -> int:
    from .pairs import evaluate_pairs

    if not 0 < args.target_precision <= 1:  # NaN too; before minutes of embedding
        raise InvalidRequestError(
            f"--target-precision: target precision must be in (0, 1], got "
            f"{args.target_precision}")
    pairs = _load(args)
    report = evaluate_pairs(pairs, args.model, target_precision=args.target_precision,
                            batch_size=args.batch_size, cache_dir=args.embedding_cache,
                            show_progress=_progress(args))
    print(report.table(extra=tuple(t for t in (report.threshold_for_target,) if t)))
    print()
    _emit(report, args)
    if args.out:
        out = Path(args.out)
        written = [report.write_json(out / "report.json"), *report.plot(out)]
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def make_cache_factory(args: argparse.Namespace, texts: list[str] | None = None):
    """A function building the ``Cache`` the arguments describe (fresh each call). With
    ``texts`` (and no --no-precompute) a semantic cache gets a ``PrecomputedEmbedder``
    holding their vectors, computed once in batches."""
    from .._cache import Cache
    from .._registry import TYPES, get_embedder
    from ._embed import PrecomputedEmbedder

    params = parse_params(args.param)
    if args.threshold is not None:
        params["similarity_threshold"] = args.threshold
    params.setdefault("namespace", "semcache-eval")
    spec = TYPES.get(args.type)
    semantic = spec is None or spec.semantic
    if semantic and texts is not None and not args.no_precompute:
        base = get_embedder(params.pop("embedder", None) or args.model)
        params["embedder"] = PrecomputedEmbedder.build(
            base, texts, cache_dir=args.embedding_cache, show_progress=_progress(args))
    elif args.model is not None and semantic:
        params["embedder"] = args.model

    def make(**override: Any) -> Cache:
        return Cache(type=args.type, **{**params, **override})

    return make


def _prices(args: argparse.Namespace):
    from .replay import Prices, load_price_table

    if args.price_table:
        return load_price_table(args.price_table, args.llm_model)
    return Prices(args.price_per_1k_input, args.price_per_1k_output)


def parse_thresholds(spec: str) -> tuple[float, ...]:
    """``LO:HI:STEP`` (inclusive) or a comma-separated list, each in [0, 1]."""
    try:
        if ":" in spec:
            lo, hi, step = (float(x) for x in spec.split(":"))
            if not all(map(math.isfinite, (lo, hi, step))) or step <= 0 or hi < lo:
                raise ValueError
            if not 0 <= lo <= hi <= 1:
                raise InvalidRequestError(f"--thresholds must lie in [0, 1]; got {spec!r}")
            n = int((hi - lo) / step + 1e-9) + 1
            if n > MAX_THRESHOLDS:  # a step of 1e-300 asked for 1e300 of them (a hang)
                raise InvalidRequestError(
                    f"--thresholds {spec!r} makes {n:.3g} thresholds; at most "
                    f"{MAX_THRESHOLDS} (a STEP of at least {1 / (MAX_THRESHOLDS - 1):g})")
            out = tuple(round(lo + step * i, 6) for i in range(n))
        else:
            out = tuple(float(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise InvalidRequestError(f"--thresholds takes LO:HI:STEP or A,B,..; got {spec!r}") \
            from None
    if not out or any(not 0 <= t <= 1 for t in out):
        raise InvalidRequestError(f"--thresholds must lie in [0, 1]; got {spec!r}")
    return out


def _run_policy_replay(args: argparse.Namespace) -> int:
    from .._registry import get_embedder
    from ..policies.verified import VerifiedPolicy
    from ._embed import PrecomputedEmbedder
    from .policies import compare_policies
    from .streams import order_sensitive_pairs

    targets = tuple(args.target_error_rate)
    thresholds = parse_thresholds(args.thresholds)
    options = parse_params(args.policy_param)
    try:  # every target and option checked before minutes of embedding
        for t in targets:
            VerifiedPolicy(t, **options)
    except TypeError as exc:  # an option VerifiedPolicy does not take
        raise InvalidRequestError(f"--policy-param: {exc}") from None
    if not 0 < args.test_fraction < 1:
        raise InvalidRequestError(f"--test-fraction must be in (0, 1), got {args.test_fraction}")
    if args.verifier not in (None, "none"):
        from ..verifiers import resolve_verifier

        resolve_verifier(args.verifier)  # an unknown name fails before the embedding
    pairs = _load(args)
    if not args.in_sample:
        from .split import check_splittable

        check_splittable(pairs)
    if args.in_sample:
        texts = pairs.queries + pairs.candidates + [q for p in order_sensitive_pairs()
                                                    for q in p]
    else:  # only what the streams ask (on Quora a tenth of the pairs' texts)
        from .split_replay import stream_texts

        texts = stream_texts(pairs, min_group=args.min_group,
                             hard_pairs=not args.no_hard_pairs)
    embedder = PrecomputedEmbedder.build(get_embedder(args.model), texts,
                                         cache_dir=args.embedding_cache,
                                         show_progress=_progress(args))

    def note(name: str, seed: int, r: Any) -> None:
        if not args.quiet:
            print(f"stream {seed} {name}: hit rate {r.hit_rate:.3f}, error "
                  f"{r.error_rate:.4f}", file=sys.stderr, flush=True)

    report: Any
    if args.in_sample:
        report = compare_policies(
            zip(pairs.queries, pairs.candidates, (int(x) for x in pairs.labels)), embedder,
            targets=targets, thresholds=thresholds, seeds=args.seeds, floor=args.floor,
            hard_pairs=not args.no_hard_pairs, min_group=args.min_group,
            policy_options=options, truth=args.truth, on_run=note)
    else:
        from .split_replay import compare_split

        report = compare_split(
            pairs, embedder, targets=targets, thresholds=thresholds, seeds=args.seeds,
            floor=args.floor, min_group=args.min_group, test_fraction=args.test_fraction,
            policy_options=options, truth=args.truth, hard_pairs=not args.no_hard_pairs,
            exhaustive=args.exhaustive, on_run=note,
            cache_options=None if args.verifier is None else
            {"verifier": None if args.verifier == "none" else args.verifier})
    print(report.summary())
    if args.json:
        report.write_json(args.json)
    if args.out:
        out = Path(args.out)
        written = [report.write_json(out / "report.json")]
        try:
            if hasattr(report, "plot"):
                written.append(report.plot(out / "policies.png"))
        except ImportError:
            print("matplotlib is not installed: no plot (pip install semcache[eval])",
                  file=sys.stderr)
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0


def _run_replay(args: argparse.Namespace) -> int:
    from .replay import replay_pairs

    if args.target_error_rate:
        return _run_policy_replay(args)
    pairs = _load(args)
    prices = _prices(args)  # a bad price table fails before the embedding
    cache = make_cache_factory(args, pairs.queries + pairs.candidates)()
    try:
        cache.flush()  # this replay's namespace only
        report = replay_pairs(cache, pairs, model=args.llm_model, prices=prices,
                              store_misses=args.store_misses, show_progress=_progress(args))
    finally:
        cache.close()
    _emit(report, args)
    return 0


def _run_multiturn(args: argparse.Namespace) -> int:
    from ._data import load_conversations
    from .multiturn import evaluate_multiturn

    convs = load_conversations(args.paths)
    texts = [t for c in convs for t in (c.query, c.follow_up)]
    report = evaluate_multiturn(convs, make_cache_factory(args, texts), model=args.llm_model,
                                show_progress=_progress(args))
    _emit(report, args)
    return 0
