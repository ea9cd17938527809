"""The type table stays in step with the backends it names."""

from __future__ import annotations

import importlib

import pytest

from semcache._registry import _TIER, TYPES


@pytest.mark.parametrize("type_name", ["redis", "s3", "gcs", "azure_blob"])
def test_exact_store_types_accept_exactly_their_modules_params(type_name):
    spec = TYPES[type_name]
    module = importlib.import_module(spec.target.partition(":")[0])
    assert spec.params - _TIER == module.PARAMS - {"ttl"}


@pytest.mark.parametrize("type_name", sorted(TYPES))
def test_every_type_target_imports(type_name):
    module, _, attr = TYPES[type_name].target.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
