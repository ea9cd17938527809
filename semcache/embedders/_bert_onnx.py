"""Build a BERT encoder's ONNX graph from its safetensors weights, without torch.

Why (issue #19): the ``local`` extra pulled torch (~800 MB) only to run
``torch.onnx.export`` once. A BERT encoder is a fixed, small graph (embeddings, N
identical layers, the last hidden state), so it is written here node by node with
``onnx.helper`` from ``model.safetensors`` read with numpy (8-byte little-endian header
length, a JSON header, raw little-endian tensors: no safetensors or torch import).

The graph has the torch export's interface (``input_ids``, ``attention_mask``,
``token_type_ids`` -> ``last_hidden_state``, dynamic batch and sequence axes) and its
node names for the projections (``/encoder/layer.<i>/output/dense/MatMul`` ...), which is
what the int8 recipe uses to keep the feed-forward output projections in fp32. The
operator patterns (Erf GELU, ReduceMean-free ``LayerNormalization``, Softmax attention)
are ones onnxruntime's optimizer fuses, so it runs as fast as the torch export.
tests/embedders/test_bert_onnx.py checks the vectors against the torch export.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BUILDER", "build_bert_onnx", "read_safetensors", "supports"]

#: Recorded in each export's manifest; an export made by another builder (or another
#: version of this one) is rebuilt, so a fix here reaches every user's cache.
BUILDER = "semcache-bert-onnx-1"

_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a ``.safetensors`` file as float32 / int64 numpy arrays."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        raw = data[start:end]
        dtype = spec["dtype"]
        if dtype == "BF16":  # numpy has no bfloat16: it is float32's upper half
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif dtype in _DTYPES:
            arr = np.frombuffer(raw, _DTYPES[dtype])
        else:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        arr = arr.reshape(spec["shape"])
        out[name] = arr.astype(np.float32 if arr.dtype.kind == "f" else np.int64)
    return out


def supports(model_dir: Path) -> bool:
    """Whether this builder can build the folder's model (else torch is needed)."""
    cfg = _config(model_dir)
    return (cfg.get("model_type") == "bert" and (model_dir / "model.safetensors").is_file()
            and cfg.get("hidden_act", "gelu") == "gelu"
            and cfg.get("position_embedding_type", "absolute") == "absolute")


def _config(model_dir: Path) -> dict[str, Any]:
    try:
        cfg: dict[str, Any] = json.loads((model_dir / "config.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return cfg


def _weights(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop a ``bert.`` prefix (BertForX checkpoints) so names are BertModel's."""
    return {k.removeprefix("bert."): v for k, v in tensors.items()}


class _Graph:
    """Nodes and initializers under construction; each helper returns its output name."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        out = f"{name}_output_0"
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def linear(self, x: str, w: dict[str, np.ndarray], prefix: str) -> str:
        """``x @ W.T + b``, W stored transposed as torch's constant folding leaves it."""
        wt = self.const(f"{prefix}.weight_t", w[f"{prefix}.weight"].T)
        b = self.const(f"{prefix}.bias", w[f"{prefix}.bias"])
        path = "/" + prefix.replace(".", "/").replace("/layer/", "/layer.")
        return self.op("Add", [self.op("MatMul", [x, wt], f"{path}/MatMul"), b],
                       f"{path}/Add")

    def layer_norm(self, x: str, w: dict[str, np.ndarray], prefix: str, eps: float) -> str:
        path = "/" + prefix.replace(".", "/").replace("/layer/", "/layer.")
        return self.op("LayerNormalization",
                       [x, self.const(f"{prefix}.weight", w[f"{prefix}.weight"]),
                        self.const(f"{prefix}.bias", w[f"{prefix}.bias"])],
                       f"{path}/LayerNormalization", axis=-1, epsilon=eps)

    def additive_mask(self) -> str:
        """``attention_mask`` as an additive term ``[batch, 1, 1, seq]``: 0 where attended,
        float32 min elsewhere (what transformers adds for the eager attention)."""
        from onnx import TensorProto

        mask = self.op("Cast", ["attention_mask"], "/mask/Cast", to=TensorProto.FLOAT)
        mask = self.op("Sub", [self.const("const_one_f", np.array(1.0, np.float32)), mask],
                       "/mask/Sub")
        mask = self.op("Mul", [mask, self.const("const_min_f", np.array(
            np.finfo(np.float32).min, np.float32))], "/mask/Mul")
        return self.op("Unsqueeze", [mask, self.const("const_axes_12", np.array(
            [1, 2], np.int64))], "/mask/Unsqueeze")

    def layer_consts(self, hidden: int, heads: int) -> dict[str, str]:
        """The constants every layer shares (``encoder_layer``'s ``c``)."""
        head_dim = hidden // heads
        f32 = np.float32
        return {"split": self.const("const_split_heads",
                                    np.array([0, 0, heads, head_dim], np.int64)),
                "merge": self.const("const_merge_heads", np.array([0, 0, hidden], np.int64)),
                "scale": self.const("const_scale", np.array(1.0 / math.sqrt(head_dim), f32)),
                "sqrt2": self.const("const_sqrt2", np.array(math.sqrt(2.0), f32)),
                "one": self.const("const_one_g", np.array(1.0, f32)),
                "half": self.const("const_half", np.array(0.5, f32))}

    def encoder_layer(self, x: str, w: dict[str, np.ndarray], i: int, extra: str,
                      c: dict[str, str], eps: float, *, attn: str = "attention.self",
                      qkv: tuple[str, str, str] = ("query", "key", "value"),
                      out: str = "attention.output.dense",
                      out_norm: str = "attention.output.LayerNorm") -> str:
        """Layer ``i`` of a post-LayerNorm encoder (BERT's, and MPNet's with its weight
        names): self-attention whose scores get the additive term ``extra``, residual and
        LayerNorm, exact (erf) GELU feed-forward, residual and LayerNorm."""
        p, path = f"encoder.layer.{i}", f"/encoder/layer.{i}"
        apath = f"{path}/{attn.replace('.', '/')}"

        def heads_of(kind: str, perm: list[int]) -> str:
            r = self.op("Reshape", [self.linear(x, w, f"{p}.{attn}.{kind}"), c["split"]],
                        f"{apath}/{kind}/Reshape")
            return self.op("Transpose", [r], f"{apath}/{kind}/Transpose", perm=perm)

        q = heads_of(qkv[0], [0, 2, 1, 3])
        k = heads_of(qkv[1], [0, 2, 3, 1])
        v = heads_of(qkv[2], [0, 2, 1, 3])
        scores = self.op("Mul", [self.op("MatMul", [q, k], f"{apath}/MatMul"), c["scale"]],
                         f"{apath}/Mul")
        scores = self.op("Add", [scores, extra], f"{apath}/Add")
        probs = self.op("Softmax", [scores], f"{apath}/Softmax", axis=-1)
        ctx = self.op("MatMul", [probs, v], f"{apath}/MatMul_1")
        ctx = self.op("Transpose", [ctx], f"{apath}/Transpose", perm=[0, 2, 1, 3])
        ctx = self.op("Reshape", [ctx, c["merge"]], f"{apath}/Reshape")
        opath = f"{path}/{out.rsplit('.', 1)[0].replace('.', '/')}"
        a = self.op("Add", [self.linear(ctx, w, f"{p}.{out}"), x], f"{opath}/Add_1")
        x = self.layer_norm(a, w, f"{p}.{out_norm}", eps)
        # exact (erf) GELU, the pattern onnxruntime fuses into one Gelu kernel
        h = self.linear(x, w, f"{p}.intermediate.dense")
        e = self.op("Erf", [self.op("Div", [h, c["sqrt2"]], f"{path}/intermediate/Div")],
                    f"{path}/intermediate/Erf")
        e = self.op("Add", [e, c["one"]], f"{path}/intermediate/Add_1")
        h = self.op("Mul", [self.op("Mul", [h, e], f"{path}/intermediate/Mul"), c["half"]],
                    f"{path}/intermediate/Mul_1")
        o = self.op("Add", [self.linear(h, w, f"{p}.output.dense"), x], f"{path}/output/Add_1")
        return self.layer_norm(o, w, f"{p}.output.LayerNorm", eps)

    def save(self, x: str, inputs: list[Any], hidden: int, name: str, builder: str,
             opset: int, out_path: str | Path) -> None:
        """Name ``x`` ``last_hidden_state``, check the model and write it."""
        import onnx
        from onnx import TensorProto

        helper = self.helper
        self.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"],
                                           name="/Identity"))
        output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                               ["batch", "sequence", hidden])
        graph = helper.make_graph(self.nodes, name, inputs, [output], initializer=self.inits)
        model = helper.make_model(graph, producer_name=builder,
                                  opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime >= 1.14
        onnx.checker.check_model(model)
        onnx.save(model, str(out_path))


def build_bert_onnx(model_dir: str | Path, out_path: str | Path, *, opset: int = 17) -> list[str]:
    """Write ``model_dir``'s BERT encoder to ``out_path``; return the graph's input names."""
    from onnx import TensorProto, helper

    model_dir = Path(model_dir)
    cfg = _config(model_dir)
    w = _weights(read_safetensors(model_dir / "model.safetensors"))
    hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    g = _Graph()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
              for n in names]

    # embeddings: word + position (rows 0..seq-1 of the table) + token type, LayerNorm
    words = g.op("Gather", [g.const("embeddings.word_embeddings.weight",
                                    w["embeddings.word_embeddings.weight"]), "input_ids"],
                 "/embeddings/word_embeddings/Gather")
    seq = g.op("Slice", [g.op("Shape", ["input_ids"], "/embeddings/Shape"),
                         g.const("const_one", np.array([1], np.int64)),
                         g.const("const_two", np.array([2], np.int64))], "/embeddings/Slice")
    pos = g.op("Slice", [g.const("embeddings.position_embeddings.weight",
                                 w["embeddings.position_embeddings.weight"]),
                         g.const("const_zero", np.array([0], np.int64)), seq,
                         g.const("const_zero_axis", np.array([0], np.int64))],
               "/embeddings/position_embeddings/Slice")
    types = g.op("Gather", [g.const("embeddings.token_type_embeddings.weight",
                                    w["embeddings.token_type_embeddings.weight"]),
                            "token_type_ids"], "/embeddings/token_type_embeddings/Gather")
    x = g.op("Add", [g.op("Add", [words, types], "/embeddings/Add"), pos], "/embeddings/Add_1")
    x = g.layer_norm(x, w, "embeddings.LayerNorm", eps)

    mask = g.additive_mask()
    c = g.layer_consts(hidden, heads)
    for i in range(int(cfg["num_hidden_layers"])):
        x = g.encoder_layer(x, w, i, mask, c, eps)
    g.save(x, inputs, hidden, "bert", BUILDER, opset, out_path)
    return names
