"""Build an MPNet encoder's ONNX graph from its safetensors weights, without torch.

Why (issue #20): all-mpnet-base-v2 is offered next to MiniLM, and the torch exporter
would put torch (the ``st`` extra, ~800 MB) back on the path of an option whose weights
already cost ~400 MB. MPNet differs from BERT (``_bert_onnx``, whose graph helpers,
layer included, build both) in three small ways, taken from transformers'
``modeling_mpnet``:

* positions start at ``padding_idx + 1`` (2): rows ``2 .. seq+1`` of the position table
  (the runtime pads on the right, so real tokens get exactly transformers' ids); no
  token types;
* every layer adds one relative position bias to its attention scores: a table
  ``[32 buckets, heads]`` looked up by T5-style buckets of ``key - query`` positions,
  computed here once with numpy for every position pair up to the model's window and
  sliced to the batch's length in the graph;
* the projections are named ``attention.attn.{q,k,v,o}`` and the attention LayerNorm
  ``attention.LayerNorm``.

Graph interface: ``input_ids``, ``attention_mask`` -> ``last_hidden_state``, dynamic
batch and sequence axes. tests/embedders/test_mpnet.py checks the vectors against
sentence-transformers on torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._bert_onnx import _Graph, read_safetensors

__all__ = ["BUILDER", "build_mpnet_onnx", "relative_buckets", "supports"]

BUILDER = "semcache-mpnet-onnx-1"


def supports(model_dir: Path) -> bool:
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
    except (FileNotFoundError, ValueError):
        return False
    return (cfg.get("model_type") == "mpnet" and (model_dir / "model.safetensors").is_file()
            and cfg.get("hidden_act", "gelu") == "gelu")


def relative_buckets(length: int, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """``[length, length]`` bucket of ``key - query`` for every pair, as transformers'
    ``MPNetEncoder.relative_position_bucket`` computes it (float32 log, truncation)."""
    pos = np.arange(length, dtype=np.int64)
    n = -(pos[None, :] - pos[:, None])  # query - key
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):  # log(0) where n == 0: masked by is_small
        large = np.log(n.astype(np.float32) / np.float32(max_exact)) \
            / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = max_exact + np.where(n < max_exact, 0, large).astype(np.int64)
    large = np.minimum(large, half - 1)
    return ret + np.where(n < max_exact, n, large)


def build_mpnet_onnx(model_dir: str | Path, out_path: str | Path, *,
                     opset: int = 17) -> list[str]:
    """Write ``model_dir``'s MPNet encoder to ``out_path``; return the graph's input names."""
    from onnx import TensorProto, helper

    model_dir = Path(model_dir)
    cfg: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
    w = {k.removeprefix("mpnet."): v
         for k, v in read_safetensors(model_dir / "model.safetensors").items()}
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    eps = float(cfg.get("layer_norm_eps", 1e-5))
    pad = int(cfg.get("pad_token_id", 1))
    window = int(cfg["max_position_embeddings"]) - pad - 1  # longest sequence it embeds
    g = _Graph()
    names = ["input_ids", "attention_mask"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in names]
    ints = {k: g.const(f"const_{k}", np.array(v, np.int64)) for k, v in
         {"zero": [0], "zeros2": [0, 0], "one": [1], "two": [2], "axes01": [0, 1]}.items()}

    # embeddings: word + position rows pad+1 .. pad+seq, LayerNorm
    words = g.op("Gather", [g.const("embeddings.word_embeddings.weight",
                                    w["embeddings.word_embeddings.weight"]), "input_ids"],
                 "/embeddings/word_embeddings/Gather")
    seq = g.op("Slice", [g.op("Shape", ["input_ids"], "/embeddings/Shape"), ints["one"],
                         ints["two"]], "/embeddings/Slice")
    pos = g.op("Slice", [g.const("embeddings.position_embeddings.weight",
                                 w["embeddings.position_embeddings.weight"][pad + 1:]),
                         ints["zero"], seq, ints["zero"]], "/embeddings/position_embeddings/Slice")
    x = g.op("Add", [words, pos], "/embeddings/Add")
    x = g.layer_norm(x, w, "embeddings.LayerNorm", eps)

    # one additive term for every layer's scores: relative position bias [1, h, s, s]
    # plus the padding mask [b, 1, 1, s]
    buckets = g.op("Slice", [g.const("encoder.relative_buckets", relative_buckets(
        window, int(cfg.get("relative_attention_num_buckets", 32)))), ints["zeros2"],
        g.op("Concat", [seq, seq], "/encoder/bias/Concat", axis=0), ints["axes01"]],
        "/encoder/bias/Slice")
    bias = g.op("Gather", [g.const("encoder.relative_attention_bias.weight",
                                   w["encoder.relative_attention_bias.weight"]), buckets],
                "/encoder/bias/Gather")  # [s, s, h]
    bias = g.op("Unsqueeze", [g.op("Transpose", [bias], "/encoder/bias/Transpose",
                                   perm=[2, 0, 1]), ints["zero"]], "/encoder/bias/Unsqueeze")
    extra = g.op("Add", [bias, g.additive_mask()], "/encoder/bias/Add")
    c = g.layer_consts(hidden, heads)
    for i in range(int(cfg["num_hidden_layers"])):
        x = g.encoder_layer(x, w, i, extra, c, eps, attn="attention.attn", qkv=("q", "k", "v"),
                            out="attention.attn.o", out_norm="attention.LayerNorm")
    g.save(x, inputs, hidden, "mpnet", BUILDER, opset, out_path)
    return names
