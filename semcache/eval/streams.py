"""Labeled query streams: what a cache sees in production, with the truth of each hit.

A stream is what a cache sees in production: a question is asked (a miss whose answer is
stored), later its paraphrases and hard negatives arrive, interleaved with every other
question's traffic. Each query carries its *answer class* (its paraphrase group).

Ground truth comes from the labels only. A hit is *right* when the cached answer's class
is the query's class, *wrong* when the two classes are a labeled negative pair (a Quora
pair marked "not duplicate", an order-sensitive or negation pair), and *unlabeled*
otherwise: Quora links only the pairs it sampled, so two groups about one question are
often two classes, and counting their hits as wrong would measure Quora's sampling, not
the cache (a look at such hits at 0.9 shows mostly true paraphrases). Unlabeled hits
are reported apart and the label judge abstains on them, so no policy learns from them.

That leaves out of the error rate the hits a low threshold makes most of (at 0.64, a
third of a static cache's hits on Quora streams are unlabeled), so ``truth="strict"``
counts every answer of another class as wrong instead: every pair is labeled, as in
benchmarks whose answers are classes (vCache's), at the price of calling some true
cross-group paraphrases wrong. The truth lies between the two; ``semcache eval replay
--truth`` reports either.

Nothing here knows a cache or a policy: ``semcache.eval.replay.replay_stream`` sends a
stream through a ``Cache``, ``semcache.eval.policies`` compares policies on streams.
"""


from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TRUTHS",
    "Query",
    "Stream",
    "answer_class",
    "build_stream",
    "groups_from_pairs",
    "order_sensitive_pairs",
]


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    answer_class: int
    #: "first" (the first time its class is asked), "paraphrase", "negative" (a labeled
    #: negative of an earlier class) or "reversed" (the other side of a hand-built
    #: order-sensitive or negation pair)
    kind: str


def groups_from_pairs(pairs: Iterable[tuple[str, str, int]], min_size: int = 3
                      ) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Paraphrase groups (connected components of the positive pairs with at least
    ``min_size`` questions) and the negative pairs that touch a group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb

    pairs = list(pairs)
    # questions that differ only in case or spacing are one question, as in the split
    # (``split._norm``): two classes would count a hit between them wrong
    same: dict[str, str] = {}
    for a, b, label in pairs:
        for q in (a, b):
            parent.setdefault(q, q)
            union(q, same.setdefault(" ".join(q.lower().split()), q))
        if label == 1:
            union(a, b)
    comps: dict[str, list[str]] = defaultdict(list)
    for q in parent:
        comps[find(q)].append(q)
    groups = sorted((sorted(g) for g in comps.values() if len(g) >= min_size),
                    key=lambda g: g[0])
    members = {q for g in groups for q in g}
    negatives = [(a, b) for a, b, label in pairs
                 if label == 0 and (a in members or b in members)]
    return groups, negatives


def order_sensitive_pairs() -> list[tuple[str, str]]:
    """Hand-built pairs whose similarity is near 1 but whose answers differ: reversed
    directions and negations. Each pair is two different answer classes."""
    units = [("Celsius", "Fahrenheit"), ("kilometers", "miles"), ("pounds", "kilograms"),
             ("inches", "centimeters"), ("liters", "gallons"), ("euros", "dollars"),
             ("hours", "minutes"), ("bytes", "bits")]
    places = [("London", "Paris"), ("New York", "Boston"), ("Tokyo", "Osaka"),
              ("Berlin", "Munich"), ("Madrid", "Lisbon"), ("Delhi", "Mumbai")]
    things = [("Python", "Java"), ("an iPhone", "an Android phone"), ("tea", "coffee"),
              ("renting", "buying a house"), ("SQL", "NoSQL"), ("cats", "dogs")]
    out: list[tuple[str, str]] = []
    for a, b in units:
        out.append((f"How do I convert {a} to {b}?", f"How do I convert {b} to {a}?"))
    for a, b in places:
        out.append((f"What is the cheapest way to travel from {a} to {b}?",
                    f"What is the cheapest way to travel from {b} to {a}?"))
    for a, b in things:
        out.append((f"Why is {a} better than {b}?", f"Why is {b} better than {a}?"))
    for x in ["dark mode on my phone", "two-factor authentication on Gmail",
              "automatic updates in Windows", "location tracking on my iPhone",
              "cookies in Chrome", "notifications on Instagram"]:
        out.append((f"How do I enable {x}?", f"How do I disable {x}?"))
    for x in ["eat before a blood test", "drink coffee while pregnant",
              "take ibuprofen with alcohol", "run every day", "use a VPN at work"]:
        out.append((f"Should I {x}?", f"Should I not {x}?"))
    return out


#: how a hit on another answer class counts: "labeled" (wrong only when the labels
#: say so, unlabeled otherwise) or "strict" (always wrong)
TRUTHS = ("labeled", "strict")


@dataclass(slots=True)
class Stream:
    queries: list[Query]
    #: pairs of answer classes known to be different (labeled negatives)
    known_wrong: set[frozenset[int]]
    #: one of TRUTHS
    truth_mode: str = "labeled"

    def __len__(self) -> int:
        return len(self.queries)

    def truth(self, query_class: int, served_class: int) -> bool | None:
        """True right, False wrong, None unlabeled."""
        if query_class == served_class:
            return True
        if self.truth_mode == "strict" or \
                frozenset((query_class, served_class)) in self.known_wrong:
            return False
        return None

    def judge(self, query: str, cached_prompt: str, cached_answer: Any,
              fresh_answer: Any) -> bool | None:
        """The label judge: compares the answers' classes, abstains when unlabeled."""
        return self.truth(answer_class(fresh_answer), answer_class(cached_answer))


def answer_class(answer: Any) -> int:
    """The class of a replayed answer (``{"answer": "class N"}``, as the replays store)."""
    return int(str(answer["answer"]).split()[-1])


def build_stream(groups: Sequence[Sequence[str]], negatives: Sequence[tuple[str, str]],
                 *, hard_pairs: Sequence[tuple[str, str]] = (), seed: int = 0,
                 truth: str = "labeled") -> Stream:
    """Interleave every class's first question, later paraphrases and hard negatives.

    Within a group the first question comes first; paraphrases and negatives of it are
    spread over the rest of the stream, mixed with all other groups' traffic. ``truth``:
    one of ``TRUTHS`` (see the module's docstring)."""
    if truth not in TRUTHS:
        raise ValueError(f"truth must be one of {TRUTHS}, got {truth!r}")
    rng = random.Random(seed)
    cls_of: dict[str, int] = {}
    for i, g in enumerate(groups):
        for q in g:
            cls_of[q] = i
    nxt = len(groups)
    events: list[tuple[float, Query]] = []
    first_t: dict[int, float] = {}
    known_wrong: set[frozenset[int]] = set()
    for i, g in enumerate(groups):
        order = list(g)
        rng.shuffle(order)
        t0 = rng.random() * 0.6
        first_t[i] = t0
        events.append((t0, Query(order[0], i, "first")))
        for q in order[1:]:
            events.append((t0 + rng.random() * (1 - t0), Query(q, i, "paraphrase")))
    for a, b in negatives:
        member, other = (a, b) if a in cls_of else (b, a)
        if other in cls_of and cls_of[other] == cls_of[member]:
            continue  # transitively a paraphrase after all
        if other not in cls_of:
            cls_of[other] = nxt
            nxt += 1
        known_wrong.add(frozenset((cls_of[member], cls_of[other])))
        t0 = first_t[cls_of[member]]
        events.append((t0 + rng.random() * (1 - t0), Query(other, cls_of[other], "negative")))
    for a, b in hard_pairs:  # each side asked, then the other side and a repeat later
        ca, cb = nxt, nxt + 1
        nxt += 2
        known_wrong.add(frozenset((ca, cb)))
        t0 = rng.random() * 0.6
        events.append((t0, Query(a, ca, "first")))
        events.append((t0 + rng.random() * (1 - t0), Query(b, cb, "reversed")))
    events.sort(key=lambda e: e[0])
    return Stream([q for _, q in events], known_wrong, truth)
