from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

from semcache.cli import main

DATA = resources.files("semcache") / "data"


def test_entry_point_lists_eval_modes():
    out = subprocess.run([sys.executable, "-m", "semcache", "eval", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for mode in ("pairs", "replay", "multiturn"):
        assert mode in out


def test_pairs_writes_table_json_and_plots(tmp_path, capsys, minilm):
    rc = main(["eval", "pairs", str(DATA / "paws_sample.tsv"), "--limit", "120",
               "--target-precision", "0.6", "--out", str(tmp_path / "out"),
               "--json", str(tmp_path / "r.json"), "--quiet",
               "--embedding-cache", str(tmp_path / "emb")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "threshold precision" in out and "ROC AUC" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["pairs"] == 120 and report["model"] == "all-MiniLM-L6-v2"
    assert len(report["grid"]) == 51 and 0 <= report["roc_auc"] <= 1
    for name in ("report.json", "threshold.png", "similarity_hist.png"):
        f = tmp_path / "out" / name
        assert f.stat().st_size > 1000
    assert (tmp_path / "out" / "threshold.png").read_bytes()[:4] == b"\x89PNG"
    # the second run reads the embeddings back instead of embedding again
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 1
    assert main(["eval", "pairs", str(DATA / "paws_sample.tsv"), "--limit", "120", "-q",
                 "--embedding-cache", str(tmp_path / "emb"),
                 "--json", str(tmp_path / "r2.json")]) == 0
    again = json.loads((tmp_path / "r2.json").read_text())
    assert again["grid"] == report["grid"]


def test_replay_reports_counts_and_money(tmp_path, capsys, minilm):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o-mini": {"input_per_1k": 0.15,
                                                  "output_per_1k": 0.6}}))
    rc = main(["eval", "replay", str(DATA / "gptcache_mock_sample.json"), "--limit", "60",
               "--param", "similarity_threshold=0.8", "--price-table", str(prices), "-q",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["probes"] == 60 and r["threshold"] == 0.8
    assert r["hits"] == r["correct_hits"] + r["false_hits"] + r["cross_hits"]
    assert r["hits"] + r["misses"] == 60 and r["false_hits"] == 0  # all labeled positive
    assert r["correct_hits"] >= 50
    assert r["money_saved_usd"] > 0 and r["tokens_saved"]["input"] > 0
    assert set(r["latency_ms"]) >= {"add", "embed", "search", "total"}
    assert "hits" in capsys.readouterr().out


def test_multiturn_from_the_command_line(tmp_path, capsys, minilm):
    assert main(["eval", "multiturn", "tests/data/multiturn_sample.json", "-q",
                 "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["modes"]["scoped"]["false_hits"] == 0 < m["modes"]["off"]["false_hits"]
    assert "scoped" in capsys.readouterr().out


def test_bad_input_is_an_error_message_not_a_traceback(tmp_path, capsys):
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n")
    assert main(["eval", "pairs", str(p)]) == 2
    assert "cannot tell the query/candidate/label columns" in capsys.readouterr().err
    assert main(["eval", "replay", str(DATA / "paws_sample.tsv"), "--type", "local",
                 "--param", "similarity_threshold=0.5"]) == 2
    assert main(["eval", "replay", str(DATA / "paws_sample.tsv"), "--param", "novalue"]) == 2
    assert "--param takes KEY=VALUE" in capsys.readouterr().err
