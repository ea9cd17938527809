"""Evaluation: labeled-pair threshold sweeps, query-log replay through a real ``Cache``,
and multi-turn context checks. The same functions back ``semcache eval`` and the
notebooks."""

from ._data import (
    LAYOUTS,
    Conversation,
    Pairs,
    detect_format,
    load_conversations,
    load_pairs,
    load_paraphrases,
)
from ._embed import embed_texts
from ._metrics import DEFAULT_GRID, Sweep, roc_auc, sweep
from .pairs import PairsReport, evaluate_pairs, pair_similarities

__all__ = [
    "DEFAULT_GRID",
    "LAYOUTS",
    "Conversation",
    "Pairs",
    "PairsReport",
    "Sweep",
    "detect_format",
    "embed_texts",
    "evaluate_pairs",
    "load_conversations",
    "load_pairs",
    "load_paraphrases",
    "pair_similarities",
    "roc_auc",
    "sweep",
]

from ._embed import PrecomputedEmbedder
from .multiturn import MultiturnReport, evaluate_multiturn
from .replay import (
    Prices,
    Probe,
    ReplayReport,
    ReplayResult,
    Seed,
    estimate_tokens,
    load_price_table,
    pairs_to_replay,
    replay,
    replay_pairs,
    replay_stream,
)
from .streams import Stream, build_stream

__all__ += [
    "MultiturnReport",
    "PrecomputedEmbedder",
    "Prices",
    "Probe",
    "ReplayReport",
    "ReplayResult",
    "Seed",
    "Stream",
    "build_stream",
    "estimate_tokens",
    "evaluate_multiturn",
    "load_price_table",
    "pairs_to_replay",
    "replay",
    "replay_pairs",
    "replay_stream",
]
