"""A cross-encoder folder's description is checked when the verifier is made (no torch
needed): a head or operating point that cannot score is a ConfigError naming the folder,
not a verifier that fails every lookup."""

from __future__ import annotations

import json

import pytest

from semcache import ConfigError
from semcache.verifiers.cross_encoder import MODEL_DOC, CrossEncoderVerifier

GOOD = {"kind": "cross-encoder", "version": 2, "max_length": 64, "floor": 0.7,
        "threshold": 0.5, "head": {"weight": [0.1] * 8, "bias": 0.0,
                                   "cosine_weight": 1.5}}


def _folder(tmp_path, doc):
    (tmp_path / MODEL_DOC).write_text(json.dumps(doc))
    (tmp_path / "model.onnx").write_bytes(b"not loaded until the first lookup")
    (tmp_path / "tokenizer.json").write_text("{}")
    return tmp_path


def test_a_sound_description_loads_lazily(tmp_path) -> None:
    v = CrossEncoderVerifier(_folder(tmp_path, GOOD))
    assert v.threshold == 0.5 and v.floor == 0.7 and v.needs_cosines


BROKEN = {
    "weight NaN": ("head", "weight", [float("nan")] * 8),
    "weight empty": ("head", "weight", []),
    "weight a matrix of strings": ("head", "weight", [["a"]]),
    "bias infinite": ("head", "bias", float("inf")),
    "cosine weight NaN": ("head", "cosine_weight", float("nan")),
    "floor NaN": (None, "floor", float("nan")),
    "floor above 1": (None, "floor", 1.5),
    "threshold NaN": (None, "threshold", float("nan")),
    "max_length 0": (None, "max_length", 0),
    "head not an object": (None, "head", [1, 2]),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_description_is_a_config_error(tmp_path, name) -> None:
    where, field, value = BROKEN[name]
    doc = json.loads(json.dumps(GOOD))
    (doc[where] if where else doc)[field] = value
    with pytest.raises(ConfigError) as info:
        CrossEncoderVerifier(_folder(tmp_path, doc))
    assert info.value.parameter == "verifier" and str(tmp_path) in str(info.value)
