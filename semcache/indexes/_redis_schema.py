"""The shape checks of an existing RediSearch index and its metadata hash
(``RedisVLIndex``): an index made by another version or tool is a ``ConfigError``
naming each difference, never silently wrong scores or writes nothing indexes."""

from __future__ import annotations

from typing import Any

from .._errors import BackendError, ConfigError

__all__ = ["check_existing", "index_gone", "read_meta"]


def read_meta(raw: dict[Any, Any], where: str, meta_key: str) -> dict[str, str]:
    """The ``vec#meta#`` hash as text, checked: a hash another writer shaped otherwise
    is a ``ConfigError`` naming it, not a raw KeyError out of every call."""
    bad = (f"{where}: its metadata hash {meta_key!r} is malformed")
    try:
        meta = {k.decode() if isinstance(k, bytes) else str(k):
                v.decode() if isinstance(v, bytes) else str(v) for k, v in raw.items()}
    except UnicodeDecodeError:
        raise ConfigError(f"{bad} (not UTF-8); delete it or use another "
                          "redis_semantic_cache_index_name",
                          parameter="redis_semantic_cache_index_name") from None
    if not meta:
        return meta
    dim = meta.get("dim", "")
    if not dim.isascii() or not dim.isdigit() or int(dim) < 1:
        raise ConfigError(f"{bad}: dim {dim[:40]!r} is not a positive integer; delete it "
                          "or use another redis_semantic_cache_index_name",
                          parameter="redis_semantic_cache_index_name")
    metric = meta.get("metric", "cosine")
    if metric != "cosine":
        raise ConfigError(f"{where} was built for the {metric[:40]!r} metric, not cosine: "
                          "its distances are not cosine similarities; use another "
                          "redis_semantic_cache_index_name or drop the index",
                          parameter="redis_semantic_cache_index_name")
    return meta

def check_existing(info: dict[str, Any], dim: int, where: str, prefix: str) -> None:
    """An existing search index must be the one ``RedisVLIndex._make_schema`` describes: one of
    another metric scores silently wrong (L2's squared distance read as 1 - cos), one
    of another dimension, type or prefix never indexes our hashes (writes lost)."""
    fields: dict[str, dict[str, str]] = {}
    for attr in info.get("attributes") or []:
        d = _pairs(attr)
        fields[d.get("attribute") or d.get("identifier") or ""] = d
    want = {"ctx": "TAG", "ns": "TAG", "x": "NUMERIC", "v": "VECTOR"}
    problems = [f"no {t} field {n!r}" for n, t in want.items()
                if fields.get(n, {}).get("type", "").upper() != t]
    v = fields.get("v", {})
    if "v" in fields and not problems:
        for what, have, expected in (
                ("dimension", v.get("dim", "?"), str(dim)),
                ("distance metric", v.get("distance_metric", "?").upper(), "COSINE"),
                ("vector type", v.get("data_type", v.get("type_", "?")).upper(),
                 "FLOAT32")):
            if have != expected:
                problems.append(f"{what} {have}, not {expected}")
    raw_def = info.get("index_definition")
    definition = _pairs(raw_def or {})
    if definition.get("key_type", "HASH").upper() != "HASH":
        problems.append(f"{definition['key_type']} documents, not hashes")
    raw_prefixes = raw_def.get("prefixes") if isinstance(raw_def, dict) else None
    prefixes = [_text(p) for p in raw_prefixes or []]
    if prefix not in prefixes:
        problems.append(f"key prefixes {prefixes}, not {prefix!r}")
    if problems:
        raise ConfigError(
            f"{where} exists with another shape than semcache's ({'; '.join(problems)}): "
            "it was made by another version or tool; use another "
            "redis_semantic_cache_index_name or drop that index",
            parameter="redis_semantic_cache_index_name")


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _pairs(raw: Any) -> dict[str, str]:
    """FT.INFO's flat [name, value, ...] lists (or a dict) as a dict of lowercase names
    to text; nested lists (some RediSearch versions nest a vector's parameters) are
    merged in."""
    out: dict[str, str] = {}
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        items = list(zip(raw[0::2], raw[1::2]))
    else:
        return out
    for k, v in items:
        if isinstance(v, (list, tuple, dict)):
            for kk, vv in _pairs(v).items():
                out.setdefault(kk, vv)
        else:
            out[_text(k).lower()] = _text(v)
    return out


def index_gone(exc: BackendError) -> bool:
    """A RediSearch answer that the index does not exist (any command's wording)."""
    text = str(exc.__cause__ or exc).lower()
    return "no such index" in text or "unknown index name" in text
