"""The structural verifier's rules (semcache/verifiers/rules.py): what each refuses,
what none may refuse, and what they cost in refused paraphrases on real data."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache.verifiers.features import parse
from semcache.verifiers.rules import decide, refusal
from semcache.verifiers.structural import StructuralVerifier

REFUSED = [
    # a translation the other way: the meaning of a foreign word, its translation
    ("translation direction", "What does 'Kind' mean in German?",
     "How do you say 'kind' in German?"),
    ("translation direction", "Translate 'sopa' from Spanish to English",
     "how do you say soup in spanish"),
    ("translation direction", "What does 'embarazada' mean in Spanish?",
     "Translate 'embarazada' from English to Spanish"),
    ("translation direction", "translate 'merci' from French into English",
     "translate 'merci' from English into French"),
    # who did what to whom, around one verb
    ("roles inverted", "Which club signed Neymar in 2017?",
     "Which club did Neymar sign in 2017?"),
    ("roles inverted", "Who replaced Steve Jobs as CEO?", "Whom did Steve Jobs replace as CEO?"),
    ("roles inverted", "Who succeeded Queen Victoria?", "Whom did Queen Victoria succeed?"),
    ("roles inverted", "Which country bought Louisiana from France?",
     "Which country did Louisiana buy from France?"),
    ("roles inverted", "What eats krill?", "What does krill eat?"),
    # persons swapped
    ("persons swapped", "Why does she ignore me?", "Why do I ignore her?"),
    ("persons swapped", "How do I tell him I love him", "How does he tell me he loves me"),
    ("persons swapped", "Translate 'we need them' into Italian",
     "Translate 'they need us' into Italian"),
    ("persons swapped", "She lent him her car for his trip", "He lent her his car for her trip"),
    # only the person changes, from the asker to someone else
    ("person changed", "Do I need a visa to work remotely from Portugal?",
     "Does she need a visa to work remotely from Portugal?"),
    ("person changed", "Can I claim my parents as dependents?",
     "Can they claim my parents as dependents?"),
    # a percentage's relation to its base
    ("percent relation", "What is 20% of 150?", "What is 20% more than 150?"),
    ("percent relation", "What is 30 percent off 80 dollars?", "What is 30 percent of 80 dollars?"),
    ("percent relation", "price 25% higher than 60", "price 25% lower than 60"),
    ("persons swapped", "Translate into Spanish: 'She told him the truth.'",
     "Translate into Spanish: 'He told her the truth.'"),
    # an opposite in place of a word, the rest in the same order
    ("antonym swapped", "How do I thicken a gravy?", "How do I thin a gravy?"),
    ("antonym swapped", "Write a toast for the start of the season",
     "Write a toast for the end of the season"),
    ("antonym swapped", "Which moon is closest to Jupiter?",
     "Which moon is farthest from Jupiter?"),
    # holdout 7 served this one (cosine 0.98): "greater" was in no pair of opposites
    ("antonym swapped", "Excel formula to count cells in column B that are greater than 100",
     "Excel formula to count cells in column B that are less than 100"),
    # the same words, other operators or negations
    ("operators", "Solve 2x + 5 = 11", "Solve 2x - 5 = 11"),
    ("negation", "Which fruits can cats eat?", "Which fruits can't cats eat?"),
    ("negation", "Why won't my laptop charge?", "Why will my laptop charge?"),
    ("negation", "Which plants shouldn't I water daily?", "Which plants should I water daily?"),
    # the same words with another currency sign (holdout 6 served these at 1.0)
    ("currency", "Write a post announcing our $5M seed round",
     "Write a post announcing our \u20ac5M seed round"),
    # words of another script, or symbols, that differ: neither the features nor the
    # embedding read them (Beijing's weather / Shanghai's: cosine 0.77, scored 1.0)
    ("unread words", "北京的天气怎么样", "上海的天气怎么样"),
    ("unread words", "狗咬人是新闻吗", "人咬狗是新闻吗"),
    ("unread words", "Какая погода в Москве?", "Какая погода в Париже?"),
    ("unread words", "東京タワーの高さは?", "スカイツリーの高さは?"),
    ("unread words", "What does 好萌 mean?", "What does 逆天 mean?"),
    ("symbols", "Write a caption for this photo \U0001F600",
     "Write a caption for this photo \U0001F622"),
    ("symbols", "Plot y for x \u2264 5", "Plot y for x \u2265 5"),
    ("operators", "What is 5 \u00d7 3?", "What is 5 \u00f7 3?"),
    ("operators", "Is x \u2260 5?", "Is x = 5?"),
    ("currency", "Is PMI worth it on a $400,000 home with 10% down?",
     "Is PMI worth it on a \u00a3400,000 home with 10% down?"),
]

KEPT = [  # paraphrases and look-alikes no rule may refuse
    ("Who defeated Napoleon at Waterloo?", "Who beat Napoleon at Waterloo?"),
    ("How do you say 'thank you' in Japanese?", "Translate 'thank you' into Japanese"),
    ("What does 'danke' mean in English?", "Translate 'danke' from German to English"),
    ("What does 'hygge' mean?", "meaning of the danish word hygge"),
    ("Translate 'good night' from English to Spanish", "how do you say good night in spanish"),
    ("Can you help me write a cover letter?", "Could you help me write a cover letter?"),
    ("Who do you think won the debate?", "Who won the debate?"),
    ("What did Einstein discover?", "What discoveries did Einstein make?"),
    ("When did the Berlin Wall fall?", "When did the Berlin wall come down?"),
    ("Which company acquired GitHub?", "Which company bought GitHub?"),
    ("What is 15% of 240?", "calculate 15 percent of 240"),
    ("A 20% increase followed by a 20% decrease: what's the net change?",
     "A 20% decrease followed by a 20% increase: what's the net change?"),
    ("How do I tell my boss I quit?", "how to tell my boss that i'm quitting"),
    ("What do sea otters eat?", "what food do sea otters eat"),
    ("Which fruits can't cats eat?", "which fruits can't cats eat"),
    ("Is Rust faster than Go?", "Is Go slower than Rust?"),
    ("Is 7 greater than 5?", "Is 5 less than 7?"),
    ("Which chords are in B-flat major?", "which chords are in B\u266d major"),
    ("Is F-sharp minor a sad key?", "is F\u266f minor a sad key"),
    ("Who beat Jimmy Carter in 1980?", "Jimmy Carter lost to whom in 1980?"),
    ("Is it safe to fly with a cold?", "Is it not dangerous to fly with a cold?"),
    ("How do I renew my passport?", "How do you renew your passport?"),
    ("How do they make decaf coffee?", "How do we make decaf coffee?"),
    ("Why won't my laptop charge?", "why won't my laptop charge"),
    # the same words of another script; accents; math symbols read as operators
    ("北京的天气怎么样", "北京的天气怎么样？"),
    ("What does 好萌 mean?", "What is the meaning of 好萌?"),
    ("Explain café culture in Zürich", "explain cafe culture in zurich"),
    ("Is Thyborøn worth a visit?", "Is Thyboron worth visiting?"),
    ("Best pierogi in Łódź?", "where to eat the best pierogi in Lodz"),
    ("What is 156 divided by 12?", "156 \u00f7 12 = ?"),
    ("What is 73 minus 28?", "73 \u2212 28 = ?"),
    ("Taxes on a Roth IRA withdrawal before age 59\u00bd", "Roth IRA early withdrawal tax"),
    ("z-score of 85 with mean 70 and sd 10", "standard score of 85 given \u03bc = 70, \u03c3 = 10"),
    ("How long is the flight from London to New York?", "flight london \u2192 new york hours"),
    # an amount with and without its currency sign is the same amount
    ("How can I make $100 a day online?", "How can I make 100 a day online?"),
    ("Is a \u20ac2,000 laptop worth it?", "is a \u20ac2,000 laptop worth it"),
]


@pytest.mark.parametrize("rule, a, b", REFUSED)
def test_each_rule_refuses_its_pairs_both_ways(rule: str, a: str, b: str) -> None:
    v = StructuralVerifier()
    assert refusal(parse(a), parse(b)) == rule
    assert refusal(parse(b), parse(a)) == rule
    assert v.verify(a, [b], [0.97])[0] == 0.0
    assert v.verify(b, [a], [0.97])[0] == 0.0
    assert v.score_pairs([a, b], [b, a], [0.97, 0.97]).tolist() == [0.0, 0.0]


def _req(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_hit_metadata_names_the_rule_that_refused_the_near_miss(minilm) -> None:
    from semcache import Cache

    c = Cache(type="faiss-semantic", embedder=minilm)
    c.add_cache({"a": "kind = child"}, **_req("What does 'Kind' mean in German?"))
    c.add_cache({"a": "8,849 m"}, **_req("How tall is Mount Everest?"))
    hit, meta = c.lookup_with_metadata(**_req("How do you say 'kind' in German?"))
    assert hit is None and meta["decision"] == "verifier_rejected", meta
    assert meta["near_miss_prompt"] == "What does 'Kind' mean in German?"
    assert meta["near_miss_verifier_score"] == 0.0
    assert meta["near_miss_verifier_rule"] == "translation direction"
    # refused by the model's score, not by a rule: no rule named
    hit, meta = c.lookup_with_metadata(**_req("How high is Mount Everest?"))
    assert hit is None and meta["decision"] == "verifier_rejected", meta
    assert 0.0 < meta["near_miss_verifier_score"] < meta["verifier_threshold"]
    assert "near_miss_verifier_rule" not in meta


@pytest.mark.parametrize("a, b", KEPT)
def test_no_rule_refuses_a_rewording(a: str, b: str) -> None:
    assert refusal(parse(a), parse(b)) is None
    assert refusal(parse(b), parse(a)) is None
    assert decide(parse(a), parse(b)) in (None, 1.0)  # 1.0: the same words


_WORDS = st.sampled_from(
    "who whom what which did does do translate say mean in from to into english german "
    "french I me you him he she we us they them percent of off more than 15 20 sold sell "
    "acquired acquire Red Hat company eat eats 3 + - = the a start end closest farthest "
    "thicken thin can can't not safe dangerous faster slower Go Python".split())


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, min_size=1, max_size=12), st.lists(_WORDS, min_size=1, max_size=12))
def test_the_rules_are_symmetric(a: list[str], b: list[str]) -> None:
    """A pair is refused or not whichever side is the stored prompt."""
    p, q = parse(" ".join(a)), parse(" ".join(b))
    assert refusal(p, q) == refusal(q, p)
    assert decide(p, q) == decide(q, p)


_HAN = st.sampled_from(list("北京上海天气的怎么样狗咬人是新闻吗"))


@settings(max_examples=200, deadline=None)
@given(st.lists(_HAN, min_size=1, max_size=10), st.lists(_HAN, min_size=1, max_size=10),
       st.floats(0.0, 1.0))
def test_prompts_in_another_script_hit_only_on_the_same_words(a: list[str], b: list[str],
                                                               cosine: float) -> None:
    """Whatever the cosine, two Chinese prompts score 1.0 when they are the same
    characters in the same order and 0.0 otherwise: the model cannot read them."""
    x, y = "".join(a), "".join(b)
    score = float(StructuralVerifier().verify(x, [y], [cosine])[0])
    assert score == (1.0 if x == y else 0.0)


def _prompt_sets() -> list[dict]:
    rows = []
    for name in ("must_not_hit", "must_not_hit_roles", "must_not_hit_holdout",
                 "must_not_hit_holdout2", "must_not_hit_holdout3", "must_not_hit_holdout4",
                 "must_not_hit_holdout5", "must_not_hit_holdout6"):
        text = (resources.files("semcache") / "data" / f"{name}.jsonl").read_text()
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def test_no_paraphrase_of_the_prompt_sets_is_refused() -> None:
    rows = [r for r in _prompt_sets() if r["label"] == 1]
    assert len(rows) > 1800
    refused = [(r["query"], r["candidate"]) for r in rows
               if refusal(parse(r["query"]), parse(r["candidate"])) not in (None,)]
    assert refused == []


QQP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "qqp" / "pairs.jsonl.gz"


def test_rules_refuse_almost_no_quora_duplicate() -> None:
    """On all 64,150 shared Quora pairs the rules (operators included) refuse 16 of
    19,850 duplicates (0.08%), nearly all loose labels ("Is Toronto a safe city?" /
    "... a dangerous city?", "sell" / "buy a B2B list", "translate into Latin" /
    "translate ... to English from Latin"; "deal discount" / "deal/discount" is an
    operator to the rule; "composites?" / "译文 composites?", whose Chinese word is
    "translation"), and nearly 200 non-duplicates, most of them "What does <a word in
    another script> mean?" against another such word."""
    from semcache.eval._data import load_pairs
    from semcache.eval._scoring import cached_parser

    if not QQP.exists():  # CI runs beside ../shared; never a silent skip
        pytest.fail(f"the shared Quora pairs are missing: {QQP}")
    pairs = load_pairs(QQP)
    p = cached_parser()

    refused = [int(y) for a, b, y in zip(pairs.queries, pairs.candidates, pairs.labels)
               if refusal(p(a), p(b)) is not None]
    dupes = int((pairs.labels == 1).sum())
    assert dupes > 19_000
    assert sum(refused) <= 16  # duplicates refused: a miss each, under 0.1%
