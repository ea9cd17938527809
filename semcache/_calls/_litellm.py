"""What the call layer does the way LiteLLM does it, so LiteLLM code runs unchanged.

- **Item access on responses.** LiteLLM's ``ModelResponse`` allows
  ``r["choices"][0]["message"]["content"]`` as well as attributes. Responses stay the
  ``openai`` client's types: each model object in a response is moved to a subclass of
  its own type (made once per type) that adds ``__getitem__``, ``get`` and
  ``__contains__``, so ``isinstance(r, ChatCompletion)`` still holds. Lists of numbers
  (embedding vectors) are never walked.
- **Callbacks.** A success or failure callback that takes one positional argument gets
  semcache's payload dict; one that takes more (or ``*args``) gets LiteLLM's
  ``(kwargs, completion_response, start_time, end_time)``, with ``kwargs["cache_hit"]``.
- **mock_response.** Answered locally, never sent upstream: a string is the answer's
  text, an exception is raised, a dict is the response itself (LiteLLM's ``mock_completion``).
- **Overridden cache methods.** A ``get_cache``, ``add_cache``, ``async_get_cache`` or
  ``async_add_cache`` replaced on a ``Cache`` (instance attribute or subclass, as
  LiteLLM's docs show for custom caches) is what ``completion()`` calls.
"""

from __future__ import annotations

import datetime as _dt
import functools
import inspect
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ForwardRef, Literal, get_args, get_origin

from .._checks import finite_number
from .._errors import InvalidRequestError

__all__ = ["ItemAccess", "abegin", "afinish", "begin", "callback_args", "finish", "itemize",
           "mock_result", "overridden", "wants_litellm_args"]


class ItemAccess:
    """``obj["name"]`` is ``obj.name`` (LiteLLM's responses allow both)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"response fields are named by str, not {type(key).__name__}")
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and getattr(self, key, None) is not None

    def __eq__(self, other: object) -> bool:
        # pydantic compares exact types; an item-access copy of a type equals a plain
        # instance of it with the same fields (a cached answer equals the fresh one)
        mine, theirs = type(self), type(other)
        if theirs is not mine and _PLAIN.get(mine, mine) is _PLAIN.get(theirs, theirs):
            fields = getattr(mine, "model_fields", {})
            return all(getattr(self, f) == getattr(other, f) for f in fields) and \
                getattr(self, "__pydantic_extra__", None) == \
                getattr(other, "__pydantic_extra__", None)
        eq = super().__eq__(other)
        # pydantic's NotImplemented for a non-model was truthy: r == None was True
        return eq if eq is NotImplemented else bool(eq)

    __hash__ = None  # type: ignore[assignment]  # as pydantic models: mutable, unhashable


_SUBCLASSES: dict[type, type] = {}
_PLAIN: dict[type, type] = {}  #: item-access subclass -> the openai type it extends


def _item_class(cls: type) -> type:
    sub = _SUBCLASSES.get(cls)
    if sub is None:
        # same name and module: repr and error messages read as the openai type's
        sub = _SUBCLASSES[cls] = type(cls.__name__, (ItemAccess, cls),
                                      {"__module__": cls.__module__,
                                       "__qualname__": cls.__qualname__})
        _PLAIN[sub] = cls
    return sub


_PLANS: dict[type, tuple[str, ...]] = {}  #: per model type: the fields that can hold models


def _can_hold_model(tp: Any) -> bool:
    from pydantic import BaseModel

    if isinstance(tp, type):
        return issubclass(tp, BaseModel)
    if get_origin(tp) is Literal:
        return False
    args = get_args(tp)
    if not args:  # a forward reference (a str or ForwardRef) may name a model: look
        return isinstance(tp, (str, ForwardRef))
    return any(_can_hold_model(a) for a in args)


def _plan(cls: type) -> tuple[str, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        fields = getattr(cls, "model_fields", {})
        plan = _PLANS[cls] = tuple(n for n, f in fields.items() if _can_hold_model(f.annotation))
    return plan


def itemize(obj: Any) -> Any:
    """``obj`` and every model object inside it, given item access in place. Only the
    fields whose type can hold a model are visited (per type, worked out once), so an
    embedding's list of floats or a message's text is never walked."""
    from pydantic import BaseModel

    if isinstance(obj, BaseModel):
        cls = type(obj)
        if not isinstance(obj, ItemAccess):
            # a subclass with no new fields or slots: the instance layout is the same
            object.__setattr__(obj, "__class__", _item_class(cls))
        else:
            cls = _PLAIN.get(cls, cls)
        values = obj.__dict__
        for name in _plan(cls):
            value = values.get(name)
            if isinstance(value, BaseModel):
                itemize(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, BaseModel):
                        itemize(item)
        extra = obj.__pydantic_extra__
        if extra:
            for value in extra.values():
                if isinstance(value, (BaseModel, list)):
                    itemize(value)
    elif isinstance(obj, list) and obj and isinstance(obj[0], (BaseModel, list)):
        # lists are homogeneous in the openai types: a list of floats is skipped whole
        for item in obj:
            itemize(item)
    return obj


# ---------------------------------------------------------------------- callbacks
@functools.lru_cache(maxsize=512)
def _wants_litellm_args(fn: Any) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: the dict form
        return False
    positional = 0
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def wants_litellm_args(fn: Any) -> bool:
    """True for LiteLLM's ``(kwargs, response, start_time, end_time)`` form."""
    try:
        return _wants_litellm_args(fn)
    except TypeError:  # unhashable callable: not cached
        return _wants_litellm_args.__wrapped__(fn)


def callback_args(payload: dict[str, Any]) -> tuple[Any, ...]:
    """LiteLLM's four arguments from semcache's payload."""
    kwargs = {**payload["kwargs"], "model": payload.get("model"),
              "call_type": payload.get("call_type"), "cache_hit": payload.get("cache_hit"),
              "cache": payload.get("cache"), "response_cost": payload.get("response_cost"),
              "stream": payload.get("stream")}
    if "exception" in payload:
        kwargs["exception"] = payload["exception"]
    return (kwargs, payload.get("response"),
            _dt.datetime.fromtimestamp(payload["start_time"]),
            _dt.datetime.fromtimestamp(payload["end_time"]))


# ---------------------------------------------------------------------- mock_response
_MOCK_USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}


def mock_result(kind: str, model: Any, mock: Any, n_inputs: int = 1) -> Any:
    """The response LiteLLM's ``mock_response`` would give, built without any I/O."""
    if isinstance(mock, BaseException):
        raise mock
    if hasattr(mock, "model_dump"):
        mock = mock.model_dump(mode="json")
    created = int(time.time())
    if kind == "chat":
        from openai.types.chat import ChatCompletion as cls

        data = mock if isinstance(mock, dict) else {
            "id": f"chatcmpl-mock-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": created, "model": str(model),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": str(mock)}}],
            "usage": _MOCK_USAGE}
    elif kind == "text":
        from openai.types import Completion as cls  # type: ignore[assignment]

        data = mock if isinstance(mock, dict) else {
            "id": f"cmpl-mock-{uuid.uuid4().hex}", "object": "text_completion",
            "created": created, "model": str(model),
            "choices": [{"index": 0, "finish_reason": "stop", "text": str(mock)}],
            "usage": _MOCK_USAGE}
    elif kind == "embedding":
        from openai.types import CreateEmbeddingResponse as cls  # type: ignore[assignment]

        vector = _mock_vector(mock)
        data = mock if isinstance(mock, dict) else {
            "object": "list", "model": str(model),
            "data": [{"object": "embedding", "index": i, "embedding": list(vector)}
                     for i in range(n_inputs)],
            "usage": {"prompt_tokens": 10 * n_inputs, "total_tokens": 10 * n_inputs}}
    else:
        from openai.types.audio import Transcription as cls  # type: ignore[assignment]

        data = mock if isinstance(mock, dict) else {"text": str(mock)}
    import pydantic

    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as exc:  # a dict that is not a whole response
        raise InvalidRequestError(f"mock_response: a dict must be a whole {cls.__name__} "
                                  f"response, as the API returns it: {exc}") from exc


def _mock_vector(mock: Any) -> list[float]:
    """An embedding mock: a list of numbers, or LiteLLM's "0.1,0.2,..." string; else a
    fixed small vector."""
    if isinstance(mock, list):
        if not all(finite_number(x) for x in mock):
            # float("a") or float(None) was a raw ValueError or TypeError, and True
            # read as 1.0
            raise InvalidRequestError(f"mock_response: an embedding mock must be a list "
                                      f"of finite numbers, got {mock!r:.80}")
        return [float(x) for x in mock]
    if isinstance(mock, str):
        try:
            return [float(x) for x in mock.split(",")]
        except ValueError:
            pass
    return [0.0] * 8


# ---------------------------------------------------------------------- overrides
def overridden(cache: Any, name: str) -> bool:
    """Whether ``cache.<name>`` was replaced on the instance or a subclass."""
    if name in vars(cache):
        return True
    from .._cache import Cache

    return getattr(type(cache), name, None) is not getattr(Cache, name)


@dataclass(slots=True)
class _Custom:
    """The outcome of a lookup by an overridden ``get_cache`` (LiteLLM's custom cache),
    read like a ``Pending``: ``entry``, ``hit``, ``metadata``, ``reads``, ``writes``."""

    entry: Any
    metadata: dict[str, Any]
    kwargs: Mapping[str, Any]
    #: whether the request's controls let it be stored (no ``no-store``, ``ttl=0``,
    #: ``caching=False``, ...): the custom add_cache knows nothing of them
    may_store: bool = True
    #: the single flight needs the pipeline's key and controls, which a custom get_cache
    #: does not give: it is not joined
    reads: bool = False
    writes: bool = False

    @property
    def hit(self) -> bool:
        return self.entry is not None


def _permits(cache: Any, call_type: str, kwargs: Mapping[str, Any]) -> tuple[bool, bool]:
    """(may read, may store) by the request's controls, as the pipeline decides them:
    LiteLLM calls a custom get_cache only when the request may read and its add_cache
    only when it may store. A bad control is refused here, as on every other path."""
    request = getattr(cache, "_request", None)
    if request is None:  # not a semcache Cache: nothing to decide with
        return True, True
    req = request(call_type or None, kwargs)
    return req.read, req.write


def _custom_outcome(value: Any, kwargs: Mapping[str, Any], may_store: bool) -> _Custom:
    from .._cache import CacheHit

    meta = {"cache_hit": value is not None, "stage": "exact" if value is not None
            else "miss", "key": None, "custom": True}
    return _Custom(None if value is None else CacheHit(value, None, meta), meta, kwargs,
                   may_store)


def begin(cache: Any, call_type: str, kwargs: Mapping[str, Any]) -> Any:
    if overridden(cache, "get_cache"):
        read, write = _permits(cache, call_type, kwargs)
        return _custom_outcome(cache.get_cache(**kwargs) if read else None, kwargs, write)
    return cache.begin(call_type, **kwargs)


async def abegin(cache: Any, call_type: str, kwargs: Mapping[str, Any]) -> Any:
    if overridden(cache, "async_get_cache"):
        read, write = _permits(cache, call_type, kwargs)
        return _custom_outcome(await cache.async_get_cache(**kwargs) if read else None,
                               kwargs, write)
    if overridden(cache, "get_cache"):
        read, write = _permits(cache, call_type, kwargs)
        return _custom_outcome(cache.get_cache(**kwargs) if read else None, kwargs, write)
    return await cache.abegin(call_type, **kwargs)


def _store_kwargs(outcome: Any) -> dict[str, Any]:
    if isinstance(outcome, _Custom):
        return dict(outcome.kwargs)
    return {**outcome.request, "call_type": outcome.call_type}


def _may_store(outcome: Any) -> bool:
    return bool(outcome.may_store if isinstance(outcome, _Custom) else outcome.writes)


def finish(cache: Any, outcome: Any, value: Any) -> None:
    if isinstance(outcome, _Custom) or overridden(cache, "add_cache"):
        if _may_store(outcome):
            cache.add_cache(value, **_store_kwargs(outcome))
    else:
        outcome.store(value)


async def afinish(cache: Any, outcome: Any, value: Any) -> None:
    if overridden(cache, "async_add_cache"):
        if _may_store(outcome):
            await cache.async_add_cache(value, **_store_kwargs(outcome))
    elif isinstance(outcome, _Custom) or overridden(cache, "add_cache"):
        if _may_store(outcome):
            cache.add_cache(value, **_store_kwargs(outcome))
    else:
        await outcome.astore(value)
