"""The import contract (``.importlinter``) holds, and would catch a crossing.

``lint-imports`` runs in a subprocess on the working tree; a second run on a copy of
the package with one forbidden import of each kind planted proves the contract can
fail (a contract that names a missing layer, or misspells one, would pass anything).
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def _lint_imports(cwd: Path, env_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():  # pragma: no cover - the dev extra installs it next to python
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = None
    if env_path is not None:
        # the copy first on sys.path, ahead of the editable install's finder
        env = {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run([str(exe), str(CONFIG), "--no-cache", "--no-logo"], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_tree_keeps_the_contract() -> None:
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_crossing_is_excused() -> None:
    """The contract holds with nothing in ``ignore_imports`` (issue #19): a crossing is
    fixed by moving code to where it belongs, never by listing it."""
    conf = configparser.ConfigParser()
    conf.read(CONFIG)
    for section in conf.sections():
        listed = [line.strip() for line in conf[section].get("ignore_imports", "").splitlines()
                  if line.strip() and not line.strip().startswith("#")]
        assert listed == [], f"[{section}] ignore_imports excuses {listed}"


#: (file in semcache/, import line planted in it, what lint-imports must report)
CROSSINGS = [
    # a seam importing another seam
    ("exact/memory.py", "from ..indexes import base as _planted",
     "semcache.exact.memory -> semcache.indexes.base"),
    # a seam importing the core
    ("indexes/faiss.py", "from .. import _keys as _planted",
     "semcache.indexes.faiss -> semcache._keys"),
    # the core importing the proxy (only cli.py may)
    ("_registry.py", "from .proxy import config as _planted",
     "semcache._registry -> semcache.proxy.config"),
    # the evaluation importing the proxy
    ("eval/split.py", "from ..proxy import config as _planted",
     "semcache.eval.split -> semcache.proxy.config"),
    # a seam importing the package root: caught through the root's imports of the core
    ("indexes/_common.py", "from .. import Cache as _planted",
     "semcache.indexes._common -> semcache (l."),
    # a backend connection importing a seam
    ("_connections/redis.py", "from ..exact import base as _planted",
     "semcache._connections.redis -> semcache.exact.base"),
]


def test_a_planted_crossing_of_each_kind_breaks_the_contract(tmp_path: Path) -> None:
    copy = tmp_path / "semcache"
    shutil.copytree(ROOT / "semcache", copy,
                    ignore=shutil.ignore_patterns("__pycache__", "data", "static"))
    for rel, line, _ in CROSSINGS:
        path = copy / rel
        path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    (copy / "_unplaced.py").write_text('"""A module the layers do not place."""\n')
    out = _lint_imports(tmp_path, env_path=tmp_path)
    report = out.stdout + out.stderr
    assert out.returncode != 0, report[-4000:]
    for _, _, expected in CROSSINGS:
        assert expected in report, f"{expected!r} not reported:\n{report[-4000:]}"
    assert "semcache._unplaced" in report  # exhaustive: every module must be placed
