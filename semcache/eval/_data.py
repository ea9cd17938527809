"""Loading labeled evaluation data: pairs (JSONL, CSV, TSV), paraphrase sets, conversations.

Column layouts are recognised from their names (QQP, PAWS, MRPC and semcache's own
``{query, candidate, label}``); a headerless TSV whose rows look like PAWS
(``id, sentence1, sentence2, label``) is read as PAWS. Anything else can be named with
``columns=``. Format problems raise ``InvalidRequestError`` naming the file and line.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InvalidRequestError

__all__ = [
    "LAYOUTS",
    "Conversation",
    "Pairs",
    "detect_format",
    "load_conversations",
    "load_pairs",
    "load_paraphrases",
]

#: recognised column layouts: (query, candidate, label); the first whose names all
#: appear in a file's header wins
LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("query", "candidate", "label"),            # semcache / GPTCache's QQP export
    ("question1", "question2", "is_duplicate"),  # Quora Question Pairs
    ("sentence1", "sentence2", "label"),         # PAWS, GLUE
    ("#1 String", "#2 String", "Quality"),       # MRPC
    ("text1", "text2", "label"),
)


@dataclass(frozen=True)
class Pairs:
    """Labeled text pairs: ``labels[i]`` is 1 when ``queries[i]`` and ``candidates[i]``
    should share an answer, else 0."""

    queries: list[str]
    candidates: list[str]
    labels: np.ndarray  # int8, 0 or 1
    source: str = ""

    def __post_init__(self) -> None:
        if not len(self.queries) == len(self.candidates) == len(self.labels):
            raise InvalidRequestError("queries, candidates and labels differ in length")

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def n_positive(self) -> int:
        return int(self.labels.sum())

    def head(self, n: int) -> Pairs:
        return Pairs(self.queries[:n], self.candidates[:n], self.labels[:n], self.source)

    def sample(self, n: int, seed: int = 0) -> Pairs:
        """``n`` pairs drawn without replacement (all of them if ``n >= len``)."""
        if n < 1:
            raise InvalidRequestError(f"a sample needs at least 1 pair, got {n}")
        if n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return Pairs([self.queries[i] for i in idx], [self.candidates[i] for i in idx],
                     self.labels[idx], self.source)


@dataclass(frozen=True)
class Conversation:
    """A two-turn conversation: the follow-up's meaning depends on the main query."""

    query: str
    response: str
    follow_up: str
    follow_up_response: str


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: a byte order mark (as Windows tools write) is not part of the first line
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig", newline="")


@contextmanager
def _reading(path: str | Path) -> Iterator[None]:
    """Turn a file that cannot be read as text (missing, a folder, not UTF-8, a cut,
    damaged or fake gzip, an oversized CSV field) into an error naming the file; JSON that
    cannot be read is ``_parse_json``'s."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError, csv.Error, zlib.error) as exc:  # zlib: a damaged gzip body
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidRequestError(f"{path}: cannot read: {reason}") from None


def _parse_json(text: str, where: str) -> Any:
    """``json.loads`` with every way it fails on bad text as an error naming ``where``:
    broken JSON, an integer longer than Python converts (``sys.get_int_max_str_digits``,
    a ``ValueError``) and nesting deeper than the recursion limit (a ``RecursionError``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"{where}: not JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequestError(f"{where}: JSON nested too deeply to read") from None
    except ValueError:  # after JSONDecodeError, its subclass: the only other ValueError
        raise InvalidRequestError(f"{where}: a JSON number has more than "
                                  f"{sys.get_int_max_str_digits()} digits") from None


def _check_unicode(where: str, *texts: str) -> None:
    """JSON can spell a lone surrogate (``"\\ud800"``), which no encoder or tokenizer
    takes: name the record instead of failing in the embedding."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(f"{where}: {text!r} is not valid Unicode text "
                                      "(a lone surrogate)") from None


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise InvalidRequestError(f"limit must be at least 1, got {limit}")


def _strip_gz(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return Path(name).suffix.lower()


def detect_format(path: str | Path) -> str:
    """``"jsonl"``, ``"json"``, ``"csv"`` or ``"tsv"``, from the suffix (``.gz`` allowed),
    else from the first line."""
    path = Path(path)
    ext = _strip_gz(path)
    known = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
             ".tsv": "tsv", ".txt": "tsv"}
    if ext in known and ext != ".txt":
        return known[ext]
    with _reading(path), _open_text(path) as fh:
        first = fh.readline()
    s = first.lstrip()
    if s.startswith("{"):
        return "jsonl"
    if s.startswith("["):
        return "json"
    return "tsv" if "\t" in first else "csv"


def _label(value: Any, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false", "0.0",
                                                            "1.0"):
        return int(value.strip().lower() in ("1", "true", "1.0"))
    raise InvalidRequestError(f"{where}: label must be 0/1 or true/false, got {value!r}")


def _pick_layout(names: Sequence[str], columns: Sequence[str] | None,
                 where: str) -> tuple[str, str, str]:
    if columns is not None:
        if len(columns) != 3:
            raise InvalidRequestError("columns= takes three names: query, candidate, label")
        missing = [c for c in columns if c not in names]
        if missing:
            raise InvalidRequestError(f"{where}: no column {missing[0]!r}; has {list(names)}")
        return tuple(columns)  # type: ignore[return-value]
    for layout in LAYOUTS:
        if all(c in names for c in layout):
            return layout
    raise InvalidRequestError(
        f"{where}: cannot tell the query/candidate/label columns from {list(names)}; "
        "name them (columns=, or --query-col/--candidate-col/--label-col)")


def _records(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any] | list[str]]]:
    """(where, row) with row a dict (keyed rows) or a list (headerless TSV)."""
    with _open_text(path) as fh:
        if fmt == "jsonl":
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield f"{path}:{n}", _parse_json(line, f"{path}:{n}")
            return
        if fmt == "json":
            data = _parse_json(fh.read(), str(path))
            if not isinstance(data, list):
                raise InvalidRequestError(f"{path}: expected a JSON list of objects")
            for n, row in enumerate(data):
                yield f"{path}[{n}]", row
            return
        delim = "\t" if fmt == "tsv" else ","
        # MRPC and PAWS contain bare quotes inside fields: TSV is read without quoting
        reader = csv.reader(fh, delimiter=delim,
                            quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
        header: list[str] | None = None
        for n, row in enumerate(reader, 1):
            if not row or not any(c.strip() for c in row):
                continue
            if header is None:
                if _looks_like_headerless_paws(row):
                    header = ["id", "sentence1", "sentence2", "label"]
                else:
                    header = [c.strip().lstrip("\ufeff") for c in row]
                    continue
            if len(row) != len(header):
                raise InvalidRequestError(
                    f"{path}:{n}: {len(row)} fields, header has {len(header)}")
            yield f"{path}:{n}", dict(zip(header, row))


def _looks_like_headerless_paws(row: list[str]) -> bool:
    return len(row) == 4 and row[0].strip().isdigit() and row[3].strip() in ("0", "1")


def load_pairs(path: str | Path, *, fmt: str | None = None,
               columns: Sequence[str] | None = None, limit: int | None = None) -> Pairs:
    """Labeled pairs from a file (JSONL/JSON/CSV/TSV, optionally gzipped)."""
    _check_limit(limit)
    path = Path(path)
    with _reading(path):
        return _load_pairs(path, fmt, columns, limit)


def _load_pairs(path: Path, fmt: str | None, columns: Sequence[str] | None,
                limit: int | None) -> Pairs:
    fmt = fmt or detect_format(path)
    if fmt not in ("jsonl", "json", "csv", "tsv"):
        raise InvalidRequestError(f"unknown format {fmt!r}: jsonl, json, csv or tsv")
    queries: list[str] = []
    candidates: list[str] = []
    labels: list[int] = []
    layout: tuple[str, str, str] | None = None
    if fmt == "json" and _is_paraphrase_list(path):
        return load_paraphrases(path, limit=limit)
    for where, row in _records(path, fmt):
        if not isinstance(row, dict):
            raise InvalidRequestError(f"{where}: expected an object")
        if layout is None:
            layout = _pick_layout(list(row), columns, where)
        q, c, lab = layout
        try:
            query, cand, label = row[q], row[c], row[lab]
        except KeyError as exc:
            raise InvalidRequestError(f"{where}: missing field {exc.args[0]!r}") from None
        if not isinstance(query, str) or not isinstance(cand, str):
            raise InvalidRequestError(f"{where}: {q!r} and {c!r} must be strings")
        _check_unicode(where, query, cand)
        queries.append(query)
        candidates.append(cand)
        labels.append(_label(label, where))
        if limit is not None and len(labels) >= limit:
            break
    if not labels:
        raise InvalidRequestError(f"{path}: no pairs")
    return Pairs(queries, candidates, np.asarray(labels, dtype=np.int8), str(path))


def _is_paraphrase_list(path: Path) -> bool:
    with _open_text(path) as fh:
        data = _parse_json(fh.read(), str(path))
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict)
            and {"origin", "similar"} <= set(data[0]))


def load_paraphrases(path: str | Path, *, limit: int | None = None) -> Pairs:
    """GPTCache's ``mock_data.json`` layout (``[{"origin", "similar"}]``): every pair is a
    positive."""
    _check_limit(limit)
    path = Path(path)
    with _reading(path), _open_text(path) as fh:
        data = _parse_json(fh.read(), str(path))
    if not isinstance(data, list) or not all(
            isinstance(r, dict) and isinstance(r.get("origin"), str)
            and isinstance(r.get("similar"), str) for r in data):
        raise InvalidRequestError(f"{path}: expected a JSON list of {{origin, similar}}")
    data = data[:limit] if limit is not None else data
    for n, r in enumerate(data):
        _check_unicode(f"{path}[{n}]", r["similar"], r["origin"])
    if not data:
        raise InvalidRequestError(f"{path}: no pairs")
    return Pairs([r["similar"] for r in data], [r["origin"] for r in data],
                 np.ones(len(data), dtype=np.int8), str(path))


_CONV_KEYS = ("Main Query", "Main Query Response", "Follow-Up Query",
              "Follow Up Query Response")


def load_conversations(paths: str | Path | Sequence[str | Path]) -> list[Conversation]:
    """Two-turn conversations (MeanCache's contextual-queries layout) from one or more
    JSON files, in file order."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Conversation] = []
    for p in paths:
        with _reading(p), _open_text(Path(p)) as fh:
            data = _parse_json(fh.read(), str(p))
        if not isinstance(data, list):
            raise InvalidRequestError(f"{p}: expected a JSON list of conversations")
        for n, row in enumerate(data):
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str)
                                                    for k in _CONV_KEYS):
                raise InvalidRequestError(f"{p}[{n}]: needs string fields {list(_CONV_KEYS)}")
            _check_unicode(f"{p}[{n}]", *(row[k] for k in _CONV_KEYS))
            out.append(Conversation(*(row[k] for k in _CONV_KEYS)))
    if not out:
        raise InvalidRequestError(f"no conversations in {', '.join(map(str, paths))}")
    return out
