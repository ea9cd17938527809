"""docs/calls.md is executed: its python blocks run in order, in one namespace, against
the fake upstream (the documented http://127.0.0.1:8000/v1 replaced by its address). A
comment line right under a ``print(...)`` line is the exact output expected."""

# The shared fixtures are imported from tests/calls_support.py; test parameters of the
# same name are pytest's injection, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import io
import itertools
import pathlib
import re

import semcache
from semcache._calls import close_clients
from tests.calls_support import fake, fake_server  # noqa: F401

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "calls.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _expected(code: str) -> list[str]:
    out, lines = [], code.splitlines()
    for prev, line in itertools.pairwise(lines):
        if prev.lstrip().startswith("print(") and line.startswith("# "):
            out.append(line[2:])
    return out


def test_docs_calls_md_runs_as_written(fake):
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 10
    ns: dict = {}
    buf = io.StringIO()
    try:
        for code in blocks:
            code = code.replace("http://127.0.0.1:8000/v1", fake.base_url)
            with contextlib.redirect_stdout(buf):
                exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102 - the doc is ours
    finally:
        close_clients()
    printed = buf.getvalue().splitlines()
    for want in _expected("\n".join(blocks)):
        assert want in printed, (want, printed)
    assert "echo: Hello" in printed and "2 partial" in printed
    assert semcache.success_callback == []
    # every snippet's hit was a real hit: fewer upstream calls than calls made
    assert 0 < fake.calls["chat/completions"] < 30
