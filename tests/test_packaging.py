"""What the wheel ships (issue #19): the library and its data files, never the test
servers and fakes (semcache_testing/ at the repo root), and nothing in the library
imports them."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the modules of the test servers and fakes, by file name
TESTING = {"fake_openai.py", "servers.py", "pytest_plugin.py", "proxy_server.py"}


def _tracked(prefix: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", prefix], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """(entries of a wheel, the library files it was built from): built from a copy of
    the tracked sources, as building in the shared working tree would write build/ and
    egg-info beside other people's work."""
    src = tmp_path_factory.mktemp("src")
    library = set(_tracked("semcache"))
    for rel in ["pyproject.toml", "README.md", *library, *_tracked("semcache_testing")]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", "-w", str(out),
                           str(src)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("semcache-*.whl")
    with zipfile.ZipFile(whl) as z:
        return set(z.namelist()), library


def test_wheel_ships_no_test_servers_or_fakes(built: tuple[set[str], set[str]]) -> None:
    wheel_names = built[0]
    tops = {n.split("/", 1)[0] for n in wheel_names}
    assert tops == {"semcache", next(t for t in tops if t.endswith(".dist-info"))}, tops
    leaked = sorted(n for n in wheel_names
                    if n.rsplit("/", 1)[-1] in TESTING or "testing" in n.split("/")[:-1])
    assert not leaked, leaked


def test_wheel_ships_every_module_and_data_file(built: tuple[set[str], set[str]]) -> None:
    wheel_names, library = built
    assert library - wheel_names == set()
    for data in ("semcache/py.typed", "semcache/data/verifier_structural.json",
                 "semcache/data/paws_sample.tsv", "semcache/proxy/static/index.html"):
        assert data in wheel_names, data


def test_the_library_never_imports_the_testing_package() -> None:
    """An installed semcache has no semcache_testing: importing it would fail there."""
    bad = []
    for path in sorted((REPO / "semcache").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{path.relative_to(REPO)}: {n}" for n in names
                    if n.split(".")[0] == "semcache_testing" or n.startswith("semcache.testing")]
    assert not bad, bad
