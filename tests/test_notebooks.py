"""The notebooks run top to bottom, with their own assertions, in this test session's
interpreter (a kernelspec written to a temporary JUPYTER_PATH points at sys.executable)
and with this checkout first on the kernel's path."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "semcache-tests"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory, monkeypatch_module):
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "semcache tests", "language": "python"}))
    monkeypatch_module.setenv("JUPYTER_PATH", str(spec_dir.parent.parent))
    monkeypatch_module.setenv("PYTHONPATH", str(ROOT))
    monkeypatch_module.setenv("MPLBACKEND", "Agg")
    # the kernel's own deprecation noise must not be turned into errors in the child
    monkeypatch_module.delenv("PYTHONWARNINGS", raising=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_both_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"threshold_tuning.ipynb", "offline_eval.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(path.parent)}})
    t = time.monotonic()
    client.execute()  # raises CellExecutionError, with the cell's traceback, on failure
    took = time.monotonic() - t
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert any(o.get("output_type") == "stream" for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []))
    # a notebook that plots shows its plots inline: each plotting cell has an image
    for cell in nb.cells:
        if cell.cell_type == "code" and "plt." in cell.source:
            assert any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])), \
                f"{path.name}: a plotting cell produced no image\n{cell.source[:200]}"
    print(f"{path.name}: {took:.1f}s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_public_api_and_inline_plots(path):
    """What a user runs in Jupyter: no private imports, and no non-interactive backend
    forced (matplotlib.use("Agg") then plt.show() showed nothing; issue 21)."""
    nb = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "semcache._" not in source
    assert "matplotlib.use(" not in source
    if "plt." in source:
        assert "%matplotlib inline" in source
