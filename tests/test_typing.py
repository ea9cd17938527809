"""The pipeline and the seams' base classes pass ``mypy --strict`` (issue #19), and
pyproject.toml's per-module strict block names the same modules, so neither can rot."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRICT = [
    "semcache/_cache.py",
    "semcache/_pipeline.py",
    "semcache/_pending.py",
    "semcache/_learning.py",
    "semcache/policies/learning.py",
    "semcache/_keys.py",
    "semcache/policies/base.py",
    "semcache/embedders/base.py",
    "semcache/exact/base.py",
    "semcache/indexes/base.py",
    "semcache/verifiers/base.py",
]


def test_the_strict_block_in_pyproject_names_these_modules():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    blocks = [o for o in conf["tool"]["mypy"].get("overrides", [])
              if o.get("disallow_untyped_defs") and o.get("warn_return_any")]
    assert len(blocks) == 1, "one per-module strict block in [tool.mypy]"
    modules = {m.removesuffix(".py").replace("/", ".") for m in STRICT}
    assert set(blocks[0]["module"]) == modules


@pytest.mark.slow
def test_mypy_strict_passes():
    # --follow-imports=silent: the modules they import are checked as the project's
    # config says, and only these are held to --strict
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", *STRICT],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
