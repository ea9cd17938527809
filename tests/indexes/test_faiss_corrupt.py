"""A FAISS index folder with damaged files (another process, an older version, a
truncated write or a hostile writer put them there): a malformed log record is skipped
with a warning, never fatal and never a reason to drop the records after it; a damaged
manifest or snapshot is a typed error naming the file, never a raw JSONDecodeError,
BadZipFile or a broadcast ValueError out of the constructor."""

from __future__ import annotations

import base64
import json
import logging

import numpy as np
import pytest

from semcache import SemcacheError
from semcache.indexes.base import IndexEntry
from semcache.indexes.faiss import FaissIndex

DIM = 8


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def _build(path, n: int = 3) -> None:
    idx = FaissIndex(path=path, model_id="m")
    idx.add([IndexEntry(f"ns:{i}", "ctx", "ns", f"p{i}", 1.0, None) for i in range(n)],
            np.stack([_unit(i) for i in range(n)]))
    idx.close()


def _add_record(key: str, vec) -> bytes:
    return json.dumps({"op": "add", "key": key, "ctx": "ctx", "ns": "ns", "p": key, "c": 1.0,
                       "x": None, "v": base64.b64encode(
                           np.asarray(vec, np.float32).tobytes()).decode()}).encode() + b"\n"


GOOD_AFTER = _add_record("ns:after", _unit(99))

BAD_RECORDS = {
    "a list": b"[1]\n",
    "a number": b"7\n",
    "an add without its vector": b'{"op":"add","key":"ns:x","ctx":"ctx","ns":"ns"}\n',
    "an add of a NaN vector": _add_record("ns:x", np.full(DIM, np.nan)),
    "an add whose vector is not base64": b'{"op":"add","key":"ns:x","ctx":"ctx","ns":"ns",'
                                         b'"p":"q","c":1.0,"x":null,"v":"!!"}\n',
    "an add whose created time is a string": json.dumps({
        **json.loads(_add_record("ns:x", _unit(5))), "c": "soon"}).encode() + b"\n",
    "an add whose key is a number": json.dumps({
        **json.loads(_add_record("ns:x", _unit(5))), "key": 5}).encode() + b"\n",
    "an observation that is not a list": b'{"op":"obs","key":"ns:1","o":5}\n',
    "a delete of a number": b'{"op":"del","keys":5}\n',
    "a clear of a list": b'{"op":"clear","ns":[1]}\n',
    "a line that is not JSON": b'{"op":"add", garbage\n',
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
def test_a_malformed_log_record_is_skipped_and_the_records_after_it_kept(tmp_path, caplog,
                                                                         case):
    path = tmp_path / "idx"
    _build(path)
    with open(path / "log.jsonl", "ab") as f:
        f.write(BAD_RECORDS[case] + GOOD_AFTER)
    with caplog.at_level(logging.WARNING, logger="semcache.indexes.faiss"):
        idx = FaissIndex(path=path, model_id="m")
    assert "log.jsonl" in caplog.text or "record" in caplog.text
    try:
        assert idx.count() == 4  # the three built, and the record after the bad one
        found = idx.search(_unit(99), "ctx", 8)
        assert found[0].key == "ns:after"
        assert all(np.isfinite(c.similarity) for c in found)
        assert "ns:x" not in {c.key for c in found}
        # compaction writes what this process holds: the good record survives it
        idx.compact()
    finally:
        idx.close()
    assert b"ns:after" in (path / "log.jsonl").read_bytes() + (path / "snapshot.npz").read_bytes()
    again = FaissIndex(path=path, model_id="m")
    try:
        assert again.count() == 4
    finally:
        again.close()


def test_a_malformed_record_from_a_peer_is_skipped_by_an_open_index(tmp_path):
    """The index is open when another writer appends a bad record then a good one: its
    next lookup catches up past the bad one instead of raising on every lookup (or
    stopping there and compacting the good record away)."""
    path = tmp_path / "idx"
    _build(path)
    idx = FaissIndex(path=path, model_id="m")
    try:
        peer = FaissIndex(path=path, model_id="m")
        with open(path / "log.jsonl", "ab") as f:
            f.write(BAD_RECORDS["an add of a NaN vector"])
        peer.add([IndexEntry("ns:after", "ctx", "ns", "a", 1.0, None)], _unit(99)[None, :])
        peer.close()
        assert idx.search(_unit(99), "ctx", 1)[0].key == "ns:after"
        assert idx.count() == 4
    finally:
        idx.close()


@pytest.mark.parametrize("length", [1, 3, 16])
def test_a_vector_of_another_dimension_in_the_log_is_a_typed_error(tmp_path, length):
    """Not one bad record but a folder that mixes models (or a manifest that lies): a
    typed error naming it, on open and on every later lookup of an open index; never a
    numpy broadcast (a 1-element vector used to fill a whole row silently)."""
    path = tmp_path / "idx"
    _build(path)
    idx = FaissIndex(path=path, model_id="m")
    try:
        with open(path / "log.jsonl", "ab") as f:
            f.write(_add_record("ns:x", np.ones(length)) + GOOD_AFTER)
        FaissIndex(path=path, model_id="m").add(  # a peer's write: the others catch up
            [IndexEntry("ns:peer", "ctx", "ns", "q", 1.0, None)], _unit(7)[None, :])
    except SemcacheError as exc:
        assert "dimension" in str(exc)
    else:
        pytest.fail("the peer opened a folder with a vector of another dimension")
    try:
        with pytest.raises(SemcacheError, match="dimension"):  # its write catches up first
            idx.add([IndexEntry("ns:mine", "ctx", "ns", "m", 1.0, None)], _unit(8)[None, :])
        for _ in range(2):  # still refused: it did not carry on from a partial view
            with pytest.raises(SemcacheError, match="dimension"):
                idx.search(_unit(99), "ctx", 1)
    finally:
        idx.close()
    with pytest.raises(SemcacheError, match="dimension"):
        FaissIndex(path=path, model_id="m")


MANIFESTS = {
    "truncated": lambda text: text[:10],
    "a list": lambda text: "[1]",
    "dimension as a string": lambda text: text.replace(f'"dim": {DIM}', f'"dim": "{DIM}"'),
    "dimension of another model": lambda text: text.replace(f'"dim": {DIM}', '"dim": 16'),
    "model as a number": lambda text: text.replace('"model_id": "m"', '"model_id": 5'),
    "nested deeper than json reads": lambda text: "[" * 5000 + "]" * 5000,
}


@pytest.mark.parametrize("case", list(MANIFESTS))
@pytest.mark.parametrize("compacted", [False, True])
def test_a_damaged_manifest_is_a_typed_error_naming_it(tmp_path, case, compacted):
    path = tmp_path / "idx"
    _build(path)
    if compacted:
        idx = FaissIndex(path=path, model_id="m")
        idx.compact()
        idx.close()
    p = path / "manifest.json"
    p.write_text(MANIFESTS[case](p.read_text()))
    with pytest.raises(SemcacheError, match="manifest|dimension"):
        FaissIndex(path=path, model_id="m")


def _compacted(path):
    """A built folder whose log was folded into snapshot.npz."""
    _build(path)
    idx = FaissIndex(path=path, model_id="m")
    idx.compact()
    idx.close()
    return path


SNAPSHOTS = {
    "truncated": lambda data: data[: len(data) // 2],
    "not a zip": lambda data: b"garbage" * 10,
    "empty": lambda data: b"",
}


@pytest.mark.parametrize("case", list(SNAPSHOTS))
def test_a_damaged_snapshot_is_a_typed_error_naming_it(tmp_path, case):
    path = _compacted(tmp_path / "idx")
    p = path / "snapshot.npz"
    p.write_bytes(SNAPSHOTS[case](p.read_bytes()))
    with pytest.raises(SemcacheError, match="snapshot.npz"):
        FaissIndex(path=path, model_id="m")


def test_snapshot_metadata_nested_deeper_than_json_reads_is_a_typed_error(tmp_path):
    """The stdlib's json raises RecursionError there, which was not caught."""
    path = _compacted(tmp_path / "idx")
    with np.load(path / "snapshot.npz", allow_pickle=False) as z:
        kept = {k: z[k] for k in z.files if k != "meta"}
    with open(path / "snapshot.npz", "wb") as f:
        np.savez(f, meta=np.frombuffer(b"[" * 5000 + b"]" * 5000, np.uint8), **kept)
    with pytest.raises(SemcacheError, match="snapshot.npz"):
        FaissIndex(path=path, model_id="m")


def test_a_snapshot_of_another_shape_is_a_typed_error(tmp_path):
    path = _compacted(tmp_path / "idx")
    with open(path / "snapshot.npz", "wb") as f:  # vectors of another dimension
        np.savez(f, vecs=np.ones((3, 4), np.float32), gen=np.array(1, np.int64),
                 meta=np.frombuffer(json.dumps([{"key": f"ns:{i}", "ctx": "ctx", "ns": "ns",
                                                 "p": "p", "c": 1.0, "x": None}
                                                for i in range(3)]).encode(), np.uint8))
    with pytest.raises(SemcacheError, match="snapshot.npz"):
        FaissIndex(path=path, model_id="m")


HEADS = {
    "a string generation": b'{"op":"gen","g":"x","prev":null}\n',
    "a null generation": b'{"op":"gen","g":null,"prev":null}\n',
    "a list generation": b'{"op":"gen","g":[1],"prev":null}\n',
    "a fractional generation": b'{"op":"gen","g":1.5,"prev":null}\n',
    "a boolean generation": b'{"op":"gen","g":true,"prev":null}\n',
    # -1 is what a process that has loaded nothing holds: taken for "already current",
    # the snapshot was never read and its entries missing from memory (and from the
    # next compaction)
    "a negative generation": b'{"op":"gen","g":-1,"prev":null}\n',
    "no generation": b'{"op":"gen","prev":null}\n',
}


@pytest.mark.parametrize("case", list(HEADS))
def test_a_damaged_log_header_is_a_typed_error_naming_the_log(tmp_path, case):
    """The header names the generation the log continues: a guessed one (a raw
    ValueError/TypeError before) could pair the records with the wrong snapshot, so the
    folder is refused with a typed error naming log.jsonl, on open and in an open index."""
    path = tmp_path / "idx"
    _build(path)
    idx = FaissIndex(path=path, model_id="m")
    idx.compact()
    p = path / "log.jsonl"
    body = p.read_bytes()
    # a record after it, as a peer's write: the open index must read the log again
    p.write_bytes(HEADS[case] + body[body.index(b"\n") + 1:] + GOOD_AFTER)
    try:
        with pytest.raises(SemcacheError, match="log.jsonl"):
            FaissIndex(path=path, model_id="m")
        with pytest.raises(SemcacheError, match="log.jsonl"):  # its write catches up first
            idx.add([IndexEntry("ns:mine", "ctx", "ns", "m", 1.0, None)], _unit(8)[None, :])
    finally:
        idx.close()
    assert not (path / "snapshot.tmp.npz").exists()
    with np.load(path / "snapshot.npz") as z:  # nothing was rewritten from a guess
        assert len(json.loads(z["meta"].tobytes())) == 3
