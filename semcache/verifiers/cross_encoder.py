"""The cross-encoder option: one BERT pass over the query and a candidate prompt together.

A sentence embedding compares two prompts through one vector each; a cross-encoder reads
both at once, so "Who defeated Napoleon" against "Who did Napoleon defeat" is one
sequence whose word order the attention sees. No cross-encoder ships with its weights in
a package this project can install (rerankers download theirs at run time), so the
project trains its own from the MiniLM weights it already installs:
``scripts/train_cross_encoder.py`` fine-tunes them on the shared pairs' tuning parts and
writes a folder with

* ``model.onnx``: the encoder, built by the same torch-free builder as the embedder
  (``embedders/_bert_onnx.py``) from the fine-tuned ``model.safetensors``;
* ``tokenizer.json``;
* ``cross_encoder.json``: the head (mean pooling, then one linear unit, plus the pair's
  embedding cosine times a learned weight), the sequence length, the operating points
  chosen on tuning data, and how it was fitted.

With the cosine term, training starts from the cosine's ranking instead of a random
head: the head starts as a logistic fit on the cosine (the untrained model ranks exactly
like it) and the encoder learns what to add. docs/verifier.md has what 2.65 CPU epochs
reached (not yet better than the structural verifier). A version-1 folder (no cosine
weight) still loads.

Scores are symmetric: both orders of the pair are scored in one batch and their logits
averaged, so which prompt was stored first never changes the verdict. Nothing is
downloaded; a missing folder is a ``ConfigError`` that says how to make one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, InvalidRequestError
from .._threads import ort_session_options
from .base import Verifier, check_probability

__all__ = ["MODEL_DOC", "CrossEncoderVerifier", "default_folder"]

MODEL_DOC = "cross_encoder.json"


def default_folder() -> Path:
    """``$SEMCACHE_CROSS_ENCODER``, else ``cross-encoder`` under ``$SEMCACHE_HOME`` or the
    XDG cache (where the training script writes by default)."""
    env = os.environ.get("SEMCACHE_CROSS_ENCODER")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("SEMCACHE_HOME")
    if home:
        return Path(home).expanduser() / "cross-encoder"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "semcache" / "cross-encoder"


def _missing(folder: Path, why: str) -> ConfigError:
    return ConfigError(
        f"no usable cross-encoder in {folder} ({why}); train one with "
        "`python scripts/train_cross_encoder.py --out <folder>` (hours on CPU, minutes on a "
        "GPU) and pass verifier=<folder> or set SEMCACHE_CROSS_ENCODER",
        parameter="verifier")


class CrossEncoderVerifier(Verifier):
    """``P(right)`` from a fine-tuned MiniLM reading the query and the candidate together."""

    name = "cross-encoder"

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 threshold: float | None = None, intra_op_threads: int = 1) -> None:
        folder = Path(path).expanduser() if path is not None else default_folder()
        try:
            doc = json.loads((folder / MODEL_DOC).read_text())
        except FileNotFoundError as exc:
            raise _missing(folder, f"no {MODEL_DOC}") from exc
        except (OSError, ValueError) as exc:
            raise _missing(folder, f"{MODEL_DOC} unreadable: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("kind") != "cross-encoder":
            raise _missing(folder, f"{MODEL_DOC} is not a cross-encoder description")
        try:
            head = doc["head"]
            self._w = np.asarray(head["weight"], np.float32).reshape(-1)
            self._b = float(head["bias"])
            # version 1 folders have no cosine term
            self._wc = float(head.get("cosine_weight", 0.0))
            self.max_length = int(doc["max_length"])
            self.floor = float(doc["floor"])
            default_threshold = float(doc["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _missing(folder, f"{MODEL_DOC} lacks a field: {exc}") from exc
        # a NaN or empty head scores NaN (or fails the product) on every lookup, a floor
        # or threshold outside [0, 1] serves all or nothing: refused here, once
        if not (self._w.size and np.isfinite(self._w).all()
                and np.isfinite([self._b, self._wc]).all()):
            raise _missing(folder, f"{MODEL_DOC}: the head's weights are empty or not "
                                   "finite")
        for field, v in (("floor", self.floor), ("threshold", default_threshold)):
            if not 0.0 <= v <= 1.0:
                raise _missing(folder, f"{MODEL_DOC}: {field} {v!r} is not in [0, 1]")
        if self.max_length < 1:
            raise _missing(folder, f"{MODEL_DOC}: max_length {self.max_length} < 1")
        for needed in ("model.onnx", "tokenizer.json"):
            if not (folder / needed).is_file():
                raise _missing(folder, f"no {needed}")
        self.threshold = check_probability(
            default_threshold if threshold is None else threshold, "verifier_threshold")
        self.folder = folder
        self.info: dict[str, Any] = {k: v for k, v in doc.items() if k != "head"}
        self._threads = intra_op_threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        # loaded on first use: constructing a Cache must not cost a model load
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
                tok.enable_truncation(self.max_length)
                tok.enable_padding()
                # the process's thread policy (no spinning, one inter-op thread), with
                # one intra-op thread by default: one request's pairs are a handful of
                # short sequences, and threads would fight the embedder's (issue 25)
                opts = ort_session_options(self._threads)
                self._session = ort.InferenceSession(str(self.folder / "model.onnx"), opts,
                                                     providers=["CPUExecutionProvider"])
                self._tokenizer = tok
            return self._session, self._tokenizer

    @property
    def needs_cosines(self) -> bool:
        """Whether the head reads the pair's embedding cosine (version 2 folders)."""
        return self._wc != 0.0

    def logits(self, pairs: Sequence[tuple[str, str]],
               cosines: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """The head's logit for each ``(first, second)`` sequence pair, in that order;
        ``cosines``: each pair's embedding cosine, which a version-2 head reads."""
        if not pairs:
            return np.zeros(0, np.float32)
        c = self._cosines(cosines, len(pairs))
        session, tok = self._load()
        enc = tok.encode_batch(list(pairs))
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        types = np.array([e.type_ids for e in enc], np.int64)
        (hidden,) = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                       "token_type_ids": types})
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        return np.asarray(pooled @ self._w + self._b + self._wc * c, np.float32)

    def _cosines(self, cosines: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
        if cosines is None:
            if self.needs_cosines:
                raise InvalidRequestError(
                    f"the cross-encoder in {self.folder} reads each pair's embedding "
                    "cosine: pass similarities")
            return np.zeros(n, np.float32)
        c = np.asarray(cosines, np.float32).reshape(-1)
        if len(c) != n:
            raise InvalidRequestError(f"{len(c)} cosines for {n} pairs")
        if not np.isfinite(c).all():
            raise InvalidRequestError("a cosine is not a finite number")
        return c

    def _score(self, query: str, prompts: Sequence[str],
               similarities: np.ndarray) -> np.ndarray:
        return self.score_pairs([query] * len(prompts), prompts, similarities)

    async def averify(self, query: str, prompts: Sequence[str],
                      similarities: Sequence[float]) -> np.ndarray:
        # a BERT pass is milliseconds of CPU: never on the event loop
        import asyncio

        return await asyncio.to_thread(self.verify, query, prompts, similarities)

    def score_pairs(self, queries: Sequence[str], prompts: Sequence[str],
                    similarities: Sequence[float] | np.ndarray | None = None
                    ) -> np.ndarray:
        """Symmetric probabilities for many independent pairs (one ORT call per 256)."""
        c = self._cosines(similarities, len(queries))
        out = []
        for i in range(0, len(queries), 256):
            q, p = list(queries[i:i + 256]), list(prompts[i:i + 256])
            ci = c[i:i + 256]
            z = self.logits(list(zip(q, p)) + list(zip(p, q)), np.concatenate([ci, ci]))
            n = len(q)
            out.append((z[:n] + z[n:]) / 2.0)
        z = np.concatenate(out) if out else np.zeros(0, np.float32)
        return np.asarray(1.0 / (1.0 + np.exp(-z.astype(np.float64))))
