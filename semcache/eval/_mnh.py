"""The hand-written prompt sets the verifier is tuned and judged on (``semcache/data``).

- ``must_not_hit.jsonl``: the must-not-hit suite, in a ``tune`` and a ``test`` half.
- ``must_not_hit_holdout.jsonl``: written after the verifier's development by a worker
  shown neither the verifier nor the suite; read, and since 2026-12-07 fitted on.
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
- ``must_not_hit_holdout6.jsonl``: a sixth, written after the first four had become
  tuning data (``READ_HOLDOUTS``) and the fifth had chosen how much they weigh.
- ``must_not_hit_holdout7.jsonl``: a seventh, committed unread after that session's last
  change and read once with the finished model.
- ``must_not_hit_holdout8.jsonl``: an eighth, committed unread and read once with the
  greater/less change and the model before it.
- ``must_not_hit_holdout9.jsonl``: a ninth, committed unread for the next change.
- ``must_not_hit_holdout10.jsonl``: a tenth, committed unread so that a set stays unread
  after the ninth has judged a change.

The first four holdouts were read, one after another, as the verifier's rules were
written from their leaks; from 2026-12-07 they are tuning data (``READ_HOLDOUTS``,
``load_prompt_tuning``): about 1,200 more must-not-hit pairs and 1,400 paraphrases from
four writers besides the suite's tune half. Their earlier figures in the results files
were measured before they were fitted on.
- ``must_not_hit_roles.jsonl``: same words, roles moved ("what is 15% of 80" / "15 is
  what percent of 80", "who hired Alice" / "whom did Alice hire"), written independently
  of the holdout as training data for that class, in a ``tune`` and a ``test`` half.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

__all__ = ["HOLDOUTS", "READ_HOLDOUTS", "ROLE_KINDS", "UNREAD_HOLDOUTS", "UNSEEN_HOLDOUTS",
           "load_must_not_hit", "load_prompt_tuning", "load_role_swaps"]

#: the holdout prompt files, in the order they were written
HOLDOUTS = ("holdout", "holdout2", "holdout3", "holdout4", "holdout5", "holdout6",
            "holdout7", "holdout8", "holdout9", "holdout10")

#: the holdouts that were read while the rules were written, now fitted and tuned on
READ_HOLDOUTS = HOLDOUTS[:4]

#: the holdouts never fitted on: ``holdout5`` chose the read holdouts' weight (read, a
#: development set), ``holdout6`` measured the change (read once, then the currency rule
#: came of it), ``holdout7`` measured the finished model (read once, nothing changed),
#: ``holdout8`` measured the greater/less change (read once, then the flat sign was read
#: as a word), ``holdout9`` and ``holdout10`` are unread
UNSEEN_HOLDOUTS = HOLDOUTS[4:]

#: committed before anyone read them: no script reports on them unasked (the rules'
#: cost report skips them), so the next change to the verifier is judged on them once
UNREAD_HOLDOUTS = ("holdout9", "holdout10")

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
    ``"holdout6"`` (``HOLDOUTS``) are the separate holdout files, not part of None; of
    them only ``READ_HOLDOUTS`` are fitted on (through ``load_prompt_tuning``)."""
    if half in HOLDOUTS:
        return _rows(f"must_not_hit_{half}.jsonl", None)
    return _rows("must_not_hit.jsonl", half)


def load_prompt_tuning(holdouts: Sequence[str] = READ_HOLDOUTS) -> list[dict[str, Any]]:
    """The prompt pairs a verifier is fitted and tuned on: the suite's tune half and the
    read holdouts (``holdouts``), each holdout's groups moved to their own range (file
    k of ``HOLDOUTS``: k * 100,000 plus its group) so that no two files share a group."""
    unknown = sorted(set(holdouts) - set(HOLDOUTS))
    if unknown:
        raise ValueError(f"unknown holdouts {unknown}; known: {list(HOLDOUTS)}")
    rows = load_must_not_hit("tune")
    for k, name in enumerate(HOLDOUTS, 1):
        if name in holdouts:
            rows += [{**r, "group": k * 100_000 + r["group"]}
                     for r in load_must_not_hit(name)]
    return rows


def load_role_swaps(half: str | None = None) -> list[dict[str, Any]]:
    """The role-swap set (``half``: tune / test; None: both)."""
    return _rows("must_not_hit_roles.jsonl", half)
