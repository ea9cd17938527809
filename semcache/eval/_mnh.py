"""The hand-written prompt sets the verifier is tuned and judged on (``semcache/data``).

- ``must_not_hit.jsonl``: the must-not-hit suite, in a ``tune`` and a ``test`` half.
- ``must_not_hit_holdout.jsonl``: written after the verifier's development by a worker
  shown neither the verifier nor the suite; reported on, never fitted or tuned on.
- ``must_not_hit_holdout2.jsonl``: a second unseen set, written on 2026-12-07 by another
  such worker, after the first holdout had been read (and its one leak fixed); 126
  prompts, 317 must-not-hit variants (49 reversals, 37 role moves) and 378 paraphrases.
  Groups whose prompt occurs in another file here were dropped.
- ``must_not_hit_holdout3.jsonl``: a third unseen set, written on 2026-12-07 by another
  such worker after the second had been read and the rules (``verifiers/rules.py``)
  written from its leaks; 139 prompts, 329 must-not-hit variants (58 reversals, 45 role
  moves) and 417 paraphrases. Groups sharing a string with another file were dropped.
- ``must_not_hit_holdout4.jsonl``: a fourth, written by another such worker after the
  third had been read and two more rules written from its leaks; 140 prompts over 19
  domains, 364 must-not-hit variants (58 reversals, 49 role moves) and 420 paraphrases.
- ``must_not_hit_holdout5.jsonl``: a fifth, written after the fourth had been read and
  the person rules written from it, from a brief that defines the kinds without any
  example; 129 prompts, 365 must-not-hit variants (46 reversals, 41 role moves) and 387
  paraphrases.
- ``must_not_hit_roles.jsonl``: same words, roles moved ("what is 15% of 80" / "15 is
  what percent of 80", "who hired Alice" / "whom did Alice hire"), written independently
  of the holdout as training data for that class, in a ``tune`` and a ``test`` half.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["HOLDOUTS", "ROLE_KINDS", "load_must_not_hit", "load_role_swaps"]

#: the unseen prompt files, in the order they were written
HOLDOUTS = ("holdout", "holdout2", "holdout3", "holdout4", "holdout5")

#: must-not-hit kinds where the same words ask something else because roles moved; the
#: default operating point serves none of them on tuning data
ROLE_KINDS = frozenset({"reversal", "number_role", "agent_patient", "direction",
                        "comparison", "role"})


def _rows(name: str, half: str | None) -> list[dict[str, Any]]:
    text = (resources.files("semcache") / "data" / name).read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if half is None or r["half"] == half]


def load_must_not_hit(half: str | None = None) -> list[dict[str, Any]]:
    """The must-not-hit suite (``half``: tune / test; None: both). ``"holdout"`` to
    ``"holdout5"`` (``HOLDOUTS``) are the separate unseen files: reported on, never
    fitted or tuned on, and not part of None."""
    if half in HOLDOUTS:
        return _rows(f"must_not_hit_{half}.jsonl", None)
    return _rows("must_not_hit.jsonl", half)


def load_role_swaps(half: str | None = None) -> list[dict[str, Any]]:
    """The role-swap set (``half``: tune / test; None: both)."""
    return _rows("must_not_hit_roles.jsonl", half)
