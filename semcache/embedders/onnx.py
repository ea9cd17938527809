"""Local embedder on onnxruntime: a sentence-transformers model exported to ONNX once.

Why (issue 6, measured on 2 cores, all-MiniLM-L6-v2, one short query): sentence-
transformers on torch takes ~19 ms p50 and ~7 s to import; the same graph on onnxruntime
takes ~2.5 ms (fp32, the default), ~1.6 ms with int8 weights (an option: its quality
cost is above issue 6's bar, see ``DEFAULT_VARIANT``). The graph is built once from the
model's ``model.safetensors`` with ``onnx`` alone (``_bert_onnx``, issue #19: no torch);
torch (the ``st`` extra) is needed only for non-BERT folders or ``--builder torch``.
Embedding needs only ``onnxruntime`` and ``tokenizers``.

The export is cached on disk under ``$SEMCACHE_HOME/onnx`` (default
``$XDG_CACHE_HOME/semcache/onnx``, i.e. ``~/.cache/semcache/onnx``)::

    <model>-<fingerprint>/fp32/{model.onnx, tokenizer.json, manifest.json}
    <model>-<fingerprint>/int8/{...}           quantized from fp32/, no torch needed

The fingerprint is cheap (file names, sizes, mtimes, small files' content) so a process
start does not hash 90 MB; the manifest records the weights' full sha256, the opset, the
variant, the builder (an export by another builder or builder version is rebuilt) and the
tool versions. Writers build the folder under a temporary name and
``rename`` it into place while holding a file lock, so threads and processes that race on
first use never see (or leave) a half-written export. ``python -m semcache.embedders.onnx
export`` does it ahead of time so a user's first lookup does not pay for it.

Pooling and normalisation follow the model's sentence-transformers config
(``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json``); for
all-MiniLM-L6-v2 the vectors match sentence-transformers to cosine > 0.9999.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ConfigError, missing
from .._threads import apply_process_limits, ort_session_options, thread_policy
from . import _bert_onnx, _mpnet_onnx, _torch_onnx
from ._onnx_files import (
    PACKAGED_MODELS,
    _fingerprint,
    _read_json,
    _sha256,
    _st_config,
    cache_root,
    resolve_model_dir,
)
from .base import Embedder, text_list

__all__ = [
    "DEFAULT_VARIANT",
    "PACKAGED_MODELS",
    "OnnxEmbedder",
    "cache_root",
    "ensure_onnx",
    "export_onnx",
    "quantize_onnx",
]

#: The variant used when none is asked for: fp32. int8 is an option, not the default,
#: because it misses issue 6's bar on the labeled sets (benchmarks/int8_quality.py,
#: PAWS dev 8,000 pairs + 8,000 QQP pairs, 22,216 texts): worst-case cosine to fp32
#: 0.986 (bar 0.99; mean 0.997) and, at threshold 0.9, QQP recall -0.0098 and precision
#: +0.0087 (bar 0.005). fp32 already meets the latency target (docs/embedders.md).
DEFAULT_VARIANT = "fp32"
VARIANTS = ("fp32", "int8")
OPSET = 17
MANIFEST_FORMAT = 2  # 2: records the builder (issue #19)
#: the int8 recipe (an export by another is quantized again); 2: 7-bit weights, as x86
#: without VNNI saturates int16 sums of uint8 x int8 (docs/embedders.md)
QUANT_RECIPE = 2
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# -- exporting --------------------------------------------------------------------------

@contextlib.contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success rename it to ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():  # the data is on disk before the name says it is done
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if out_dir.exists():  # replacing an old or broken export
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last, with the byte sizes of the files beside it, so that a
    folder whose files were cut later (a partial copy or cache restore) is seen as
    broken by ``_valid_export`` and rebuilt, not loaded and failed on every embed."""
    sizes = {f.name: f.stat().st_size for f in folder.iterdir()
             if f.is_file() and f.name != "manifest.json"}
    manifest = dict(manifest, sizes=sizes)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def export_onnx(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                quantize: bool = False, opset: int = OPSET, builder: str | None = None) -> Path:
    """Export a sentence-transformers folder to ``out_dir`` (fp32, or int8 if ``quantize``).

    ``builder``: ``None`` picks the numpy/onnx builder (``_bert_onnx``, no torch) for BERT
    models with ``model.safetensors`` and torch for anything else; ``"torch"`` asks for
    ``torch.onnx.export`` (the ``st`` extra). The graph takes ``input_ids``,
    ``attention_mask`` (and ``token_type_ids`` where the model has them) with dynamic
    batch and sequence axes and returns the last hidden state; pooling is done by the
    embedder. ``out_dir`` appears complete or not at all.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if quantize:  # export fp32 to a scratch folder, then quantize it
        scratch = out_dir.parent / f".{out_dir.name}.fp32-{uuid.uuid4().hex[:8]}"
        try:
            export_onnx(model_dir, scratch, opset=opset, builder=builder)
            return quantize_onnx(scratch, out_dir)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    builder = builder or _default_builder(model_dir)
    numpy_builders = {_bert_onnx.BUILDER: _bert_onnx.build_bert_onnx,
                      _mpnet_onnx.BUILDER: _mpnet_onnx.build_mpnet_onnx}  # no torch
    if builder not in (*numpy_builders, _torch_onnx.BUILDER, "torch"):
        raise ConfigError(f"unknown ONNX builder {builder!r}", parameter="builder")
    info = _st_config(model_dir)
    versions: dict[str, str] = {}
    with _atomic_dir(out_dir) as tmp:
        if builder in numpy_builders:
            import onnx

            names = numpy_builders[builder](model_dir, tmp / "model.onnx", opset=opset)
            versions["onnx"] = onnx.__version__
        else:
            builder = _torch_onnx.BUILDER
            names, versions["torch"] = _torch_onnx.export_with_torch(
                model_dir, tmp / "model.onnx", opset=opset)
        shutil.copy2(model_dir / "tokenizer.json", tmp / "tokenizer.json")
        weights = next((model_dir / w for w in _WEIGHT_FILES if (model_dir / w).exists()),
                       None)
        _write_manifest(tmp, {
            "format": MANIFEST_FORMAT,
            "builder": builder,
            "variant": "fp32",
            "opset": opset,
            "source": str(model_dir),
            "source_fingerprint": _fingerprint(model_dir),
            "source_weights_sha256": _sha256(weights) if weights else None,
            "inputs": names,
            **info,
            "versions": versions,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
    return out_dir


def _default_builder(model_dir: Path) -> str:
    """The builder ``ensure_onnx`` uses for a folder (and expects in a cached export)."""
    if _bert_onnx.supports(model_dir):
        return _bert_onnx.BUILDER
    return _mpnet_onnx.BUILDER if _mpnet_onnx.supports(model_dir) else _torch_onnx.BUILDER


def _ffn_output_matmuls(model_path: Path) -> list[str]:
    """Names of the feed-forward output projections (BERT-style exports)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul"
            and "/output/dense/" in n.name and "/attention/" not in n.name]


def quantize_onnx(fp32_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Dynamic int8 from an fp32 export (no torch needed).

    Recipe, chosen by measurement (docs/embedders.md): MatMul weights as per-channel
    qint8 in a 7-bit range (``QUANT_RECIPE``), activations quantized on the fly, except
    the feed-forward *output* projections, which stay fp32: their input is the post-GELU
    activation, whose outliers uint8 cannot resolve (quantizing everything gave a
    worst-case cosine to fp32 of 0.972 on 1,000 PAWS/QQP texts, this recipe 0.9915).
    """
    fp32_dir, out_dir = Path(fp32_dir), Path(out_dir)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization imports the onnx package
        raise missing("onnx", "local", "quantizing the ONNX embedder to int8") from exc
    manifest = _read_json(fp32_dir / "manifest.json")
    excluded = _ffn_output_matmuls(fp32_dir / "model.onnx")
    with _atomic_dir(out_dir) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32_dir / "model.onnx"), str(tmp / "model.onnx"),
                             weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True,  # see QUANT_RECIPE
                             op_types_to_quantize=["MatMul"], nodes_to_exclude=excluded)
        shutil.copy2(fp32_dir / "tokenizer.json", tmp / "tokenizer.json")
        manifest = dict(manifest, variant="int8",
                        quantization={"method": "dynamic", "recipe": QUANT_RECIPE,
                                      "weights": "qint8 per-channel, 7-bit range",
                                      "ops": ["MatMul"], "kept_fp32": excluded},
                        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        _write_manifest(tmp, manifest)
    return out_dir


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes and threads, on every platform (filelock)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


def _valid_export(folder: Path, variant: str, fingerprint: str, builder: str) -> bool:
    try:
        m = _read_json(folder / "manifest.json")
    except ValueError:  # truncated or garbled: export again
        return False
    # another builder (or version of it) made it: rebuild, so builder fixes reach caches
    if not (isinstance(m, dict) and m.get("format") == MANIFEST_FORMAT
            and m.get("builder") == builder
            and m.get("variant") == variant and m.get("source_fingerprint") == fingerprint
            and (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()):
        return False
    if variant == "int8" and not (isinstance(m.get("quantization"), dict)
                                  and m["quantization"].get("recipe") == QUANT_RECIPE):
        return False  # quantized by an older recipe: quantize again
    sizes = m.get("sizes")  # absent in exports made before it was recorded
    if not isinstance(sizes, dict):
        return True
    try:
        return all((folder / str(name)).stat().st_size == size
                   for name, size in sizes.items())
    except OSError:  # a file named in the manifest is gone
        return False


def ensure_onnx(model: str | os.PathLike[str] = "all-MiniLM-L6-v2", variant: str = "fp32",
                *, root: str | os.PathLike[str] | None = None) -> Path:
    """Folder of a cached export of ``model`` in ``variant``, exporting it if needed."""
    if variant not in VARIANTS:
        raise ConfigError(f"variant must be one of {VARIANTS}, not {variant!r}",
                          parameter="variant")
    name, model_dir = resolve_model_dir(model)
    fp, builder = _fingerprint(model_dir), _default_builder(model_dir)
    base = Path(root) if root is not None else cache_root()
    home = base / f"{name}-{fp[:16]}"
    folder = home / variant
    if _valid_export(folder, variant, fp, builder):  # the common case: no lock
        return folder
    with _file_lock(base / f".{name}-{fp[:16]}.lock"):
        if _valid_export(folder, variant, fp, builder):  # another finished meanwhile
            return folder
        for stale in home.glob(".*.tmp-*") if home.exists() else ():
            shutil.rmtree(stale, ignore_errors=True)  # a crashed writer's leftovers
        if variant == "fp32":
            export_onnx(model_dir, folder)
        else:
            quantize_onnx(_ensure_fp32_locked(model_dir, home, fp, builder), folder)
    return folder


def _ensure_fp32_locked(model_dir: Path, home: Path, fp: str, builder: str) -> Path:
    """The fp32 export, made if missing; the caller holds the model's lock."""
    folder = home / "fp32"
    if not _valid_export(folder, "fp32", fp, builder):
        export_onnx(model_dir, folder)
    return folder


# -- running ----------------------------------------------------------------------------

class _Runtime:
    """One loaded export: an onnxruntime session and its tokenizer. Shared per process."""

    def __init__(self, folder: Path, threads: int) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise missing("onnxruntime", "local", "the ONNX embedder") from exc
        self.manifest = _read_json(folder / "manifest.json")
        self.pooling = self.manifest["pooling"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json ships fixed-length padding (128); pad per batch instead, and
        # truncate where sentence-transformers does (max_seq_length)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.manifest["max_seq_length"])
        # threads and spin-waiting come from the one thread policy (semcache/_threads.py)
        opts = ort_session_options(threads)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(folder / "model.onnx"), opts,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, texts: list[str], sub_batch: int) -> np.ndarray:
        encs = self.tokenizer.encode_batch(texts) if len(texts) > 1 else \
            [self.tokenizer.encode(texts[0])]
        out = np.empty((len(texts), self.manifest["dim"]), dtype=np.float32)
        # sort by length so each sub-batch pads to a similar length
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        for s in range(0, len(order), sub_batch):
            idx = order[s : s + sub_batch]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for r, i in enumerate(idx):
                e = encs[i]
                n = len(e.ids)
                ids[r, :n] = e.ids
                mask[r, :n] = e.attention_mask
                types[r, :n] = e.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            hidden = self.session.run(None, {k: feed[k] for k in self.inputs})[0]
            out[idx] = self._pool(hidden, mask)
        return out

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask[..., None].astype(hidden.dtype)
        if self.pooling == "max":
            return np.where(m > 0, hidden, -1e9).max(axis=1)
        # sentence-transformers: sum(h * mask) / clamp(sum(mask), 1e-9)
        return (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)


#: characters kept per token of the model's window before tokenizing
CHARS_PER_TOKEN = 32


def max_chars(max_seq_length: int) -> int:
    """Characters of a text that can reach a model with a window of ``max_seq_length``
    word-pieces, with a wide margin: a word-piece covers at least one character, so
    only characters that make no token at all (whitespace, control characters, stripped
    accents) could push a token of the window past the cut, and it takes 31 of them per
    token. tests/test_proxy_security_embedder.py checks that the token ids are unchanged."""
    return max_seq_length * CHARS_PER_TOKEN


def cut_texts(texts: Sequence[str], cap: int) -> Sequence[str]:
    """``texts`` with each str cut to ``cap`` characters (anything else is left for
    ``Embedder`` to refuse; a container that is not a sequence of texts is refused
    here). A slice of a shorter str is the str itself: no copy."""
    return [t[:cap] if isinstance(t, str) else t for t in text_list(texts)]


_RUNTIMES: dict[tuple[str, int], _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(folder: Path, threads: int) -> _Runtime:
    key = (str(folder), threads)
    with _RUNTIMES_LOCK:  # models load once per process and are shared (DESIGN.md)
        rt = _RUNTIMES.get(key)
        if rt is None:
            rt = _RUNTIMES[key] = _Runtime(folder, threads)
        return rt


class OnnxEmbedder(Embedder):
    """A sentence-transformers model on onnxruntime (the default local embedder).

    ``model``: ``"all-MiniLM-L6-v2"`` (packaged, the default) or a sentence-transformers
    folder. ``variant``: ``"fp32"``, ``"int8"`` or None (``DEFAULT_VARIANT`` for the
    packaged model, fp32 for others: int8 quality was measured for the packaged one only).
    ``threads``: onnxruntime intra-op threads (default: the thread policy's ``compute``,
    ``min(2, cores)`` or ``$SEMCACHE_THREADS``; see ``semcache.set_threads``).
    ``cache_dir``: where exports live (default ``cache_root()``).
    Nothing is loaded or exported until the first ``embed``.
    """

    batch_size = 256  # texts per _embed call; sorted by length and run in sub-batches
    sub_batch = 32

    def __init__(self, model: str | os.PathLike[str] = "all-MiniLM-L6-v2", *,
                 variant: str | None = None, threads: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 cache_size: int = 4096) -> None:
        super().__init__(cache_size=cache_size)
        name, self._model_dir = resolve_model_dir(model)
        packaged = str(model) in PACKAGED_MODELS
        if variant is None:
            variant = DEFAULT_VARIANT if packaged else "fp32"
        if variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, not {variant!r}",
                              parameter="variant")
        if threads is None:
            threads = thread_policy().compute
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError("threads must be >= 1", parameter="threads")
        self._source = model
        self.variant = variant
        self.threads = threads
        self._cache_dir = cache_dir
        if variant == "int8":
            # Dynamic quantization picks one activation scale per tensor, i.e. per batch
            # (padding included), so batched int8 vectors depend on their batch-mates.
            # One text per run keeps a text's vector a function of the text alone (the
            # contract's batch == one-by-one); int8 single runs are cheap enough that
            # throughput stays near fp32's batched rate (docs/embedders.md).
            self.sub_batch = 1
        self.model_id = name if variant == "fp32" else f"{name}+{variant}"
        st_cfg = _st_config(self._model_dir)  # small JSON reads, no model load
        self._dim = st_cfg["dim"]
        self._max_chars = max_chars(st_cfg["max_seq_length"])
        self._rt: _Runtime | None = None
        self._load_lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # The tokenizer truncates only after tokenizing the whole text, holding the GIL:
        # a 5 MB prompt took 13 s and stalled every other request of the proxy (issue
        # #18). Cut first (max_chars says why the vectors are unchanged), and before the
        # LRU, whose keys would otherwise keep megabytes of text alive.
        return super().embed(cut_texts(texts, self._max_chars))

    def load(self) -> OnnxEmbedder:
        """Export (if not cached) and load now instead of on the first ``embed``."""
        if self._rt is None:
            with self._load_lock:
                if self._rt is None:
                    folder = ensure_onnx(self._model_dir if str(self._source) not in
                                         PACKAGED_MODELS else self._source,
                                         self.variant, root=self._cache_dir)
                    apply_process_limits()  # the policy applies on first build
                    self._rt = _runtime(folder, self.threads)
        return self

    def _embed(self, texts: list[str]) -> np.ndarray:
        rt = self._rt or self.load()._rt
        assert rt is not None
        return rt.run(texts, self.sub_batch)

    def __repr__(self) -> str:
        return (f"OnnxEmbedder(model_id={self.model_id!r}, variant={self.variant!r}, "
                f"threads={self.threads})")


# -- command line: the setup step ---------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m semcache.embedders.onnx",
        description="Export an embedding model to ONNX into semcache's cache, ahead of "
                    "first use (scripts/setup.sh runs this).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    exp = sub.add_parser("export", help="export (and quantize) a model; idempotent")
    exp.add_argument("--model", default="all-MiniLM-L6-v2",
                     help="packaged model name or sentence-transformers folder")
    exp.add_argument("--variant", choices=[*VARIANTS, "all"], default="all")
    exp.add_argument("--cache-dir", default=None, help="default: " + str(cache_root()))
    exp.add_argument("--out", default=None,
                     help="write a standalone export to this folder instead of the cache")
    exp.add_argument("--builder", choices=["torch"], default=None,
                     help="with --out: export with torch.onnx.export (the st extra) instead "
                          "of building the graph from the weights")
    args = parser.parse_args(argv)
    variants = list(VARIANTS) if args.variant == "all" else [args.variant]
    for v in variants:
        t0 = time.perf_counter()
        if args.out:
            folder = export_onnx(resolve_model_dir(args.model)[1],
                                 Path(args.out) / v, quantize=v == "int8",
                                 builder=args.builder)
        else:
            folder = ensure_onnx(args.model, v, root=args.cache_dir)
        print(f"{v}: {folder} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
