"""Responses of the call layer: a cached value rebuilt as the client's type, and the
``_hidden_params`` every response carries (``cache_hit``, ``cache``, ``cache_key``,
``response_cost``, ...). Split from ``semcache._calls`` to keep that module's size in
check; the names stay private to the call layer."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._litellm import itemize
from ._streams import build

if TYPE_CHECKING:
    from . import _Prepared

__all__ = ["HiddenStr", "cost_of", "hidden_params", "hide_params", "rebuild_hit"]

log = logging.getLogger("semcache")


#: the stored ``kind`` names a response may be rebuilt as (an allowlist: a stored value
#: never chooses an arbitrary class to import)
_KINDS = {
    "openai.types.chat.chat_completion.ChatCompletion": ("openai.types.chat", "ChatCompletion"),
    "openai.types.completion.Completion": ("openai.types", "Completion"),
    "openai.types.create_embedding_response.CreateEmbeddingResponse":
        ("openai.types", "CreateEmbeddingResponse"),
    "openai.types.audio.transcription.Transcription": ("openai.types.audio", "Transcription"),
    "openai.types.audio.transcription_verbose.TranscriptionVerbose":
        ("openai.types.audio", "TranscriptionVerbose"),
    "openai.types.responses.response.Response": ("openai.types.responses", "Response"),
}
_DEFAULT_KIND = {
    "chat": "openai.types.chat.chat_completion.ChatCompletion",
    "text": "openai.types.completion.Completion",
    "embedding": "openai.types.create_embedding_response.CreateEmbeddingResponse",
    "transcription": "openai.types.audio.transcription.Transcription",
    "responses": "openai.types.responses.response.Response",
}


_ESSENTIAL = {"chat": "choices", "text": "choices", "embedding": "data",
              "transcription": "text", "responses": "output"}
_ESSENTIAL_TYPE = {"chat": list, "text": list, "embedding": list, "transcription": str,
                   "responses": list}


class HiddenStr(str):
    """A ``str`` response (transcription ``response_format="text"``) that can carry
    ``_hidden_params`` like the model responses do."""

    _hidden_params: dict[str, Any]


def rebuild_hit(kind: str, hit: Any) -> Any:
    """The cached value as the client's response type, or None if it cannot be one."""
    value = hit.value
    if hasattr(value, "model_dump"):  # what an overridden get_cache returned as is
        value = value.model_dump(mode="json")
    if isinstance(value, str) and kind == "transcription":
        return HiddenStr(value)
    if not isinstance(value, dict) or not isinstance(value.get(_ESSENTIAL[kind]),
                                                      _ESSENTIAL_TYPE[kind]) \
            or (kind in ("chat", "text") and not _choices_ok(kind, value["choices"])):
        log.warning("semcache: cached value for %s is not a %s response; calling upstream",
                    hit.key, kind)
        return None
    name = hit.kind if hit.kind in _KINDS else _DEFAULT_KIND[kind]
    module, cls = _KINDS[name]
    try:
        return build(getattr(importlib.import_module(module), cls), value)
    except Exception as exc:  # noqa: BLE001 - e.g. an entry add_cache wrote in another shape
        log.warning("semcache: cached value for %s is not a %s (%s); calling upstream",
                    hit.key, cls, exc)
        return None


def _choices_ok(kind: str, choices: list[Any]) -> bool:
    """Whether stored choices have the shape a completion's have: a ``choices: [1]``
    that another writer stored must not be served as a hit that breaks its reader."""
    for c in choices:
        if not isinstance(c, dict):
            return False
        if kind == "chat":
            m = c.get("message")
            if not isinstance(m, dict) or not isinstance(m.get("content"), (str, type(None))):
                return False
        elif not isinstance(c.get("text"), (str, type(None))):
            return False
    return True


def hide_params(response: Any, hidden: dict[str, Any]) -> Any:
    if isinstance(response, str) and not isinstance(response, HiddenStr):
        response = HiddenStr(response)
    itemize(response)  # r["choices"][0]["message"], as LiteLLM's responses allow
    try:
        object.__setattr__(response, "_hidden_params", hidden)
    except (AttributeError, TypeError):  # a type without a __dict__: nothing to attach to
        pass
    return response


def cost_of(call: _Prepared, usage: Any) -> float | None:
    """``response_cost`` when the caller priced the model (LiteLLM's per-token params)."""
    pin = call.user_kwargs.get("input_cost_per_token")
    pout = call.user_kwargs.get("output_cost_per_token")
    if usage is None or (pin is None and pout is None):
        return None
    prompt = getattr(usage, "prompt_tokens", None) or getattr(usage, "input_tokens", 0) or 0
    completion = (getattr(usage, "completion_tokens", None)
                  or getattr(usage, "output_tokens", 0) or 0)
    return prompt * (pin or 0.0) + completion * (pout or 0.0)


def hidden_params(call: _Prepared, hit: bool, meta: Any, response: Any) -> dict[str, Any]:
    return {
        "cache_hit": hit,
        "cache": meta,
        # LiteLLM's name for the entry's key (on a semantic hit: the served entry's)
        "cache_key": meta.get("key") if isinstance(meta, dict) else None,
        "response_cost": 0.0 if hit else cost_of(call, getattr(response, "usage", None)),
        "model": call.key_kwargs.get("model"),
        "api_base": call.endpoint.base_url,
        "call_type": call.call_type,
    }
