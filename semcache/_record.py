"""What an exact-store value is: a versioned JSON record, optionally HMAC-signed.

JSON only, never pickle, so a shared store cannot make a reader execute code. With a
``signing_key`` every value is ``b"s1:" + hex(HMAC-SHA256(body)) + b":" + body`` and a
value whose signature does not verify is rejected (``IntegrityError``, counted as a
miss by the pipeline). Reads are bounded: an oversized, deeply nested or malformed value
is an ``IntegrityError``, never an exhausted process.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from typing import Any

import orjson

from ._errors import ConfigError, IntegrityError, InvalidRequestError

__all__ = ["Record", "RecordCodec"]

RECORD_VERSION = 1
_SIG_PREFIX = b"s1:"


@dataclass(slots=True)
class Record:
    key: str
    value: Any  #: the cached response, as JSON-compatible data
    created_at: float
    expires_at: float | None
    call_type: str
    prompt: str | None = None  #: the embedded query text (semantic types)
    context: str | None = None  #: context key (semantic types)
    kind: str | None = None  #: type of the original response object, for rebuilding it

    def to_json(self) -> dict[str, Any]:
        return {"v": RECORD_VERSION, "key": self.key, "value": self.value,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "call_type": self.call_type, "prompt": self.prompt,
                "context": self.context, "kind": self.kind}


def to_jsonable(value: Any) -> tuple[Any, str | None]:
    """A response object as JSON data plus the name of its type (pydantic/openai aware)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        t = type(value)
        # warnings off: a response the client accepted unvalidated (str embeddings
        # under encoding_format="base64") is stored as it came, not warned about.
        # exclude_unset: the fields the upstream sent, not the type's defaults, so a
        # hit rebuilt from it serialises (to_dict/to_json) as the miss did
        return (dump(mode="json", warnings=False, exclude_unset=True),
                f"{t.__module__}.{t.__qualname__}")
    return value, None


class RecordCodec:
    def __init__(self, signing_key: bytes | str | None = None,
                 max_value_bytes: int = 64 * 2**20) -> None:
        if isinstance(signing_key, str):
            try:
                signing_key = signing_key.encode()
            except UnicodeEncodeError:  # a lone surrogate: no bytes to sign with
                raise ConfigError("signing_key must be valid text or bytes",
                                  parameter="signing_key") from None
        elif isinstance(signing_key, (bytearray, memoryview)):
            signing_key = bytes(signing_key)
        elif signing_key is not None and not isinstance(signing_key, bytes):
            raise ConfigError(f"signing_key must be a str or bytes of at least 16 bytes, "
                              f"or None, got {type(signing_key).__name__}",
                              parameter="signing_key")
        if signing_key is not None and len(signing_key) < 16:
            raise ConfigError("signing_key must be at least 16 bytes", parameter="signing_key")
        if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int) \
                or max_value_bytes < 1:
            # a str or None failed the first lookup; 0, -1 or True served nothing ever
            # again, and NaN (every comparison False) turned the bound off
            raise ConfigError(f"max_value_bytes must be a positive int (bytes), got "
                              f"{max_value_bytes!r:.80}", parameter="max_value_bytes")
        self._key = signing_key
        self.max_value_bytes = max_value_bytes

    @property
    def signed(self) -> bool:
        return self._key is not None

    def encode(self, record: Record) -> bytes:
        try:
            value = orjson.dumps(record.value)
            body = orjson.dumps(record.to_json())
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise InvalidRequestError(
                f"the response to cache is not JSON-serialisable: {exc}") from exc
        if b"null" in value:
            # orjson writes NaN and Infinity as null (it has no option to refuse them,
            # ijl/orjson#441), so an answer would come back with None in their place.
            # Only a value with a null in it can hold one; the stdlib's C encoder checks
            # those, no Python walk. Measured (timeit, an 800-byte chat answer): encode
            # 2.1 -> 8.8 us with the API's nulls in it, 1.2 -> 2.6 us without
            try:
                _STRICT.encode(record.value)
            except ValueError as exc:
                raise InvalidRequestError(f"the response to cache contains NaN or "
                                          f"Infinity, which JSON cannot hold: {exc}") from exc
        if self._key is None:
            return body
        sig = hmac.new(self._key, body, hashlib.sha256).hexdigest().encode()
        return _SIG_PREFIX + sig + b":" + body

    def decode(self, raw: bytes) -> Record:
        if len(raw) > self.max_value_bytes:
            raise IntegrityError(f"stored value of {len(raw)} bytes exceeds max_value_bytes")
        body = raw
        if raw.startswith(_SIG_PREFIX):
            sig, body = raw[3:67], raw[68:]
            if self._key is not None:
                want = hmac.new(self._key, body, hashlib.sha256).hexdigest().encode()
                if not hmac.compare_digest(sig, want):
                    raise IntegrityError("stored value failed its HMAC signature check")
        elif self._key is not None:
            raise IntegrityError("stored value is not signed but signing_key is set")
        try:
            d = orjson.loads(body)  # orjson refuses nesting deeper than 1024 levels
        except (orjson.JSONDecodeError, RecursionError, ValueError) as exc:
            raise IntegrityError(f"stored value is not valid JSON: {exc}") from exc
        if not isinstance(d, dict) or d.get("v") != RECORD_VERSION:
            raise IntegrityError("stored value is not a semcache record of this version")
        try:
            rec = Record(key=d["key"], value=d["value"], created_at=_time(d["created_at"]),
                         expires_at=None if d["expires_at"] is None else _time(d["expires_at"]),
                         call_type=d["call_type"], prompt=d.get("prompt"),
                         context=d.get("context"), kind=d.get("kind"))
        except KeyError as exc:
            raise IntegrityError(f"stored record is malformed: no {exc}") from exc
        if not isinstance(rec.key, str) or not isinstance(rec.call_type, str):
            raise IntegrityError("stored record is malformed: key/call_type")
        # the encoder writes str or null here; anything else (a list as ``kind``) would
        # raise later, far from the read, when the hit is rebuilt or shown
        for name in ("prompt", "context", "kind"):
            if not isinstance(getattr(rec, name), (str, type(None))):
                raise IntegrityError(f"stored record is malformed: {name} is not a string")
        return rec


def _plain(obj: Any) -> Any:
    """The stdlib's view of what orjson serialises natively (for the NaN check only)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    return None  # datetime, date, time, UUID: no float inside


#: no circularity check: orjson has already refused a value that holds itself
_STRICT = json.JSONEncoder(allow_nan=False, check_circular=False, ensure_ascii=False,
                           default=_plain)


def _time(v: Any) -> float:
    """A stored unix time: the encoder writes a finite JSON number, never a string (a
    ``"nan"`` expiry would make an entry that never expires) nor a bool."""
    try:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    except OverflowError:  # an int too large for a float
        pass
    raise IntegrityError(f"stored record is malformed: time {str(v)[:40]} is not a finite "
                         "number")
