"""Canonical requests, exact keys and context keys.

Both keys hash a *versioned JSON array* (never a concatenation of strings: see
STYLE.md on RedisVL's ``hashify``), serialised with sorted keys, so neither the order
the caller passed arguments in nor the key order inside message dicts changes a key,
and no two different requests can produce the same bytes.

- exact key   ``<namespace>:sha256(["semcache.exact", V, call_type, params])``
- context key ``sha256(["semcache.context", V, namespace, call_type, params with the
  query text blanked])``: everything that must match exactly for a semantically similar
  query to reuse an answer (model or caching group, output-shaping parameters, system
  prompt, earlier turns, tools, non-text parts).

Transport parameters (api_key, timeout, metadata, retries, ...) are left out: they do
not change the answer. The endpoint (api_base) and mock_response are in: they decide
where the answer comes from (see CLIENT_SIDE_PARAMS).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ._errors import InvalidRequestError

__all__ = [
    "CLIENT_SIDE_PARAMS",
    "CONTENT_PARAMS",
    "ENDPOINT_PARAMS",
    "KEY_VERSION",
    "RESERVED_MARK",
    "TRANSPORT_PARAMS",
    "KeyParams",
    "custom_key",
    "QueryMode",
    "SemanticSplit",
    "canonical_params",
    "check_call_type",
    "infer_call_type",
    "exact_key",
    "is_entry_key",
    "semantic_split",
    "validate_namespace",
]

KEY_VERSION = 1

#: in the keys semcache writes for itself inside a namespace ("<ns>:__semcache_policy_
#: state__", "<key>:__semcache_flight__", "<ns>:__semcache_ping__"); a cache_key may not
#: contain it, or a caller could read, overwrite or plant them
RESERVED_MARK = "__semcache_"

#: parameters that never change the answer, so never change the key
TRANSPORT_PARAMS = frozenset(
    {
        "api_key", "api_version", "organization", "project",
        "timeout", "request_timeout", "stream_timeout", "max_retries", "num_retries",
        "metadata", "extra_headers", "headers", "default_headers", "http_client",
        "litellm_call_id", "litellm_logging_obj", "logger_fn", "callbacks",
        "proxy_server_request", "stream_options", "client",
        "caching", "cache", "cache_key", "caching_group", "no_log", "user_api_key",
        "input_cost_per_token", "output_cost_per_token", "model_list",
        # a top-level ttl= is a cache control in LiteLLM (how long to keep the answer),
        # not part of the question; litellm_params and preset_cache_key are its plumbing
        "ttl", "litellm_params", "preset_cache_key",
    }
)

#: keyed, since they decide where the answer comes from (LiteLLM keys neither), but a
#: proxy client may not send them: the proxy strips them before keying or forwarding.
#: ``mock_response`` is the answer itself: unkeyed, a test's canned answer was filed
#: under the real request's key and served to every real caller of a shared cache.
#: The endpoint (``api_base``/``base_url``, one value, trailing "/" dropped) is which
#: server answers: "llama3" on two vLLM hosts, or "gpt-4o" on OpenAI and on a local
#: alias, are different models under one name. A ``caching_group`` declares its
#: deployments equivalent, so a grouped request leaves the endpoint out; so does
#: ``key_exclude=["api_base"]``.
ENDPOINT_PARAMS = frozenset({"api_base", "base_url"})
CLIENT_SIDE_PARAMS = frozenset({"mock_response"}) | ENDPOINT_PARAMS

#: the request's content: never filtered out of a key by key_include / key_exclude
CONTENT_PARAMS = frozenset({"model", "messages", "prompt", "input", "file", "caching_group"})

QueryMode = Literal["last_user", "all_user", "conversation"]
QUERY_MODES: tuple[str, ...] = ("last_user", "all_user", "conversation")

#: call types whose query text can be embedded (the others are exact-only)
SEMANTIC_CALL_TYPES = frozenset(
    {"completion", "acompletion", "text_completion", "atext_completion"}
)

#: fullmatch, never match + "$": "$" also matches before a trailing "\n"
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.@/+=-]{1,200}")
_OPTS = orjson.OPT_SORT_KEYS
_QUERY = {"$query": KEY_VERSION}  # what replaces the query text in the context value
_ENDPOINT = "$endpoint"  # api_base or base_url, in the canonical request
#: the turns query_mode "conversation" embeds; every other message is context
_DIALOGUE_ROLES = ("user", "assistant")


def validate_namespace(namespace: object, parameter: str = "namespace") -> str:
    from ._errors import ConfigError

    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise ConfigError(
            f"{parameter} must be 1-200 characters of letters, digits and _.@/+=- "
            f"(no ':' or glob characters, which would blur namespace boundaries); "
            f"got {namespace!r}",
            parameter=parameter,
        )
    return namespace


def is_entry_key(key: object) -> bool:
    """Whether ``key`` has the shape of every entry's key: ``"<namespace>:<rest>"``."""
    if not isinstance(key, str):
        return False
    ns, sep, rest = key.partition(":")
    return bool(sep and rest) and _NAMESPACE_RE.fullmatch(ns) is not None


def check_call_type(call_type: Any) -> str | None:
    """A request's ``call_type``: a str ("" or None: infer it from the request), never a
    list or a number, which failed deep in the pipeline (an AttributeError, an
    unhashable TypeError) or, falsy, was silently taken as "infer". An unknown *str* is
    kept: a call semcache does not cache ("speech") passes through uncached, as in
    LiteLLM."""
    if call_type is not None and not isinstance(call_type, str):
        raise InvalidRequestError(f"call_type must be a call type name (a str such as "
                                  f"'completion') or None, got {call_type!r:.80}")
    return call_type


def infer_call_type(kwargs: Mapping[str, Any]) -> str:
    if "messages" in kwargs:
        return "completion"
    if "prompt" in kwargs:
        return "text_completion"
    if "input" in kwargs:
        return "embedding"
    if "file" in kwargs:
        return "transcription"
    if custom_key(kwargs) is not None:
        # LiteLLM's cache.add_cache(cache_key=..., result=...): a custom key names the
        # entry on its own, so the call type does not shape the key
        return "completion"
    raise InvalidRequestError(
        "cannot tell the call type: pass messages=, prompt=, input= or file= "
        "(or call_type=)")


def base_call_type(call_type: str) -> str:
    """``acompletion`` and ``completion`` share entries: the answer is the same."""
    if call_type.startswith("a") and call_type[1:] in _SYNC_TYPES:
        return call_type[1:]
    return call_type


_SYNC_TYPES = frozenset(
    {"completion", "text_completion", "embedding", "transcription", "rerank", "speech",
     "image_generation", "responses", "moderation"}
)


def _default(obj: Any) -> Any:
    """orjson hook for values that are not plain JSON."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):  # pydantic / openai objects
        return dump(mode="json", exclude_none=True)
    if isinstance(obj, type) and hasattr(obj, "model_json_schema"):  # response_format=Model
        return {"$schema": obj.model_json_schema()}
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$bytes-sha256": hashlib.sha256(bytes(obj)).hexdigest()}
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return sorted(obj, key=repr)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _num(name: str, v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            raise InvalidRequestError(f"parameter {name!r} is {v!r}: not a finite number")
        if v.is_integer() and abs(v) < 2**53:
            return int(v)  # temperature=1 and temperature=1.0 are one request
    return v


def _dumps(value: Any, what: str) -> bytes:
    try:
        out = orjson.dumps(value, default=_default, option=_OPTS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequestError(f"cannot build a cache key from this {what}: {exc}") from exc
    if b"null" in out:
        # orjson writes NaN/Infinity as null, which would collide with None; the
        # stdlib refuses them, so check the rare payloads that contain a null.
        try:
            json.dumps(value, default=_default, allow_nan=False)
        except ValueError as exc:
            raise InvalidRequestError(f"{what} contains NaN or Infinity: {exc}") from exc
    return out


def canonical_params(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request's answer-shaping parameters, transport ones dropped, numbers normalised."""
    out: dict[str, Any] = {}
    grouped = kwargs.get("caching_group") is not None
    for name, v in kwargs.items():
        if name in TRANSPORT_PARAMS or v is None:
            # None means "not given" in every OpenAI-style signature
            continue
        if not isinstance(name, str):
            raise InvalidRequestError(f"parameter names must be str, got {name!r}")
        if name in ENDPOINT_PARAMS:
            if not grouped:
                out[_ENDPOINT] = str(v).rstrip("/")
            continue
        if isinstance(v, float):
            v = _num(name, v)
        elif isinstance(v, BaseException) and name == "mock_response":
            v = {"$mock-error": f"{type(v).__qualname__}: {v}"}  # raised, never stored
        out[name] = v
    return out


def model_scope(kwargs: Mapping[str, Any]) -> Any:
    """The caching group wins over the model: models in one group share entries."""
    return kwargs.get("caching_group") or kwargs.get("model")


def custom_key(kwargs: Mapping[str, Any]) -> Any:
    """The caller's own key: ``cache_key=``, else ``metadata={"cache_key": ...}`` (the
    form LiteLLM's docs show for custom keys), else None."""
    custom = kwargs.get("cache_key")
    if custom is None:
        meta = kwargs.get("metadata")
        if isinstance(meta, Mapping):
            custom = meta.get("cache_key")
    return custom


class KeyParams:
    """Which request parameters make up the keys (``Cache(key_include=...,
    key_exclude=...)``); both stages key on the same filtered request.

    ``key_exclude``: these parameters never change a key (``["user"]``: one entry for
    every end user). ``key_include``: only these output-shaping parameters do; the
    request's content (model, messages, prompt, input, file) always does, and transport
    parameters never do. With neither, every output-shaping parameter counts (the
    default). Filtering is one dict comprehension per request, and none when unset."""

    __slots__ = ("exclude", "include")

    def __init__(self, include: Any = None, exclude: Any = None) -> None:
        from ._errors import ConfigError

        def names(value: Any, parameter: str) -> frozenset[str] | None:
            if value is None:
                return None
            # a non-iterable (5, True) was a raw TypeError; a generator was used up by
            # the check and left an empty set behind: read it once, then check
            items = None if isinstance(value, (str, bytes, Mapping)) or \
                not isinstance(value, Iterable) else tuple(value)
            if items is None or not all(isinstance(v, str) for v in items):
                raise ConfigError(f"{parameter} must be a list of parameter names, got "
                                  f"{value!r:.80}", parameter=parameter)
            out = frozenset(items)
            bad = sorted(out & CONTENT_PARAMS) if parameter == "key_exclude" else []
            if bad:
                raise ConfigError(f"key_exclude cannot leave out {bad[0]!r}: it is the "
                                  "request's content", parameter=parameter)
            return out

        self.include = names(include, "key_include")
        self.exclude = names(exclude, "key_exclude")

    def __bool__(self) -> bool:
        return self.include is not None or bool(self.exclude)

    def keeps(self, name: str) -> bool:
        if self.exclude and (name in self.exclude or (
                name in ENDPOINT_PARAMS and not self.exclude.isdisjoint(ENDPOINT_PARAMS))):
            return False  # api_base and base_url are one parameter: the endpoint
        return (self.include is None or name in self.include or name in CONTENT_PARAMS
                or name in TRANSPORT_PARAMS or name in CLIENT_SIDE_PARAMS)

    def filter(self, kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
        if not self:
            return kwargs
        return {k: v for k, v in kwargs.items() if self.keeps(k)}

    def __repr__(self) -> str:
        return f"KeyParams(include={self.include}, exclude={self.exclude})"


def exact_key(namespace: str, call_type: str, kwargs: Mapping[str, Any]) -> str:
    custom = custom_key(kwargs)
    if custom is not None:
        if not isinstance(custom, str) or not custom:
            raise InvalidRequestError("cache_key must be a non-empty str")
        if RESERVED_MARK in custom:
            raise InvalidRequestError(
                f"cache_key may not contain {RESERVED_MARK!r}: keys with it are semcache's "
                "own (learned policy state, single-flight locks, health probes)")
        # a key get_cache_key returned is already namespaced: LiteLLM's
        # add_cache(result, cache_key=cache.get_cache_key(**request)) must name the
        # request's own entry, not a second one under "ns:ns:..."
        return custom if custom.startswith(namespace + ":") else f"{namespace}:{custom}"
    params = canonical_params(kwargs)
    params["model"] = model_scope(kwargs)
    payload = _dumps(["semcache.exact", KEY_VERSION, base_call_type(call_type), params],
                     "request")
    return f"{namespace}:{hashlib.sha256(payload).hexdigest()}"


@dataclass(frozen=True, slots=True)
class SemanticSplit:
    query: str  #: the text to embed
    context: str  #: context key (hex digest)


def _text_of(content: Any) -> tuple[str, Any]:
    """(text, the content with its text parts replaced by the query marker)."""
    if isinstance(content, str):
        return content, _QUERY
    if isinstance(content, list):
        texts: list[str] = []
        rest: list[Any] = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                rest.append(part)  # images, audio, files: hashed into the context
        return "\n".join(texts), [_QUERY, *rest]
    return "", content


def semantic_split(
    namespace: str,
    call_type: str,
    kwargs: Mapping[str, Any],
    mode: QueryMode = "last_user",
) -> SemanticSplit | None:
    """Query text and context key, or None when the request has no embeddable text."""
    ct = base_call_type(call_type)
    if ct not in SEMANTIC_CALL_TYPES:
        return None
    params = canonical_params(kwargs)
    params["model"] = model_scope(kwargs)
    if ct == "text_completion":
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return None  # batched or token prompts: exact stage only
        query = prompt
        params["prompt"] = _QUERY
    else:
        messages = params.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        msgs = [_as_dict(m) for m in messages]
        if mode == "last_user":
            idx = [max((i for i, m in enumerate(msgs) if m.get("role") == "user"), default=-1)]
            if idx[0] < 0:
                return None
        elif mode == "all_user":
            idx = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        elif mode == "conversation":
            # the dialogue only: system/developer instructions and tool results are
            # data that must match exactly ("Answer in French" and "... German", or
            # "20C, sunny" and "25C, rain", embed close together), so they stay context
            idx = [i for i, m in enumerate(msgs) if m.get("role") in _DIALOGUE_ROLES]
        else:
            raise InvalidRequestError(f"semantic_query must be one of {QUERY_MODES}, got {mode!r}")
        texts = []
        for i in idx:
            text, blanked = _text_of(msgs[i].get("content"))
            if mode == "conversation":
                text = f"{msgs[i].get('role')}: {text}"
            texts.append(text)
            msgs[i] = {**msgs[i], "content": blanked}
        query = "\n".join(texts)
        if not query.strip():
            return None
        params["messages"] = msgs
    payload = _dumps(
        ["semcache.context", KEY_VERSION, namespace, ct, mode, params], "request context"
    )
    return SemanticSplit(query=query, context=hashlib.sha256(payload).hexdigest())


def _as_dict(m: Any) -> dict[str, Any]:
    if isinstance(m, Mapping):
        return dict(m)
    dump = getattr(m, "model_dump", None)
    if callable(dump):
        out: dict[str, Any] = dump(mode="json", exclude_none=True)
        return out
    raise InvalidRequestError(f"messages must be dicts, got {type(m).__name__}")
