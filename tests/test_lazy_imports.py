"""``import semcache`` stays light: no torch, sentence-transformers or onnxruntime.

Importing sentence-transformers alone costs ~7 s (issue 6); the embedders import their
runtimes on first use. Run in a fresh interpreter so other tests' imports don't count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ["torch", "sentence_transformers", "transformers", "onnxruntime", "onnx",
         "tokenizers", "openai"]


def test_import_semcache_is_light() -> None:
    code = (
        "import sys, semcache, semcache.embedders.registry, semcache.embedders.onnx, "
        "semcache.embedders.openai\n"
        "from semcache.embedders.registry import resolve_embedder\n"
        "e = resolve_embedder('all-MiniLM-L6-v2'); assert e.dim == 384\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
