"""Structural features of a prompt pair: what a sentence embedding does not see.

A mean-pooled embedding of "convert miles to km" and "convert km to miles" is nearly the
same vector (cosine 0.99 with MiniLM on the must-not-hit suite); so are a question and its
negation, or the same question about another number, unit or name. These features
measure exactly those differences: content words in another order (and on the other side
of "to", "than", "from"...), negation, numbers and units, capitalised names, antonym
swaps, question words, length and overlap. Each is cheap (a few set operations on a dozen
tokens), and the query's half is computed once for all of its candidates.

``FEATURES`` names the columns; the fitted model file records the same list and refuses
to load if it differs, so a model is never evaluated against shifted columns.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right, insort
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ._words import (
    _ANTONYM_WORDS,
    _ANTONYMS,
    _DIRECTION,
    _DO,
    _LETTER_UNITS,
    _MODAL,
    _NEGATION,
    _NUMBER_WORDS,
    _STOP,
    _TEMPERATURES,
    _UNIT_CANON,
    _UNIT_NAMES,
    _UNITS,
    _WH,
)

__all__ = ["FEATURES", "Parsed", "features", "parse"]

FEATURES: tuple[str, ...] = (
    "cosine", "len_min", "len_max", "char_ratio", "jaccard", "content_jaccard",
    "only_min", "only_max", "bigram_jaccard", "order_discordance", "side_swaps",
    "negation_parity", "negation_diff", "number_diff", "number_any", "unit_diff",
    "name_diff", "antonym", "wh_diff", "shared_content", "modal_diff", "number_order",
    "negated_diff", "do_support_diff", "wh_head_diff", "unit_binding_diff",
)

_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:[.,]\d+)*|%")
# the words of any script, for the rules alone (the features read ASCII words): kana and
# Han, written without spaces, one character a word
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SCRIPT_TOKEN = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+")
# the symbols the words leave out that change what is asked: arithmetic and comparison
# between two operands ("3x + 7" / "3x - 7", "a < b" / "a > b", "2*3"), "C++" / "C#", a
# minus before a number ("-5"). Not markdown ("**bold**", "# Title", "- item", "> quote")
# nor a hyphen inside a word ("well-known"): those change no question.
_OPERAND_L, _OPERAND_R = r"(?:(?<=[\w)])|(?<=[\w)] ))", r"(?=\s?[\w(])"
_OPERATOR = re.compile(
    r"\+|=|(?<=[A-Za-z])#|[-\u2212](?=\s*\d)|(?<=\d)-"
    rf"|{_OPERAND_L}(?:[<>]=?|(?<!\*)\*(?!\*)|/|\^){_OPERAND_R}")
#: a word's reading (head word, stem, positive form) never changes, so it is read once;
#: only words up to this long are kept: prompts are client input, and 65,536 unique
#: tokens of a window's 8 KB would hold about half a gigabyte
MEMO_CHARS = 40
#: a character every ``_OPERATOR`` match holds: most prompts have none, and the search
#: for one costs a twentieth of ``_OPERATOR``'s look-behinds at every position
_OPERATOR_CHAR = re.compile("[-+=#<>*/^\u2212]")
#: currency signs ("%" is read as the word "percent"): "$5M" / "€5M" are the same words
_SYMBOL = re.compile("[$\u00a2\u00a3\u00a5\u20a3-\u20bf]")


# "shouldn't" tokenises to "shouldnt": its stem is a modal or auxiliary
_MODAL_NT = _MODAL | frozenset("do does did is are was were has have had ca wo".split())


def _stem_raw(w: str) -> str:
    # crude on purpose: "defeated"/"defeat", "questions"/"question" must meet, and a
    # real stemmer would cost more than the rest of the features together
    if len(w) > 5 and w.endswith("ing"):
        return w[:-3]
    if len(w) > 4 and w.endswith("ed"):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


_stem_memo = lru_cache(maxsize=1 << 16)(_stem_raw)


def _stem(w: str) -> str:
    return _stem_memo(w) if len(w) <= MEMO_CHARS else _stem_raw(w)


class Parsed(NamedTuple):
    """One side of a pair, parsed once (a query is compared with several candidates).

    Immutable, and a named tuple rather than a frozen dataclass: parsing runs right after
    the query's embedding, and a frozen dataclass's ``__init__`` sets these 26 fields one
    ``object.__setattr__`` at a time, several times a named tuple's cost."""

    tokens: frozenset[str]
    content: tuple[str, ...]  #: stemmed content words in order
    content_set: frozenset[str]
    first_pos: dict[str, int]  #: content word -> first position
    side: dict[str, int]  #: content word -> how many direction markers precede it
    bigrams: frozenset[tuple[str, str]]
    n_tokens: int
    n_chars: int
    negations: int
    numbers: frozenset[str]
    number_seq: tuple[str, ...]  #: in order: "5 GHz to 2.4 GHz" against "2.4 to 5"
    units: frozenset[str]
    names: frozenset[str]
    wh: frozenset[str]
    modals: frozenset[str]
    lowered: frozenset[str]  #: every lower-cased word (for antonym look-ups)
    words: tuple[str, ...]  #: every lower-cased word, in order
    negated: frozenset[str]  #: the content word each negation governs (the next one)
    do_support: bool  #: a question word then "did"/"does"/"do": "Who did Napoleon defeat"
    bases: dict[str, str]  #: word -> its positive form, where they differ ("cheaper": "cheap")
    #: the question word and what it asks about: "what percent", "who hir", ("what", "15")
    wh_head: tuple[str, str] | None
    bindings: frozenset[tuple[str, str]]  #: (number, the unit right after it, or "")
    operators: tuple[str, ...] = ()  #: ``_OPERATOR`` symbols in order
    symbols: tuple[str, ...] = ()  #: ``_SYMBOL`` currency signs in order
    #: words the features cannot read, in order: not Latin letters even without their
    #: accents (Cyrillic, Greek, Han, kana, ...; "café" and "Thyborøn" are Latin)
    foreign: tuple[str, ...] = ()
    #: other symbols the words leave out, in order: emoji, "≤", "≠", "√" ("×", "÷", "−"
    #: are read as operators and "→" as "to")
    marks: tuple[str, ...] = ()


def _word_raw(token: str) -> tuple[str, int]:
    """A token's lower-cased head word and whether it carried "n't": "what's" is "what",
    "doesn't" is "does" plus a negation, "won't" is "will" plus a negation."""
    w = token.lower()
    if "'" not in w:
        return w, int(w in _NEGATION or (w.endswith("nt") and w[:-2] in _MODAL_NT))
    head, tail = w.split("'", 1)
    if tail != "t":
        return head, 0
    head = head[:-1] if head.endswith("n") and head != "can" else head
    if not head:  # "n't" split from its verb ("do n't", as tokenised corpora write it)
        return "not", 1
    return {"wo": "will", "ca": "can", "sha": "shall"}.get(head, head), 1


_word_memo = lru_cache(maxsize=1 << 16)(_word_raw)  # for tokens up to MEMO_CHARS


#: skipped between a question word and what it asks about: "what is the X" asks about X
_WH_SKIP = frozenset("is are was were be am do does did the a an s".split())


def _wh_head(low: list[str]) -> tuple[str, str] | None:
    """The first question word and the word it binds: "What is 15% of 80?" asks for a
    number ("what", "15"), "15 is what percent of 80?" for a percentage ("what",
    "percent"): the same words, another unknown."""
    for i, w in enumerate(low):
        if w in _WH:
            for nxt in low[i + 1:]:
                if nxt not in _WH_SKIP:
                    return ("who" if w == "whom" else w), _stem(_NUMBER_WORDS.get(nxt, nxt))
            return None
    return None


def _units_named(low: list[str]) -> tuple[list[str], list[int]]:
    """``low`` with every unit under its one name (``_UNIT_NAMES``), and the positions
    kept: a single letter is a unit right after a number, or anywhere in a text that
    names a temperature scale ("200 Celsius to F"; "a list in C" stays C), and
    "degrees" before a temperature scale is dropped ("200 degrees Celsius")."""
    out: list[str] = []
    kept: list[int] = []
    for i, w in enumerate(low):
        nxt = low[i + 1] if i + 1 < len(low) else ""
        if w in _UNIT_CANON:
            w = _UNIT_CANON[w]
        elif w in _LETTER_UNITS and i and low[i - 1][0].isdigit():
            w = _LETTER_UNITS[w]
        elif w in ("degree", "degrees") and (
                _UNIT_CANON.get(nxt) in _TEMPERATURES or nxt in ("c", "f", "k")):
            continue
        out.append(w)
        kept.append(i)
    if _TEMPERATURES.intersection(out):
        out = [_LETTER_UNITS[w] if w in ("c", "f", "k") else w for w in out]
    return out, kept


def _bindings(low: list[str]) -> frozenset[tuple[str, str]]:
    """Each number with the unit written right after it ("" if none): "15% of 80" binds
    the percentage to 15, "15 is what percent of 80" to the unknown."""
    out = []
    for i, w in enumerate(low):
        n = w.replace(",", "") if w[0].isdigit() else _NUMBER_WORDS.get(w)
        if n is None:
            continue
        nxt = low[i + 1] if i + 1 < len(low) else ""
        out.append((n, (nxt if nxt in _UNIT_NAMES else _stem(nxt)) if nxt in _UNITS else ""))
    return frozenset(out)


#: math symbols read as their ASCII operators, so that "5 × 3" / "5 ÷ 3" differ as "*"
#: and "/" do; the arrow is "to" ("london → new york"), not a symbol
_MATH = str.maketrans({"\u00d7": "*", "\u00f7": "/", "\u2212": "-", "\u2192": " to "})

#: symbols that are words: "E♭ major" is "E-flat major" (holdout 8's one paraphrase
#: refused by a rule was these two: the flat sign differed as a symbol)
_SPELLED = str.maketrans({"\u266d": "-flat", "\u266f": "-sharp", "\u266e": "-natural"})

#: symbols that change no question: degrees (read with their unit), marks of trade, the
#: replacement characters
_NOT_MARKS = frozenset("\u00b0\u00ba\u00a9\u00ae\u2122\ufffc\ufffd")


def _read_as_foreign(word: str) -> bool:
    """A word with a letter of another script than Latin ("Thyborøn", "Łódź" are Latin),
    not a number ("½") nor a single letter, which is a symbol ("μ = 70", "σ", "20 Ω")
    more often than a word; a Han or kana character is a word."""
    if _CJK_CHAR.match(word):
        return True
    return len(word) > 1 and any(c.isalpha() and not c.isascii()
                                 and not unicodedata.name(c, "").startswith("LATIN")
                                 for c in word)


def _marks(text: str) -> tuple[str, ...]:
    """The non-ASCII math and other symbols of ``text`` (emoji, "×", "≤"), in order."""
    if text.isascii():
        return ()
    return tuple(c for c in text if not c.isascii() and c not in _NOT_MARKS
                 and unicodedata.category(c) in ("Sm", "So") and not _SYMBOL.match(c))


def _foreign(text: str) -> tuple[str, ...]:
    """The words of ``text`` in another script than Latin (``_read_as_foreign``)."""
    if text.isascii():
        return ()
    return tuple(w for t in _SCRIPT_TOKEN.findall(text)
                 if not (w := t.lower()).isascii() and _read_as_foreign(w))


#: what ``_units_named`` reads: a text with none of these words keeps its words as they
#: are (most prompts), and skips the loop
_UNITISH = frozenset(_UNIT_CANON) | frozenset(_LETTER_UNITS) | {"degree", "degrees"}


def _words_of(text: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The tokens of ``text`` and each one's (head word, negation), units under their
    one name. The memos are called inline, without a wrapper's frame: parsing runs right
    after the query's embedding, where each call costs 2-3x."""
    raw = _TOKEN.findall(text)
    if "%" in raw:
        raw = ["percent" if t == "%" else t for t in raw]
    words_neg = [_word_memo(t) if len(t) <= MEMO_CHARS else _word_raw(t) for t in raw]
    low = [w for w, _ in words_neg]
    if _UNITISH.isdisjoint(low):
        return raw, words_neg
    named, kept = _units_named(low)
    if named != low:  # rare: most prompts name no unit
        raw = [raw[i] for i in kept]
        words_neg = [(w, words_neg[i][1]) for w, i in zip(named, kept)]
    return raw, words_neg


def parse(text: str) -> Parsed:
    if not text.isascii():
        text = text.translate(_SPELLED)
    raw, words_neg = _words_of(text)
    low = [w for w, _ in words_neg]
    content: list[str] = []
    side: dict[str, int] = {}
    marker_seen = 0
    numbers: list[str] = []
    names: set[str] = set()
    negated: set[str] = set()
    pending_negation = False
    negations = 0
    for i, (orig, (w, neg)) in enumerate(zip(raw, words_neg)):
        if w in _DIRECTION:
            # count markers, not just the first: in "from English to Spanish" both
            # languages follow "from", and only "to" separates them
            marker_seen += 1
        if w[0].isdigit():
            numbers.append(w.replace(",", ""))
            continue
        if w in _NUMBER_WORDS:
            numbers.append(_NUMBER_WORDS[w])
            negations += neg  # "twelven't": read as "twelve" and a negation
            continue
        stop = w in _STOP
        if i and not stop and orig[0].isupper():
            names.add(w)  # a capitalised word mid-sentence: a name, a product, a place
        if neg:
            negations += 1
            pending_negation = True  # "not producing fruit": the negation is on "produc"
            continue
        if stop:
            continue
        s = w if w in _UNIT_NAMES else (_stem_memo(w) if len(w) <= MEMO_CHARS
                                        else _stem_raw(w))
        if pending_negation:
            negated.add(s)
            pending_negation = False
        content.append(s)
        if s not in side:
            side[s] = marker_seen
    if len(side) == len(content):  # no word twice: positions are the order
        first = {s: i for i, s in enumerate(content)}
    else:
        first = {}
        for i, s in enumerate(content):
            first.setdefault(s, i)
    words = frozenset(low)
    wh = words & _WH
    ops_text = text if text.isascii() else text.translate(_MATH)
    return Parsed(
        words, tuple(content), frozenset(content), first, side if marker_seen else {},
        frozenset(zip(content, content[1:])), len(low), len(text), negations,
        frozenset(numbers), tuple(numbers), words & _UNITS, frozenset(names), wh,
        words & _MODAL, words, tuple(low), frozenset(negated),
        # who acts on whom: "Who defeated Napoleon" asks for the subject, "Who did
        # Napoleon defeat" for the object; the content words are the same
        bool(wh) and not _DO.isdisjoint(words)
        and any(a in _WH and b in _DO for a, b in zip(low, low[1:])),
        # once per text, not once per pair: parsed texts are cached, pairs are not
        {w: _COMPARATIVES[w] for w in words & _COMPARATIVE_WORDS},
        _wh_head(low) if wh else None, _bindings(low) if numbers else frozenset(),
        tuple(_OPERATOR.findall(ops_text)) if _OPERATOR_CHAR.search(ops_text) else (),
        tuple(_SYMBOL.findall(text)) if not text.isascii() else ("$",) * text.count("$"),
        _foreign(text), _marks(ops_text))


def _discordance(p: Parsed, q: Parsed, shared: frozenset[str]) -> float:
    """Share of pairs of shared content words whose order differs (Kendall distance).

    Counted as each word's earlier words that come after it in ``q`` (a sorted list and
    bisect), not pair by pair: 2,000 shared words made 2 million pairs (90 ms)."""
    if len(shared) < 2:
        return 0.0
    words = sorted(shared, key=p.first_pos.__getitem__)
    seen: list[int] = []
    bad = 0
    for k, w in enumerate(words):
        x = q.first_pos[w]
        bad += k - bisect_right(seen, x)
        insort(seen, x)
    n = len(words)
    return bad / (n * (n - 1) / 2)


def _base_form_raw(w: str) -> str:
    """The positive form of a comparative or superlative in the antonym list: "cheaper"
    and "cheapest" are "cheap", "bigger" is "big", "easier" is "easy"; "more expensive"
    meets "cheaper" because the comparing word is a stop word."""
    for suffix in ("est", "er"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            stem = w[:-len(suffix)]
            for cand in (stem, stem + "e", stem[:-1] + "y" if stem.endswith("i") else "",
                         stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else ""):
                if cand in _ANTONYMS:
                    return cand
    return w


_base_form_memo = lru_cache(maxsize=1 << 16)(_base_form_raw)


def _base_form(w: str) -> str:
    return _base_form_memo(w) if len(w) <= MEMO_CHARS else _base_form_raw(w)


def _comparatives() -> dict[str, str]:
    """Every word whose ``_base_form`` is not itself, with that form: the forms that
    ``_base_form_raw`` can read back to an antonym list word (the word itself, less a
    final "e", "y" as "i", a doubled last letter), each with "er" and "est", kept where
    it does. A parse reads its words' positive forms with one set intersection."""
    out: dict[str, str] = {}
    for b in _ANTONYMS:
        stems = {b, b + b[-1]}
        if b.endswith("e"):
            stems.add(b[:-1])
        if b.endswith("y"):
            stems.add(b[:-1] + "i")
        for stem in stems:
            for suffix in ("est", "er"):
                w = stem + suffix
                if (base := _base_form_raw(w)) != w:
                    out[w] = base
    return out


_COMPARATIVES = _comparatives()
_COMPARATIVE_WORDS = frozenset(_COMPARATIVES)


def _antonym(p: Parsed, q: Parsed) -> float:
    if not (p.bases or not _ANTONYM_WORDS.isdisjoint(p.lowered)) or \
            not (q.bases or not _ANTONYM_WORDS.isdisjoint(q.lowered)):
        return 0.0  # one side has no word with an opposite (most pairs): nothing to find
    diff_p, diff_q = p.lowered - q.lowered, q.lowered - p.lowered
    only_p = diff_p | {p.bases[w] for w in diff_p if w in p.bases}
    only_q = diff_q | {q.bases[w] for w in diff_q if w in q.bases}
    only_p, only_q = only_p - only_q, only_q - only_p
    for w in only_p:
        opp = _ANTONYMS.get(w)
        if opp is not None and not opp.isdisjoint(only_q):
            return 1.0
    return 0.0


def _wh_head_diff(p: Parsed, q: Parsed) -> float:
    """1 when both ask with the same question word about different things; 0 when about
    the same thing; -1 when there is nothing to compare (no shared question word)."""
    a, b = p.wh_head, q.wh_head
    if a is None or b is None or a[0] != b[0]:
        return -1.0
    return float(a[1] != b[1])


def _binding_diff(p: Parsed, q: Parsed) -> int:
    """Numbers on both sides that carry another unit: "5 km in miles" / "5 miles in km"."""
    shared = {n for n, _ in p.bindings} & {n for n, _ in q.bindings}
    if not shared:
        return 0
    return len({b for b in p.bindings ^ q.bindings if b[0] in shared})


def features(query: Parsed, candidates: Sequence[Parsed],
             similarities: Sequence[float] | np.ndarray) -> np.ndarray:
    """``float32[len(candidates), len(FEATURES)]`` for one query against its candidates."""
    out = np.empty((len(candidates), len(FEATURES)), np.float32)
    p = query
    # each set operation is spelled out once (an intersection's size gives the union's),
    # and skipped where both sides are empty: this runs right after the query's embedding
    n_tok, n_content, n_bigrams = len(p.tokens), len(p.content_set), len(p.bigrams)
    p_numbers, p_units, p_names, p_modals, p_negated = (
        p.numbers, p.units, p.names, p.modals, p.negated)
    for row, (q, cos) in enumerate(zip(candidates, similarities)):
        shared = p.content_set & q.content_set
        n_shared = len(shared)
        only_p = n_content - n_shared
        only_q = len(q.content_set) - n_shared
        swaps = sum(p.side[w] != q.side[w] for w in shared
                    if w in p.side and w in q.side) if p.side and q.side else 0
        tok = len(p.tokens & q.tokens)
        tok_union = n_tok + len(q.tokens) - tok
        content_union = n_content + len(q.content_set) - n_shared
        bigram = len(p.bigrams & q.bigrams)
        bigram_union = n_bigrams + len(q.bigrams) - bigram
        out[row] = (
            cos, min(p.n_tokens, q.n_tokens), max(p.n_tokens, q.n_tokens),
            min(p.n_chars, q.n_chars) / max(p.n_chars, q.n_chars, 1),
            tok / tok_union if tok_union else 1.0,
            n_shared / content_union if content_union else 1.0,
            min(only_p, only_q), max(only_p, only_q),
            bigram / bigram_union if bigram_union else 1.0,
            _discordance(p, q, shared) if n_shared > 1 else 0.0, swaps,
            (p.negations - q.negations) % 2, abs(p.negations - q.negations),
            len(p_numbers ^ q.numbers) if p_numbers or q.numbers else 0,
            float(bool(p_numbers or q.numbers)),
            len(p_units ^ q.units) if p_units or q.units else 0,
            len(p_names ^ q.names) if p_names or q.names else 0, _antonym(p, q),
            float(p.wh != q.wh), n_shared,
            len(p_modals ^ q.modals) if p_modals or q.modals else 0,
            float(p.number_seq != q.number_seq and sorted(p.number_seq)
                  == sorted(q.number_seq)),
            len(p_negated ^ q.negated) if p_negated or q.negated else 0,
            float(p.do_support != q.do_support),
            _wh_head_diff(p, q),
            _binding_diff(p, q) if p.bindings and q.bindings else 0,
        )
    return out
