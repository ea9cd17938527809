"""Lint and type check as part of the suite, so CI runs them on every change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True)


def test_ruff_is_clean():
    r = run("ruff", "check", "semcache", "semcache_testing", "tests", "benchmarks", "scripts")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_is_clean():
    r = run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_modules_are_small_and_say_what_they_are_for():
    """Issue #19's house rule: every module under 500 lines, its docstring's first line
    saying what it is for (a newcomer reads that line before anything else)."""
    import ast

    problems = []
    for path in sorted((ROOT / "semcache").rglob("*.py")):
        src = path.read_text()
        name = str(path.relative_to(ROOT))
        lines = src.count("\n")
        if lines >= 500:
            problems.append(f"{name}: {lines} lines (split it)")
        doc = ast.get_docstring(ast.parse(src))
        first = doc.strip().splitlines()[0] if doc and doc.strip() else ""
        if len(first.split()) < 3:
            problems.append(f"{name}: no docstring line saying what it is for")
    assert not problems, "\n".join(problems)
