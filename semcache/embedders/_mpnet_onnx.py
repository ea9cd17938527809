"""Build an MPNet encoder's ONNX graph from its safetensors weights, without torch.

Why (issue #20): all-mpnet-base-v2 is offered next to MiniLM, and the torch exporter
would put torch (the ``st`` extra, ~800 MB) back on the path of an option whose weights
already cost ~400 MB. MPNet differs from BERT (``_bert_onnx``, whose graph helpers this
reuses) in three small ways, taken from transformers' ``modeling_mpnet``:

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
    import onnx
    from onnx import TensorProto, helper

    model_dir = Path(model_dir)
    cfg: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
    w = {k.removeprefix("mpnet."): v
         for k, v in read_safetensors(model_dir / "model.safetensors").items()}
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    head_dim, eps = hidden // heads, float(cfg.get("layer_norm_eps", 1e-5))
    pad = int(cfg.get("pad_token_id", 1))
    window = int(cfg["max_position_embeddings"]) - pad - 1  # longest sequence it embeds
    g = _Graph()
    names = ["input_ids", "attention_mask"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in names]
    c = {k: g.const(f"const_{k}", np.array(v, np.int64)) for k, v in
         {"zero": [0], "zeros2": [0, 0], "one": [1], "two": [2], "axes01": [0, 1],
          "axes12": [1, 2]}.items()}

    # embeddings: word + position rows pad+1 .. pad+seq, LayerNorm
    words = g.op("Gather", [g.const("embeddings.word_embeddings.weight",
                                    w["embeddings.word_embeddings.weight"]), "input_ids"],
                 "/embeddings/word_embeddings/Gather")
    seq = g.op("Slice", [g.op("Shape", ["input_ids"], "/embeddings/Shape"), c["one"],
                         c["two"]], "/embeddings/Slice")
    pos = g.op("Slice", [g.const("embeddings.position_embeddings.weight",
                                 w["embeddings.position_embeddings.weight"][pad + 1:]),
                         c["zero"], seq, c["zero"]], "/embeddings/position_embeddings/Slice")
    x = g.op("Add", [words, pos], "/embeddings/Add")
    x = g.layer_norm(x, w, "embeddings.LayerNorm", eps)

    # one additive term for every layer's scores: relative position bias [1, h, s, s]
    # plus the padding mask [b, 1, 1, s] (0 where attended, float32 min elsewhere)
    buckets = g.op("Slice", [g.const("encoder.relative_buckets", relative_buckets(
        window, int(cfg.get("relative_attention_num_buckets", 32)))), c["zeros2"],
        g.op("Concat", [seq, seq], "/encoder/bias/Concat", axis=0), c["axes01"]],
        "/encoder/bias/Slice")
    bias = g.op("Gather", [g.const("encoder.relative_attention_bias.weight",
                                   w["encoder.relative_attention_bias.weight"]), buckets],
                "/encoder/bias/Gather")  # [s, s, h]
    bias = g.op("Unsqueeze", [g.op("Transpose", [bias], "/encoder/bias/Transpose",
                                   perm=[2, 0, 1]), c["zero"]], "/encoder/bias/Unsqueeze")
    mask = g.op("Cast", ["attention_mask"], "/mask/Cast", to=TensorProto.FLOAT)
    mask = g.op("Sub", [g.const("const_one_f", np.array(1.0, np.float32)), mask], "/mask/Sub")
    mask = g.op("Mul", [mask, g.const("const_min_f", np.array(np.finfo(np.float32).min,
                                                               np.float32))], "/mask/Mul")
    mask = g.op("Unsqueeze", [mask, c["axes12"]], "/mask/Unsqueeze")
    extra = g.op("Add", [bias, mask], "/encoder/bias/Add")

    split = g.const("const_split_heads", np.array([0, 0, heads, head_dim], np.int64))
    merge = g.const("const_merge_heads", np.array([0, 0, hidden], np.int64))
    scale = g.const("const_scale", np.array(1.0 / math.sqrt(head_dim), np.float32))
    sqrt2 = g.const("const_sqrt2", np.array(math.sqrt(2.0), np.float32))
    one, half = g.const("const_one_g", np.array(1.0, np.float32)), \
        g.const("const_half", np.array(0.5, np.float32))

    for i in range(int(cfg["num_hidden_layers"])):
        p, path = f"encoder.layer.{i}", f"/encoder/layer.{i}"

        def heads_of(t: str, kind: str, perm: list[int], p: str = p, path: str = path) -> str:
            r = g.op("Reshape", [g.linear(t, w, f"{p}.attention.attn.{kind}"), split],
                     f"{path}/attention/attn/{kind}/Reshape")
            return g.op("Transpose", [r], f"{path}/attention/attn/{kind}/Transpose", perm=perm)

        q = heads_of(x, "q", [0, 2, 1, 3])
        k = heads_of(x, "k", [0, 2, 3, 1])
        v = heads_of(x, "v", [0, 2, 1, 3])
        scores = g.op("Mul", [g.op("MatMul", [q, k], f"{path}/attention/attn/MatMul"), scale],
                      f"{path}/attention/attn/Mul")
        scores = g.op("Add", [scores, extra], f"{path}/attention/attn/Add")
        probs = g.op("Softmax", [scores], f"{path}/attention/attn/Softmax", axis=-1)
        ctx = g.op("MatMul", [probs, v], f"{path}/attention/attn/MatMul_1")
        ctx = g.op("Transpose", [ctx], f"{path}/attention/attn/Transpose", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge], f"{path}/attention/attn/Reshape")
        a = g.op("Add", [g.linear(ctx, w, f"{p}.attention.attn.o"), x],
                 f"{path}/attention/Add_1")
        x = g.layer_norm(a, w, f"{p}.attention.LayerNorm", eps)
        h = g.linear(x, w, f"{p}.intermediate.dense")  # exact (erf) GELU, as BERT's
        e = g.op("Erf", [g.op("Div", [h, sqrt2], f"{path}/intermediate/Div")],
                 f"{path}/intermediate/Erf")
        e = g.op("Add", [e, one], f"{path}/intermediate/Add_1")
        h = g.op("Mul", [g.op("Mul", [h, e], f"{path}/intermediate/Mul"), half],
                 f"{path}/intermediate/Mul_1")
        o = g.op("Add", [g.linear(h, w, f"{p}.output.dense"), x], f"{path}/output/Add_1")
        x = g.layer_norm(o, w, f"{p}.output.LayerNorm", eps)

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="/Identity"))
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                           ["batch", "sequence", hidden])
    graph = helper.make_graph(g.nodes, "mpnet", inputs, [output], initializer=g.inits)
    model = helper.make_model(graph, producer_name=BUILDER,
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime >= 1.14
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return names
