"""Where a call goes: the endpoint, the parameters sent upstream, one client per endpoint.

``openai`` is imported here lazily, on the first call, never when ``semcache`` is
imported (``import semcache`` stays fast for users who only use the ``Cache``).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from .._checks import finite_number
from .._errors import InvalidRequestError

__all__ = [
    "LOCAL_PARAMS",
    "POOL",
    "ClientPool",
    "Endpoint",
    "check_retries",
    "check_timeout",
    "resolve_endpoint",
    "strip_provider",
    "upstream_params",
]

#: LiteLLM provider prefixes of OpenAI-compatible endpoints: ``openai/gpt-4o`` is
#: ``gpt-4o`` at the given (or default) base URL
PROVIDER_PREFIXES = frozenset({
    "openai", "text-completion-openai", "custom_openai", "openai_like", "hosted_vllm",
    "vllm", "ollama", "ollama_chat", "lm_studio", "litellm_proxy", "llamafile",
})

#: parameters semcache (or the client constructor) consumes: never sent in the body
LOCAL_PARAMS = frozenset({
    "cache", "caching", "cache_key", "caching_group", "metadata", "input_cost_per_token",
    "output_cost_per_token", "custom_llm_provider", "num_retries", "max_retries",
    "api_key", "api_base", "base_url", "timeout", "request_timeout", "organization",
    "headers", "extra_headers",
    # LiteLLM's: a cache control and a local test answer, never the provider's business
    "ttl", "mock_response",
})

#: each kind's ``create`` on a client (``OpenAI`` or ``AsyncOpenAI``: the same paths),
#: written out rather than as dotted strings resolved by getattr, so that a reader and
#: an IDE can follow a call to the client method it makes (issue #19)
_CREATE: dict[str, Callable[[Any], Callable[..., Any]]] = {
    "chat": lambda client: client.chat.completions.create,
    "text": lambda client: client.completions.create,
    "embedding": lambda client: client.embeddings.create,
    "transcription": lambda client: client.audio.transcriptions.create,
    "responses": lambda client: client.responses.create,
}


def strip_provider(model: Any) -> Any:
    if isinstance(model, str) and "/" in model:
        prefix, rest = model.split("/", 1)
        if prefix in PROVIDER_PREFIXES and rest:
            return rest
    return model


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What identifies a client: calls with equal endpoints share one."""

    base_url: str | None
    api_key: str | None
    #: seconds, or an ``httpx.Timeout``'s (connect, read, write, pool): hashable, as a
    #: client's key must be (an ``httpx.Timeout`` is not)
    timeout: float | tuple[float | None, ...] | None
    max_retries: int | None
    organization: str | None

    def __repr__(self) -> str:  # never print the key
        return (f"Endpoint(base_url={self.base_url!r}, timeout={self.timeout}, "
                f"max_retries={self.max_retries})")


def resolve_endpoint(kwargs: Mapping[str, Any]) -> Endpoint:
    for name in ("api_base", "base_url", "api_key", "organization"):
        v = kwargs.get(name)
        if v is not None and not isinstance(v, str):  # 5 reached the HTTP client as a URL
            raise InvalidRequestError(f"{name} must be a str or None, got {v!r:.80}")
    base = (kwargs.get("api_base") or kwargs.get("base_url") or os.environ.get("OPENAI_BASE_URL")
            or os.environ.get("OPENAI_API_BASE") or None)
    key = kwargs.get("api_key") or os.environ.get("OPENAI_API_KEY")
    if key is None and base is not None:
        # vLLM, Ollama and most local servers need no key, but the client insists on one
        key = "sk-no-key-required"
    t_name = "timeout" if "timeout" in kwargs else "request_timeout"
    r_name = "max_retries" if "max_retries" in kwargs else "num_retries"
    return Endpoint(str(base).rstrip("/") if base else None, key,
                    check_timeout(kwargs.get(t_name), t_name),
                    check_retries(kwargs.get(r_name), r_name), kwargs.get("organization"))


def check_timeout(value: Any, name: str = "timeout") -> float | tuple[float | None, ...] | None:
    """A call's ``timeout`` as LiteLLM takes it: seconds (a number, or a str of one, as
    an environment variable gives it), an ``httpx.Timeout``, or None (the client's
    default). Anything else was a raw ValueError or TypeError from ``float()`` or the
    HTTP client: NaN, 0 and negatives included (LiteLLM reads 0 as its default; here
    it is refused, not silently changed)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if finite_number(value) and value > 0:
            return float(value)
    elif not isinstance(value, str):
        # LiteLLM's httpx.Timeout, or the client's own (openai.Timeout, from the HTTP
        # library openai is built on, which need not be httpx): imported only here
        import httpx
        import openai

        if isinstance(value, (httpx.Timeout, openai.Timeout)):
            d = value.as_dict()
            parts = (d["connect"], d["read"], d["write"], d["pool"])
            if all(p is None or (finite_number(p) and p > 0) for p in parts):
                return parts
    raise InvalidRequestError(f"{name} must be a positive number of seconds, an "
                              f"httpx.Timeout or None, got {value!r:.80}")


def check_retries(value: Any, name: str = "max_retries") -> int | None:
    """``max_retries`` / ``num_retries``: an int >= 0 (or a str of one), or None. A float
    was truncated (1.5 retried once), a negative one silently retried nothing, and
    anything else was a raw ValueError from ``int()``."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidRequestError(f"{name} must be an int >= 0 or None, got {value!r:.80}")


def _client_kwargs(ep: Endpoint) -> dict[str, Any]:
    kw: dict[str, Any] = {"api_key": ep.api_key, "base_url": ep.base_url,
                          "organization": ep.organization}
    if isinstance(ep.timeout, tuple):
        import openai  # its Timeout is its HTTP library's: the one its clients take

        connect, read, write, pool = ep.timeout
        kw["timeout"] = openai.Timeout(connect=connect, read=read, write=write, pool=pool)
    elif ep.timeout is not None:
        kw["timeout"] = ep.timeout
    if ep.max_retries is not None:
        kw["max_retries"] = ep.max_retries
    return kw


@dataclass(slots=True, eq=False)
class _LoopClients:
    clients: dict[Endpoint, Any]
    closer: Any = None  #: the async generator whose finalisation closes the clients


#: client dictionaries a forked child inherited (see ClientPool._own_clients)
_INHERITED: list[Any] = []


class ClientPool:
    """One ``openai.OpenAI`` per endpoint, and one ``AsyncOpenAI`` per endpoint *and event
    loop*: an async HTTP connection belongs to the loop that opened it, so sharing one
    across loops (one ``asyncio.run`` after another) would reuse dead connections.

    A loop's clients are closed when the loop shuts down: ``asyncio.run`` (like every
    well-behaved runner) finalises the loop's async generators before closing it, and
    one such generator per loop closes its clients then. Without that, every
    ``asyncio.run(acompletion(...))`` would leave a client and its sockets behind.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sync: dict[Endpoint, Any] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] \
            = weakref.WeakKeyDictionary()
        self._pid = os.getpid()

    def _own_clients(self) -> None:
        """Clients made before a fork share their pooled connections with the parent:
        two processes reading one socket could each get the other's reply (issue #26).
        A forked child starts an empty pool; the inherited clients are kept, unclosed,
        since closing them would shut connections the parent is using."""
        if self._pid != os.getpid():
            _INHERITED.append(self._sync)
            self._lock = threading.Lock()  # it may have been held by another thread
            self._sync = {}
            self._async = weakref.WeakKeyDictionary()  # loops do not cross a fork
            self._pid = os.getpid()

    def sync(self, ep: Endpoint) -> Any:
        self._own_clients()
        client = self._sync.get(ep)
        if client is None:
            import openai

            with self._lock:
                client = self._sync.get(ep)
                if client is None:
                    client = self._sync[ep] = openai.OpenAI(**_client_kwargs(ep))
        return client

    async def async_(self, ep: Endpoint) -> Any:
        self._own_clients()
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            with self._lock:
                # loops closed without finalising their async generators: drop them
                for dead in [lp for lp in self._async if lp.is_closed()]:
                    del self._async[dead]
                entry = self._async.setdefault(loop, _LoopClients({}))
            if entry.closer is None:
                entry.closer = self._closer(loop, entry)
                await entry.closer.__anext__()  # started: the loop now finalises it
        client = entry.clients.get(ep)
        if client is None:  # no await since the lookup: no other task can race us
            import openai

            client = entry.clients[ep] = openai.AsyncOpenAI(**_client_kwargs(ep))
        return client

    async def _closer(self, loop: asyncio.AbstractEventLoop,
                      entry: _LoopClients) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with self._lock:
                if self._async.get(loop) is entry:
                    del self._async[loop]
            clients, entry.clients = list(entry.clients.values()), {}
            for c in clients:
                try:
                    await c.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass

    def close(self) -> None:
        """Close the sync clients (the pool refills on the next call)."""
        with self._lock:
            clients, self._sync = list(self._sync.values()), {}
        for c in clients:
            c.close()

    async def aclose(self) -> None:
        """Close the running loop's async clients now."""
        with self._lock:
            entry = self._async.get(asyncio.get_running_loop())
        if entry is not None and entry.closer is not None:
            await entry.closer.aclose()

    def __len__(self) -> int:
        with self._lock:
            return len(self._sync) + sum(len(e.clients) for e in self._async.values())


POOL = ClientPool()


def create_method(client: Any, kind: str) -> Callable[..., Any]:
    return _CREATE[kind](client)


def _create_on_class(kind: str) -> Any:
    import openai.resources as r
    import openai.resources.responses  # not imported by openai.resources itself

    return {
        "chat": r.chat.Completions.create,
        "text": r.Completions.create,
        "embedding": r.Embeddings.create,
        "transcription": r.audio.Transcriptions.create,
        "responses": openai.resources.responses.Responses.create,
    }[kind]


@cache
def accepted_params(kind: str) -> frozenset[str]:
    """The keyword parameters the client's ``create`` takes for this kind of call."""
    sig = inspect.signature(_create_on_class(kind))
    return frozenset(p for p in sig.parameters if p != "self")


def upstream_params(kind: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The body parameters: what the client's ``create`` knows is passed as is, anything
    else (vLLM's ``top_k``, Ollama's options, ...) goes into ``extra_body`` so every
    OpenAI-compatible server gets the parameters it understands."""
    known = accepted_params(kind)
    out: dict[str, Any] = {}
    extra: dict[str, Any] = dict(kwargs.get("extra_body") or {})
    for name, value in kwargs.items():
        if name in LOCAL_PARAMS or name == "extra_body":
            continue
        if name in known:
            out[name] = value
        else:
            extra[name] = value
    if extra:
        out["extra_body"] = extra
    headers = {**(kwargs.get("headers") or {}), **(kwargs.get("extra_headers") or {})}
    if headers:
        out["extra_headers"] = headers
    return out
