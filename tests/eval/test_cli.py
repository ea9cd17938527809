from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest

from semcache import InvalidRequestError
from semcache.cli import main
from semcache.embedders.base import Embedder

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
               "--param", "similarity_threshold=0.8", "--param", "verifier=none",
               "--price-table", str(prices), "-q",
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


def _stream_pairs(path):
    """Hand-written paraphrase groups (chained through a shared question, as Quora's
    duplicates are) and labeled negatives: enough for a stream to exercise the verified
    policy end to end."""
    groups = [
        ["How do I learn Python quickly?", "What is the fastest way to learn Python?",
         "How can I learn Python fast?", "What's the quickest way to pick up Python?"],
        ["How do I lose weight fast?", "What is the quickest way to lose weight?",
         "How can I lose weight quickly?"],
        ["What is the capital of Australia?", "Which city is Australia's capital?",
         "What city is the capital of Australia?"],
        ["How do I make my phone battery last longer?",
         "How can I improve my phone's battery life?",
         "What can I do to make my phone battery last longer?"],
        ["Why is the sky blue?", "What makes the sky blue?", "Why does the sky look blue?"],
        ["How do I get better sleep?", "How can I sleep better at night?",
         "What are ways to improve my sleep?"],
    ]
    negatives = [("How do I learn Python quickly?", "How do I learn Java quickly?"),
                 ("How do I lose weight fast?", "How do I gain weight fast?"),
                 ("What is the capital of Australia?", "What is the capital of Austria?"),
                 ("Why is the sky blue?", "Why is the sea blue?")]
    rows = []
    for g in groups:
        rows += [{"query": a, "candidate": b, "label": 1} for a, b in zip(g, g[1:])]
    rows += [{"query": a, "candidate": b, "label": 0} for a, b in negatives]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return sum(map(len, groups)), len(negatives)


def test_replay_with_target_error_rates_compares_policies(tmp_path, capsys, minilm):
    questions, negatives = _stream_pairs(tmp_path / "pairs.jsonl")
    rc = main(["eval", "replay", str(tmp_path / "pairs.jsonl"), "--target-error-rate",
               "0.02", "0.05", "--thresholds", "0.8,0.9,0.95", "--seeds", "2", "-q",
               "--in-sample",
               "--policy-param", "confidence=0.95",
               "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "best static" in out and "verified" in out
    r = json.loads((tmp_path / "r.json").read_text())
    hard = r["stream"]["hard"]
    assert hard > 20  # the built-in order-sensitive and negation pairs are in
    assert r["stream"]["queries"] == questions + negatives + 2 * hard
    kinds = r["runs"]["static 0.8"][0]["queries_by_kind"]
    assert kinds == {"first": 6 + hard, "paraphrase": questions - 6,
                     "negative": negatives, "reversed": hard}
    # a reversed question at 0.8 is served its twin's answer: counted as such
    assert 0 < r["runs"]["static 0.8"][0]["wrong_by_kind"]["reversed"] <= hard
    assert set(r["runs"]) == {"static 0.8", "static 0.9", "static 0.95",
                              "verified 0.02", "verified 0.05"}
    assert all(len(v) == 2 for v in r["runs"].values())  # one per stream
    assert r["runs"]["verified 0.02"][0]["policy_stats"]["confidence"] == 0.95
    for row in r["summary"]:
        runs = r["runs"][f"verified {row['target']}"]
        # every query was a hit or not, and the rates are what the counts say
        for run in runs:
            judged = run["queries"] - run["unlabeled_hits"]
            assert run["error_rate"] == run["wrong"] / judged
            assert run["explored"] + run["hits"] <= run["queries"]
        best = row["best_static_threshold"]
        if best is not None:  # the best static threshold is within its target
            assert row["static_error"] <= row["target"]
    assert (tmp_path / "out" / "policies.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "out" / "report.json").read_text())["summary"]


def test_strict_truth_counts_every_other_class_as_wrong(tmp_path, capsys, minilm):
    _stream_pairs(tmp_path / "pairs.jsonl")
    reports = {}
    for truth in ("labeled", "strict"):
        assert main(["eval", "replay", str(tmp_path / "pairs.jsonl"), "--target-error-rate",
                     "0.05", "--thresholds", "0.6,0.8", "-q", "--truth", truth, "--in-sample",
                     "--json", str(tmp_path / f"{truth}.json")]) == 0
        reports[truth] = json.loads((tmp_path / f"{truth}.json").read_text())
        assert reports[truth]["stream"]["truth"] == truth
    assert "--truth strict" in capsys.readouterr().out
    for th in ("0.6", "0.8"):  # the same stream and hits: only their verdicts differ
        lab, strict = reports["labeled"]["runs"][f"static {th}"][0], \
            reports["strict"]["runs"][f"static {th}"][0]
        assert strict["unlabeled_hits"] == 0
        assert strict["hits"] == lab["hits"] + lab["unlabeled_hits"]
        assert strict["wrong"] == lab["wrong"] + lab["unlabeled_hits"]
    # at 0.6 some hits join classes the pairs never compared: strict calls them wrong
    assert reports["labeled"]["runs"]["static 0.6"][0]["unlabeled_hits"] > 0
    assert reports["strict"]["runs"]["verified 0.05"][0]["unlabeled_hits"] == 0
    with pytest.raises(SystemExit) as exc:
        main(["eval", "replay", str(tmp_path / "pairs.jsonl"), "--target-error-rate",
              "0.05", "--truth", "lenient"])
    assert exc.value.code == 2
    assert "--truth" in capsys.readouterr().err


def test_replay_with_targets_tunes_on_one_part_and_reports_the_other(tmp_path, capsys,
                                                                   minilm):
    """The honest comparison (the default): per seed the pairs are split by question
    group, the static threshold is tuned on the tuning stream and replayed on the test
    stream beside the hindsight best there and the verified policy; the hand-built
    pairs are replayed in their own streams, never in the headline runs."""
    _stream_pairs(tmp_path / "pairs.jsonl")
    extra = tmp_path / "more.jsonl"  # more groups, so that both parts have a stream
    rows = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    for i in range(6):
        qs = [f"How do I cook rice in style {i}?", f"What is the way to cook rice, style {i}?",
              f"How can I cook rice in style {i}?"]
        rows += [{"query": a, "candidate": b, "label": 1} for a, b in zip(qs, qs[1:])]
    extra.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rc = main(["eval", "replay", str(extra), "--target-error-rate", "0.02", "0.05",
               "--thresholds", "0.8,0.85,0.9,0.95", "--seeds", "2", "-q",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "tuned static" in out and "hindsight" in out and "hand-built" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert len(r["seeds"]) == 2 and r["truth"] == "labeled"
    for s in r["seeds"]:
        sp = s["split"]
        assert sp["tune_pairs"] + sp["test_pairs"] == len(rows)
        assert sp["tune_queries"] > 0 and sp["test_queries"] > 0
        for t in ("0.02", "0.05"):
            v = s["verified"][t]
            # the headline runs are the test stream's, without the hand-built pairs
            assert v["queries"] == sp["test_queries"]
            assert "reversed" not in v["queries_by_kind"]
            tuned = s["tuned"][t]
            # the tuned threshold was chosen on the tuning stream within the target ...
            if tuned is not None:
                assert s["tune_static"][str(tuned)]["error_rate"] <= float(t)
                assert str(tuned) in s["test_static"]  # ... and replayed on the test one
            best = s["hindsight"][t]
            if best is not None:
                assert s["test_static"][str(best)]["error_rate"] <= float(t)
                within = [x for x in s["test_static"].values() if x["error_rate"] <= float(t)]
                assert s["test_static"][str(best)]["hit_rate"] == max(
                    x["hit_rate"] for x in within)
            hard = s["hard"]["verified"][t]
            assert hard["queries_by_kind"]["reversed"] == s["hard"]["pairs"] > 20
    for row in r["summary"]:
        assert set(row["done_when"]) == {"at_least_hindsight_static",
                                         "at_least_1.3x_tuned_static",
                                         "explored_at_most_20pct", "not_significantly_over"}
        assert len(row["verified_hit_rate"]["per_seed"]) == 2
        span = row["verified_explored_share"]
        assert span["min"] <= span["mean"] <= span["max"] <= 1


def test_the_static_sweep_bisects_to_the_exhaustive_choice(minilm):
    """Bisecting the grid for each target's best threshold (plus its neighbours) picks
    what replaying every threshold picks, on a stream whose error falls with the
    threshold."""
    from semcache.eval.split_replay import StaticSweep
    from semcache.eval.streams import build_stream

    groups = [["How do I learn Python quickly?", "What is the fastest way to learn Python?",
               "How can I learn Python fast?"],
              ["How do I learn Java quickly?", "What is the fastest way to learn Java?",
               "How can I learn Java fast?"],
              ["Why is the sky blue?", "What makes the sky blue?", "Why does the sky look blue?"]]
    stream = build_stream(groups, [("How do I learn Python quickly?",
                                    "How do I learn Java quickly?")], seed=0, truth="strict")
    grid = [round(0.5 + 0.05 * i, 2) for i in range(10)]
    quick = StaticSweep(stream, minilm, grid, neighbours=1)
    full = StaticSweep(stream, minilm, grid, exhaustive=True)
    for target in (0.0, 0.05, 0.2, 1.0):
        assert quick.best(target) == full.best(target)
    assert len(quick.runs) < len(full.runs) == len(grid)


def test_stream_truth_modes():
    from semcache.eval.policies import compare_policies
    from semcache.eval.streams import build_stream

    groups = [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2", "c3"]]
    negatives = [("a1", "n1")]
    labeled = build_stream(groups, negatives, seed=1)
    strict = build_stream(groups, negatives, seed=1, truth="strict")
    assert [q.text for q in labeled.queries] == [q.text for q in strict.queries]
    n = next(q.answer_class for q in labeled.queries if q.text == "n1")
    assert labeled.truth(0, 0) is True and strict.truth(0, 0) is True
    assert labeled.truth(0, n) is False and strict.truth(n, 0) is False
    assert labeled.truth(0, 1) is None and strict.truth(0, 1) is False
    with pytest.raises(ValueError, match="truth"):
        build_stream(groups, negatives, truth="lenient")
    with pytest.raises(InvalidRequestError, match="truth"):
        compare_policies([("a", "b", 1)], None, truth="lenient")  # type: ignore[arg-type]


def test_replay_with_targets_rejects_bad_input(tmp_path, capsys):
    _stream_pairs(tmp_path / "pairs.jsonl")
    assert main(["eval", "replay", str(tmp_path / "pairs.jsonl"),
                 "--target-error-rate", "1.5"]) == 2
    assert "target_error_rate" in capsys.readouterr().err
    assert main(["eval", "replay", str(tmp_path / "pairs.jsonl"),
                 "--target-error-rate", "0.02", "--thresholds", "0.9:0.5:0.1"]) == 2
    assert "--thresholds" in capsys.readouterr().err
    assert main(["eval", "replay", str(tmp_path / "pairs.jsonl"), "--target-error-rate",
                 "0.02", "--policy-param", "confidnce=0.9"]) == 2
    assert "confidnce" in capsys.readouterr().err
    assert main(["eval", "replay", str(tmp_path / "pairs.jsonl"), "--target-error-rate",
                 "0.02", "--policy-param", "per=query"]) == 2
    assert "per" in capsys.readouterr().err
    (tmp_path / "flat.jsonl").write_text(json.dumps(
        {"query": "a b", "candidate": "c d", "label": 1}) + "\n")
    assert main(["eval", "replay", str(tmp_path / "flat.jsonl"),
                 "--target-error-rate", "0.02", "-q", "--in-sample"]) == 2
    assert "paraphrase group" in capsys.readouterr().err
    assert main(["eval", "replay", str(tmp_path / "flat.jsonl"),
                 "--target-error-rate", "0.02", "-q"]) == 2
    assert "two pairs" in capsys.readouterr().err  # a split needs something to split
    for bad, what in ((["--test-fraction", "1.0"], "--test-fraction"),
                      (["--verifier", "oracle"], "verifier")):
        assert main(["eval", "replay", str(tmp_path / "pairs.jsonl"),
                     "--target-error-rate", "0.02", "-q", *bad]) == 2
        assert what in capsys.readouterr().err


def test_threshold_specs():
    from semcache.eval._cli import parse_thresholds

    assert parse_thresholds("0.5:0.6:0.05") == (0.5, 0.55, 0.6)
    assert parse_thresholds("0.8, 0.9") == (0.8, 0.9)
    for bad in ("x", "0.5:0.4:0.1", "0.5:0.6:0", "1.2", ""):
        with pytest.raises(InvalidRequestError):
            parse_thresholds(bad)


def test_threshold_specs_that_cannot_be_a_grid_are_errors_not_hangs():
    from semcache.eval._cli import parse_thresholds

    # infinite ends overflowed int(); a step of 1e-300 asked for 1e300 thresholds (hang)
    for bad in ("0:inf:0.1", "-inf:1:0.1", "0:1:1e-300", "0.5:0.99:1e-9", "0:1:inf"):
        with pytest.raises(InvalidRequestError, match="--thresholds"):
            parse_thresholds(bad)


@pytest.mark.parametrize("option", ["--limit", "--sample", "--batch-size"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_counts_below_one_are_usage_errors(tmp_path, capsys, option, value):
    """--limit 0 used one pair and --sample 0 all of them (silently wrong figures);
    --sample -1 and --batch-size 0 were tracebacks after the file was read."""
    p = tmp_path / "p.jsonl"
    p.write_text('{"query": "a", "candidate": "b", "label": 1}\n' * 3)
    with pytest.raises(SystemExit) as info:
        main(["eval", "pairs", str(p), "-q", option, value])
    assert info.value.code == 2
    assert option in capsys.readouterr().err


def test_replay_counts_below_one_are_usage_errors(tmp_path, capsys):
    p = tmp_path / "p.jsonl"
    p.write_text('{"query": "a", "candidate": "b", "label": 1}\n' * 3)
    with pytest.raises(SystemExit):
        main(["eval", "replay", str(p), "-q", "--target-error-rate", "0.02", "--seeds", "0"])
    assert "--seeds" in capsys.readouterr().err


def test_an_empty_part_of_the_split_is_an_error(tmp_path, capsys):
    """Pairs that all share questions are one group: the split puts them all on one side,
    and --part tune used to evaluate zero pairs (a traceback in the summary)."""
    p = tmp_path / "linked.jsonl"
    p.write_text("".join(json.dumps({"query": a, "candidate": b, "label": 1}) + "\n"
                         for a, b in (("a b", "a c"), ("a c", "a d"), ("A  D", "a e"))))
    assert main(["eval", "pairs", str(p), "-q", "--part", "tune"]) == 2
    err = capsys.readouterr().err
    assert "tune part" in err and "one question group" in err


def test_pairs_report_with_one_class_prints_dashes_not_a_traceback():
    from semcache.eval import Pairs, evaluate_pairs

    for labels in ([0, 0, 0], [1, 1, 1]):
        pairs = Pairs(["a", "b", "c"], ["d", "e", "f"], np.asarray(labels, np.int8))
        report = evaluate_pairs(pairs, _NoEmbedder(), similarities=np.array([0.9, 0.8, 0.7]))
        text = report.summary()
        assert "ROC AUC -" in text and "nan" not in text.lower()
        d = report.to_dict()
        assert d["roc_auc"] is None
        json.dumps(d, allow_nan=False)  # strict JSON: no NaN figure in the report


class _NoEmbedder(Embedder):
    """Never asked: the similarities are given."""

    model_id = "none"
    dim = 2

    def _embed(self, texts):
        raise AssertionError("not called")


def test_unwritable_report_paths_are_errors_not_tracebacks(tmp_path, capsys):
    p = tmp_path / "p.jsonl"
    p.write_text('{"query": "a", "candidate": "b", "label": 1}\n')
    prices = tmp_path / "prices.json"
    prices.write_text("{not json")
    assert main(["eval", "replay", str(p), "-q", "--price-table", str(prices)]) == 2
    assert "prices.json" in capsys.readouterr().err
    assert main(["eval", "replay", str(p), "-q", "--price-table",
                 str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_an_unwritable_report_path_is_an_error_not_a_traceback(tmp_path, capsys, minilm):
    p = tmp_path / "p.jsonl"
    p.write_text('{"query": "a", "candidate": "b", "label": 1}\n')
    (tmp_path / "file").write_text("")
    for option, path in (("--json", tmp_path), ("--out", tmp_path / "file")):
        assert main(["eval", "pairs", str(p), "-q", option, str(path)]) == 2
        assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize("target", ["0", "1.5", "nan"])
def test_a_bad_target_precision_fails_before_the_embedding(tmp_path, capsys, monkeypatch,
                                                          target):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    p = tmp_path / "p.jsonl"
    p.write_text('{"query": "a", "candidate": "b", "label": 1}\n')
    # a model that does not exist: reaching the embedding would fail differently
    assert main(["eval", "pairs", str(p), "-q", "--model", "openai/none",
                 "--target-precision", target]) == 2
    assert "target precision" in capsys.readouterr().err
