"""The torch exporter: only for models semcache/embedders/_bert_onnx.py cannot build.

``torch.onnx.export`` of a transformers encoder, kept as the alternative for
non-BERT sentence-transformers folders (or ``builder="torch"``); the packaged
all-MiniLM-L6-v2 never needs it, so torch lives in the ``st`` extra, not ``local``.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

from .._errors import missing

__all__ = ["BUILDER", "export_with_torch"]

BUILDER = "torch.onnx.export"


def export_with_torch(model_dir: Path, out_path: Path, *, opset: int) -> tuple[list[str], str]:
    """Write ``model_dir``'s last hidden state graph to ``out_path``: ``(inputs, torch
    version)``. Dynamic batch and sequence axes, like the numpy builder's."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise missing("torch", "st", f"exporting {model_dir.name} to ONNX (not a BERT "
                      "model with model.safetensors, which needs no torch)") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation/tracer chatter
        model = AutoModel.from_pretrained(str(model_dir))
        model.eval()
        takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if takes_types else [])

        class _Hidden(torch.nn.Module):  # keyword call: positional orders vary
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, *args: Any) -> Any:
                return self.m(**dict(zip(names, args))).last_hidden_state

        dummy = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
        axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
        with torch.no_grad():
            torch.onnx.export(
                _Hidden(model), dummy, str(out_path), input_names=names,
                output_names=["last_hidden_state"], dynamic_axes=axes,
                opset_version=opset, do_constant_folding=True, dynamo=False)
    return names, str(torch.__version__)
