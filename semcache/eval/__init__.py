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
    "LAYOUTS", "Conversation", "Pairs", "detect_format", "load_conversations", "load_pairs",
    "load_paraphrases", "embed_texts", "DEFAULT_GRID", "Sweep", "roc_auc", "sweep",
    "PairsReport", "evaluate_pairs", "pair_similarities",
]

from ._embed import PrecomputedEmbedder  # noqa: E402
from .multiturn import MultiturnReport, evaluate_multiturn  # noqa: E402
from .replay import (  # noqa: E402
    Probe,
    Prices,
    ReplayReport,
    Seed,
    estimate_tokens,
    load_price_table,
    pairs_to_replay,
    replay,
    replay_pairs,
)

__all__ += [
    "PrecomputedEmbedder", "MultiturnReport", "evaluate_multiturn", "Probe", "Prices",
    "ReplayReport", "Seed", "estimate_tokens", "load_price_table", "pairs_to_replay",
    "replay", "replay_pairs",
]
