from __future__ import annotations

import gzip
import json
from importlib import resources

import pytest

from semcache import InvalidRequestError
from semcache.eval import detect_format, load_conversations, load_pairs

DATA = resources.files("semcache") / "data"


def test_jsonl_query_candidate_label(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text('{"query": "a", "candidate": "b", "label": 1}\n\n'
                 '{"query": "c", "candidate": "d", "label": 0}\n')
    pairs = load_pairs(p)
    assert (pairs.queries, pairs.candidates, pairs.labels.tolist()) == (
        ["a", "c"], ["b", "d"], [1, 0])


def test_gzipped_jsonl_and_qqp_columns(tmp_path):
    p = tmp_path / "qqp.jsonl.gz"
    rows = [{"question1": "x?", "question2": "y?", "is_duplicate": True},
            {"question1": "z?", "question2": "w?", "is_duplicate": "0"}]
    with gzip.open(p, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows))
    assert detect_format(p) == "jsonl"
    assert load_pairs(p).labels.tolist() == [1, 0]


def test_qqp_csv_with_quoted_commas(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text('id,qid1,qid2,question1,question2,is_duplicate\n'
                 '0,1,2,"Hello, world?","Hi, world?",1\n')
    pairs = load_pairs(p)
    assert pairs.queries == ["Hello, world?"] and pairs.labels.tolist() == [1]


def test_paws_tsv_without_and_with_header(tmp_path):
    pairs = load_pairs(DATA / "paws_sample.tsv")
    assert len(pairs) == 400 and pairs.n_positive == 200
    p = tmp_path / "paws.tsv"
    p.write_text("id\tsentence1\tsentence2\tlabel\n1\tA \"quoted\" one .\tB .\t0\n")
    pairs = load_pairs(p)
    assert pairs.queries == ['A "quoted" one .'] and pairs.labels.tolist() == [0]


def test_mrpc_layout(tmp_path):
    p = tmp_path / "msr_paraphrase_test.txt"
    p.write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                 "1\t1089874\t1089925\tPCCW 's chief \"said\" .\tCurrent Chief said .\n")
    assert detect_format(p) == "tsv"
    pairs = load_pairs(p)
    assert pairs.candidates == ["Current Chief said ."] and pairs.labels.tolist() == [1]


def test_columns_named_explicitly_and_errors(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("a,b,same\nx,y,true\n")
    with pytest.raises(InvalidRequestError, match="cannot tell"):
        load_pairs(p)
    assert load_pairs(p, columns=("a", "b", "same")).labels.tolist() == [1]
    with pytest.raises(InvalidRequestError, match="no column 'c'"):
        load_pairs(p, columns=("a", "c", "same"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "candidate": "b", "label": 3}\n')
    with pytest.raises(InvalidRequestError, match="bad.jsonl:1: label"):
        load_pairs(bad)


def test_gptcache_mock_layout_is_all_positive():
    pairs = load_pairs(DATA / "gptcache_mock_sample.json", limit=50)
    assert len(pairs) == 50 and pairs.n_positive == 50


def test_conversations(tmp_path):
    convs = load_conversations("tests/data/multiturn_sample.json")
    assert len(convs) == 64 and convs[0].follow_up
    p = tmp_path / "c.json"
    p.write_text('[{"Main Query": "q"}]')
    with pytest.raises(InvalidRequestError, match="needs string fields"):
        load_conversations(p)


_ROW = '{"query": "a", "candidate": "b", "label": 1}\n'


def _unreadable_files(tmp_path):
    """(path, what the message must say): files a user can hand the loaders that are not
    labeled pairs at all."""
    good = gzip.compress(_ROW.encode() * 200)
    cases = {
        "missing.jsonl": None,
        "latin1.jsonl": '{"query": "caf\xe9", "candidate": "b", "label": 1}\n'.encode("latin-1"),
        "cut.jsonl.gz": good[:len(good) // 2],
        "plain.jsonl.gz": _ROW.encode(),
        "broken.json": b'[{"query": "a", "candidate": ',
        "latin1.csv": "query,candidate,label\ncaf\xe9,b,1\n".encode("latin-1"),
        "huge.csv": b'query,candidate,label\n"' + b"x" * 200_000 + b'",b,1\n',
    }
    out = []
    for name, data in cases.items():
        p = tmp_path / name
        if data is not None:
            p.write_bytes(data)
        out.append(p)
    out.append(tmp_path)  # a directory
    return out


def test_unreadable_files_are_errors_naming_the_file(tmp_path):
    for p in _unreadable_files(tmp_path):
        with pytest.raises(InvalidRequestError) as info:
            load_pairs(p, fmt="jsonl" if p.is_dir() else None)
        assert p.name in str(info.value), (p, info.value)


def test_unreadable_conversation_files_are_errors_naming_the_file(tmp_path):
    for name, data in (("broken.json", b'[{"Main Query": '), ("latin1.json", b'["\xe9"]')):
        (tmp_path / name).write_bytes(data)
    for p in (tmp_path / "broken.json", tmp_path / "latin1.json", tmp_path / "nope.json",
              tmp_path):
        with pytest.raises(InvalidRequestError) as info:
            load_conversations(p)
        assert p.name in str(info.value), (p, info.value)


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    """Windows tools write UTF-8 with a BOM; the first record must still be read."""
    for name, text in (("bom.jsonl", _ROW * 2), ("bom.json", f"[{_ROW.strip()}]"),
                       ("bom.tsv", "query\tcandidate\tlabel\na\tb\t1\n")):
        p = tmp_path / name
        p.write_text(text, encoding="utf-8-sig")
        assert load_pairs(p).queries[0] == "a", name
    p = tmp_path / "noext"
    p.write_text(_ROW, encoding="utf-8-sig")
    assert detect_format(p) == "jsonl"
    c = tmp_path / "conv.json"
    c.write_text(json.dumps([{"Main Query": "q", "Main Query Response": "r",
                              "Follow-Up Query": "f", "Follow Up Query Response": "g"}]),
                 encoding="utf-8-sig")
    assert load_conversations(c)[0].query == "q"


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_an_error_not_one_pair(tmp_path, limit):
    p = tmp_path / "pairs.jsonl"
    p.write_text(_ROW * 5)
    with pytest.raises(InvalidRequestError, match="limit"):
        load_pairs(p, limit=limit)
    with pytest.raises(InvalidRequestError, match="limit"):
        load_pairs(DATA / "gptcache_mock_sample.json", limit=limit)


def test_no_conversations_is_an_error_not_a_zero_false_hit_rate(tmp_path):
    """An empty list reported '0 false hits, 0.0%' for each mode: a figure from nothing."""
    p = tmp_path / "none.json"
    p.write_text("[]")
    with pytest.raises(InvalidRequestError, match="no conversations"):
        load_conversations(p)


def test_a_lone_surrogate_is_an_error_naming_the_line(tmp_path):
    """JSON may spell a lone surrogate ("\\ud800"), which no encoder can take: the
    embedding failed with the tokenizer's 'TextEncodeInput must be Union[...]'."""
    p = tmp_path / "s.jsonl"
    p.write_text(_ROW + '{"query": "a\\ud800", "candidate": "b", "label": 1}\n')
    with pytest.raises(InvalidRequestError, match=r"s.jsonl:2: .*not valid Unicode"):
        load_pairs(p)
    c = tmp_path / "c.json"
    c.write_text(json.dumps([{"Main Query": "q\ud800", "Main Query Response": "r",
                              "Follow-Up Query": "f", "Follow Up Query Response": "g"}]))
    with pytest.raises(InvalidRequestError, match=r"c.json\[0\]: .*not valid Unicode"):
        load_conversations(c)
