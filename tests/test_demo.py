from __future__ import annotations

import re

from semcache._demo import load_samples
from semcache.cli import main


def test_vendored_samples_load():
    pairs = load_samples()
    assert len(pairs) == 700
    assert sum(label for _, _, label in pairs) == 500


def test_demo_runs_and_reports(capsys):
    assert main(["demo", "--limit", "60", "--show", "3"]) == 0
    out = capsys.readouterr().out
    hits = int(re.search(r"hits\s+(\d+)\s+hit rate", out).group(1))
    right = int(re.search(r"correct hits\s+(\d+)", out).group(1))
    assert 0 < right <= hits <= 60
    assert re.search(r"exact\s+\d+\.\d+\s+\d+\.\d+", out)
    assert "false-hit rate" in out
    # the default with its verifier, beside the cosine alone (issue 20)
    assert re.search(r"cosine alone, 0.93\s+\d+", out)
    # and beside the model's other points by name (which point for which traffic)
    assert re.search(r"structural-wide, 0.9\s+\d+", out)
    assert re.search(r"structural-strict, 0.8\s+\d+", out)
