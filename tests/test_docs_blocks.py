"""Every ```python block of README.md and docs/*.md runs, and prints what it says.

A small runner (pytest-examples / pytest-markdown-docs are not in the lock): the blocks
of one file run in order in one namespace, as a reader pastes them. Each file's run:

- ``http://127.0.0.1:8000/v1`` (the docs' local upstream) is the fake OpenAI server;
  ``REDIS_URL`` is a real Redis Stack started by the project's fixture, for the files
  that read it.
- a ``print(...)`` line followed by a ``# text`` comment line must print that line;
  an expression statement with a trailing ``# <python literal>`` comment must evaluate
  to it (floats to the digits shown).
- a fence whose info string says ``python notest: <reason>`` is not run (it needs a key,
  a cloud account or a server at a documented address); the reason is required, and
  every skipped block is counted in the test's report.

docs/calls.md runs in tests/test_calls_docs.py (its own, older runner), so not here.
"""

# ruff: noqa: F811

from __future__ import annotations

import ast
import contextlib
import io
import math
import os
import pathlib
import re
from typing import Any

import pytest

import semcache
from semcache._calls import close_clients
from tests.calls_support import fake, fake_server  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                              for p in (ROOT / "docs").glob("*.md")
                              if p.name != "calls.md")]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
UPSTREAM = "http://127.0.0.1:8000/v1"


def blocks(text: str) -> list[tuple[str, str, int]]:
    """(info string, code, first line number) of each python fence."""
    out = []
    for m in FENCE.finditer(text):
        out.append((m.group(1).strip(), m.group(2), text.count("\n", 0, m.start(2)) + 1))
    return out


def _matches(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, (int, float)):
        digits = len(repr(want).split(".")[1]) if "." in repr(want) else 0
        return math.isclose(round(got, digits), want, abs_tol=10 ** -digits / 2)
    return bool(got == want)


def _expectation(lines: list[str], node: ast.stmt) -> Any:
    """The literal in a trailing comment on the statement's last line, if any."""
    last = lines[node.end_lineno - 1]  # type: ignore[operator]
    code, sep, comment = last.partition("  #")
    if not sep:
        return None, False
    try:
        return ast.literal_eval(comment.strip()), True
    except (ValueError, SyntaxError):
        return None, False  # prose, not a value


def run_block(code: str, ns: dict[str, Any], where: str) -> list[str]:
    """Run one block statement by statement; returns the lines it printed."""
    tree = ast.parse(code, where)
    lines = code.splitlines()
    buf = io.StringIO()
    for node in tree.body:
        unit = compile(ast.Module(body=[node], type_ignores=[]), where, "exec")
        with contextlib.redirect_stdout(buf):
            if isinstance(node, ast.Expr):
                want, has = _expectation(lines, node)
                got = eval(compile(ast.Expression(node.value), where, "eval"), ns)  # noqa: S307
                if has:
                    assert _matches(got, want), \
                        f"{where}:{node.lineno}: {ast.unparse(node)} is {got!r}, not {want!r}"
            else:
                exec(unit, ns)  # noqa: S102 - our own documentation
    printed = buf.getvalue().splitlines()
    for i, line in enumerate(lines[:-1]):
        nxt = lines[i + 1]
        if line.lstrip().startswith("print(") and nxt.startswith("# "):
            assert nxt[2:] in printed, f"{where}:{i + 2}: wanted {nxt[2:]!r}, got {printed}"
    return printed


@pytest.mark.parametrize("name", FILES)
def test_docs_blocks_run_as_written(name, fake, request, tmp_path, monkeypatch):
    text = (ROOT / name).read_text()
    found = blocks(text)
    if not found:
        return  # nothing to run (prose and shell blocks only)
    if "REDIS_URL" in text:
        monkeypatch.setenv("REDIS_URL", request.getfixturevalue("redis_stack_url"))
    monkeypatch.chdir(tmp_path)  # files a block writes land in a scratch folder
    ns: dict[str, Any] = {"__name__": "__docs__"}
    ran = skipped = 0
    old = semcache.cache, list(semcache.success_callback)
    try:
        for info, code, line in found:
            if info.startswith("notest"):
                assert re.match(r"notest:\s*\S", info), \
                    f"{name}:{line}: a notest block must say why (notest: <reason>)"
                skipped += 1
                continue
            run_block(code.replace(UPSTREAM, fake.base_url), ns, f"{name}:{line}")
            ran += 1
    finally:
        close_clients()
        semcache.cache, semcache.success_callback = old[0], old[1]
        for value in ns.values():  # close what the blocks opened (files, servers)
            close = getattr(value, "close", None)
            if isinstance(value, semcache.Cache) and callable(close):
                close()
    print(f"{name}: {ran} blocks ran, {skipped} notest")


def test_the_runner_checks_what_blocks_claim():
    """The runner itself fails on a wrong claim (a break-the-code check kept as a test)."""
    ns: dict[str, Any] = {}
    run_block("x = 0.9917\nx  # 0.99\n", ns, "t")
    with pytest.raises(AssertionError, match="not 0.96"):
        run_block("x = 0.9917\nx  # 0.96\n", ns, "t")
    with pytest.raises(AssertionError, match="wanted"):
        run_block("print('a')\n# b\n", ns, "t")
    assert blocks("```python notest: needs GCS\nx\n```\n")[0][0] == "notest: needs GCS"
    assert os.environ.get("SEMCACHE_DOCS_NEVER_SET") is None


def _serve_flags_documented(text: str) -> set[str]:
    """The flags the docs give ``semcache serve``: on its command lines, and in the
    sentence that lists its options."""
    flags: set[str] = set()
    for line in text.splitlines():
        if "semcache serve" in line and not line.lstrip().startswith("semcache serve:"):
            flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line.split("#")[0]))
    m = re.search(r"`semcache serve` options:(.*?)\n\n", text, re.DOTALL)
    if m:
        flags |= set(re.findall(r"`(--[a-z][a-z0-9-]*)`", m.group(1)))
    return flags


@pytest.mark.parametrize("name", FILES)
def test_documented_serve_flags_exist(name):
    """docs/proxy.md once documented flags ``semcache serve`` does not have (issue 21)."""
    from semcache.cli import build_parser

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    known = {s for a in serve._actions for s in a.option_strings}
    unknown = _serve_flags_documented((ROOT / name).read_text()) - known
    assert not unknown, f"{name} documents semcache serve flags it does not have: {unknown}"


def test_serve_flag_check_catches_an_unknown_flag():
    assert _serve_flags_documented("semcache serve --config c.yaml --turbo\n") == \
        {"--config", "--turbo"}
