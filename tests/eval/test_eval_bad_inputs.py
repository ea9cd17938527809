"""``semcache eval`` given files and flags a fuzzer broke it with: each is a one-line
error and exit code 2, never a traceback (zlib.error, ValueError, RecursionError)."""

from __future__ import annotations

import gzip
import json
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from semcache import InvalidRequestError
from semcache.cli import main
from semcache.eval import load_conversations, load_pairs

ROW = '{"query": "how do I reset it", "candidate": "how to reset it", "label": 1}\n'
CONV = {"Main Query": "a", "Main Query Response": "b", "Follow-Up Query": "c",
        "Follow Up Query Response": "d"}
#: an integer of one digit more than Python converts to int (a ValueError in json.loads)
BIG = "1" * (sys.get_int_max_str_digits() + 1)
#: nesting far deeper than the recursion limit (a RecursionError in json.loads)
DEEP = "[" * 100_000 + "]" * 100_000


def _damaged_gzip(text: str) -> bytes:
    """A gzip with a valid header whose deflate data starts with a block of the reserved
    type 3 (BFINAL=1, BTYPE=11): zlib says "invalid block type"."""
    good = gzip.compress(text.encode())
    return good[:10] + b"\x07" + good[11:]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# 1. a gzip whose data is damaged (zlib.error was not caught)

@pytest.mark.parametrize("mode", ["pairs", "replay", "multiturn"])
def test_a_damaged_gzip_is_an_error_naming_the_file(tmp_path, capsys, mode):
    name = "conv.json.gz" if mode == "multiturn" else "pairs.jsonl.gz"
    p = tmp_path / name
    p.write_bytes(_damaged_gzip(json.dumps([CONV]) if mode == "multiturn" else ROW * 50))
    assert main(["eval", mode, str(p), "-q"]) == 2
    line = _one_error_line(capsys)
    assert f"{p}: cannot read" in line and "invalid block type" in line


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                       min_size=1, max_size=4))
@example(writes=[(0, 0x07)])  # the first deflate block of the reserved type
def test_any_damage_to_a_gzip_body_is_a_message_or_a_read(tmp_path, writes):
    good = bytearray(gzip.compress((ROW * 40).encode()))
    for at, byte in writes:  # anywhere after the 10-byte header
        good[10 + at % (len(good) - 10)] = byte
    p = tmp_path / "p.jsonl.gz"
    p.write_bytes(bytes(good))
    try:
        load_pairs(p)
    except InvalidRequestError as exc:
        assert str(p) in str(exc)


# 2. and 3. JSON a user's file may hold that json.loads fails on beyond JSONDecodeError

def _json_inputs(tmp_path, value: str) -> dict[str, list[str]]:
    """argv (after ``eval``) reading ``value`` from each place JSON is read."""
    ok = tmp_path / "ok.jsonl"
    ok.write_text(ROW * 3)
    files = {
        "jsonl": ("p.jsonl", ROW + f'{{"query": "a", "candidate": "b", "label": {value}}}\n'),
        "json": ("p.json", f'[{{"query": "a", "candidate": "b", "label": {value}}}]'),
        "multiturn": ("c.json", f"[{json.dumps(CONV)[:-1]}, \"x\": {value}}}]"),
        "price-table": ("prices.json", f'{{"gpt-4o-mini": {{"input": {value}}}}}'),
    }
    argv = {}
    for key, (name, text) in files.items():
        (tmp_path / name).write_text(text)
        path = str(tmp_path / name)
        argv[key] = (["multiturn", path] if key == "multiturn" else
                     ["replay", str(ok), "--price-table", path] if key == "price-table" else
                     ["pairs", path])
    argv["param"] = ["replay", str(ok), "--param", f"x={value}"]
    return argv


@pytest.mark.parametrize("where", ["jsonl", "json", "multiturn", "price-table", "param"])
@pytest.mark.parametrize(("value", "reason"), [
    (BIG, f"a JSON number has more than {sys.get_int_max_str_digits()} digits"),
    (DEEP, "JSON nested too deeply"),
])
def test_json_too_long_a_number_or_too_deep_is_an_error(tmp_path, capsys, where, value,
                                                        reason):
    argv = _json_inputs(tmp_path, value)[where]
    assert main(["eval", *argv, "-q"]) == 2
    line = _one_error_line(capsys)
    assert reason in line
    assert ("--param x" if where == "param" else argv[-1 if where == "price-table" else 1]) \
        in line


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(50_000, 200_000), extra=st.integers(1, 3_000))
def test_the_loaders_name_any_deep_or_long_json(tmp_path_factory, depth, extra):
    d = tmp_path_factory.mktemp("j")
    for text in ("[" * depth + "]" * depth,
                 '[{"query": "a", "candidate": "b", "label": '
                 f'{"1" * (sys.get_int_max_str_digits() + extra)}}}]'):
        for p in (d / "p.json", d / "p.jsonl"):
            p.write_text(text)
            with pytest.raises(InvalidRequestError, match="JSON"):
                load_pairs(p)
        with pytest.raises(InvalidRequestError, match="JSON"):
            load_conversations(d / "p.json")


# 4. seeds numpy refuses (default_rng: "expected non-negative integer", after the read)

@pytest.mark.parametrize(("mode", "argv"), [
    ("pairs", ["--seed", "-1", "--sample", "1"]),
    ("pairs", ["--split-seed", "-3", "--part", "tune"]),
    ("replay", ["--split-seed", "-3", "--part", "test"]),
    ("replay", ["--seed", "-1", "--sample", "2"]),
])
def test_a_negative_seed_is_a_usage_error(tmp_path, capsys, mode, argv):
    p = tmp_path / "p.jsonl"
    p.write_text(ROW * 3)
    with pytest.raises(SystemExit) as info:
        main(["eval", mode, str(p), "-q", *argv])
    assert info.value.code == 2
    assert f"argument {argv[0]}: must be at least 0" in capsys.readouterr().err


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(max_value=-1), option=st.sampled_from(["--seed", "--split-seed"]))
def test_every_negative_seed_is_refused_and_none_other(seed, option):
    from semcache.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "pairs", "p.jsonl", option, str(seed)])
    args = parser.parse_args(["eval", "pairs", "p.jsonl", option, str(-seed)])
    assert getattr(args, option[2:].replace("-", "_")) == -seed


# 6. flags refused only after the embedding, or not at all

@pytest.mark.parametrize(("argv", "message"), [
    (["--floor", "2"], "argument --floor: must be in [0, 1]"),
    (["--floor", "-1"], "argument --floor: must be in [0, 1]"),
    (["--floor", "nan"], "argument --floor: must be in [0, 1]"),
    (["--floor", "x"], "argument --floor: not a number"),
    (["--min-group", "0"], "argument --min-group: must be at least 2"),
    (["--min-group", "-1"], "argument --min-group: must be at least 2"),
    (["--min-group", "1"], "argument --min-group: must be at least 2"),
    (["--json", ""], "argument --json: an empty path"),
    (["--out", ""], "argument --out: an empty path"),
    (["--price-table", ""], "argument --price-table: an empty path"),
    (["--embedding-cache", ""], "argument --embedding-cache: an empty path"),
])
def test_replay_flags_that_mean_nothing_are_usage_errors(tmp_path, capsys, monkeypatch,
                                                         argv, message):
    import semcache.eval._embed as embed

    def no_embedding(*a, **k):  # the flag is refused before any model is loaded
        raise AssertionError("embedded before refusing the flag")

    monkeypatch.setattr(embed.PrecomputedEmbedder, "build", no_embedding)
    p = tmp_path / "p.jsonl"
    p.write_text(ROW * 3)
    with pytest.raises(SystemExit) as info:
        main(["eval", "replay", str(p), "-q", "--target-error-rate", "0.05", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--json", "--out", "--embedding-cache"])
def test_pairs_refuses_an_empty_report_path(tmp_path, capsys, option):
    p = tmp_path / "p.jsonl"
    p.write_text(ROW * 3)
    with pytest.raises(SystemExit) as info:
        main(["eval", "pairs", str(p), "-q", option, ""])
    assert info.value.code == 2
    assert f"argument {option}: an empty path" in capsys.readouterr().err


def test_the_edges_of_floor_and_min_group_are_accepted():
    from semcache.cli import build_parser

    args = build_parser().parse_args(["eval", "replay", "p.jsonl", "--floor", "0",
                                      "--min-group", "2"])
    assert (args.floor, args.min_group) == (0.0, 2)
    args = build_parser().parse_args(["eval", "replay", "p.jsonl", "--floor", "1"])
    assert (args.floor, args.min_group) == (1.0, 3)
