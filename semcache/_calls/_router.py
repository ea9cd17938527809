"""``Router``: model names mapped to deployments, with LiteLLM's ``caching_groups``.

A call names a ``model_name``; the router picks one of its deployments (round-robin) and
calls it with the deployment's ``litellm_params``. The cache scope of a call is its
caching group when the model is in one (so every model of a group shares entries) and
the ``model_name`` otherwise: two model names never share entries unless grouped, even
when they are deployed on the same underlying model.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .._errors import ConfigError, InvalidRequestError
from ._clients import check_retries, check_timeout

__all__ = ["Router"]

#: deployment settings that are about routing, not the call
_ROUTING_ONLY = frozenset({"rpm", "tpm", "order", "weight", "max_parallel_requests"})


def _env(value: Any, where: str) -> Any:
    """LiteLLM's ``"os.environ/NAME"`` values, read from the environment."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value[len("os.environ/"):]
        if name not in os.environ:
            raise ConfigError(f"{where} names the environment variable {name!r}, which is "
                              f"not set", parameter=where)
        return os.environ[name]
    return value


def _check_call_settings(params: Mapping[str, Any], where: str | None) -> None:
    """A deployment's or the router's timeout and retries, checked when the router is
    built with the rule every call applies (``check_timeout``, ``check_retries``)."""
    for name, check in (("timeout", check_timeout), ("request_timeout", check_timeout),
                        ("num_retries", check_retries), ("max_retries", check_retries)):
        label = name if where is None else f"{where}.{name}"
        try:
            check(params.get(name), label)
        except InvalidRequestError as exc:
            raise ConfigError(str(exc), parameter=label) from None


def _port(value: Any) -> int | None:
    """``redis_port``: an int in 1..65535 or a str of one (an environment variable)."""
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)
                         and 0 < value < 65536):
        return value
    raise ConfigError(f"redis_port must be a port number (1-65535) or None, got "
                      f"{value!r:.80}", parameter="redis_port")


class Router:
    """``Router(model_list=[{"model_name": ..., "litellm_params": {"model", "api_base",
    "api_key", ...}}], caching_groups=[("a", "b")])``.

    The router's calls use ``semcache.cache`` unless given its own: ``cache=Cache(...)``,
    or LiteLLM's ``redis_host`` / ``redis_port`` / ``redis_password`` (a ``redis`` Cache).
    ``cache_responses=False`` turns caching off for the router's calls;
    ``cache_responses=True`` with neither set caches in memory, as LiteLLM's does.
    """

    def __init__(self, model_list: Sequence[Mapping[str, Any]],
                 caching_groups: Iterable[Iterable[str]] | None = None, *,
                 cache_responses: bool | None = None, cache: Any = None,
                 redis_host: str | None = None, redis_port: int | str | None = None,
                 redis_password: str | None = None, num_retries: int | None = None,
                 timeout: float | None = None,
                 default_litellm_params: Mapping[str, Any] | None = None) -> None:
        if default_litellm_params is not None and \
                not isinstance(default_litellm_params, Mapping):
            raise ConfigError(f"default_litellm_params must be a dict of call parameters, "
                              f"got {default_litellm_params!r:.80}",
                              parameter="default_litellm_params")
        _check_call_settings(default_litellm_params or {}, "default_litellm_params")
        # checked now, or the first call is the one that finds out (a raw ValueError)
        _check_call_settings({"num_retries": num_retries, "timeout": timeout}, None)
        if isinstance(model_list, (str, bytes, Mapping)) or \
                not isinstance(model_list, Iterable):
            raise ConfigError(f"model_list must be a list of deployments ({{'model_name': "
                              f"..., 'litellm_params': {{...}}}}), got {model_list!r:.80}",
                              parameter="model_list")
        model_list = list(model_list)
        if not model_list:
            raise ConfigError("model_list must name at least one deployment",
                              parameter="model_list")
        for i, d in enumerate(model_list):
            if not isinstance(d, Mapping):  # dict(5) or dict("ab") was a raw error
                raise ConfigError(f"model_list[{i}] must be a dict with model_name and "
                                  f"litellm_params, got {d!r:.80}", parameter="model_list")
        if cache_responses is not None and not isinstance(cache_responses, bool):
            # LiteLLM's is a bool; 0 or "false" read as "not False" would keep caching
            # the calls the user turned caching off for
            raise ConfigError(f"cache_responses must be true, false or None, got "
                              f"{cache_responses!r}", parameter="cache_responses")
        self.model_list = [dict(d) for d in model_list]
        self._deployments: dict[str, list[dict[str, Any]]] = {}
        for i, d in enumerate(self.model_list):
            name = d.get("model_name")
            params = d.get("litellm_params")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"model_list[{i}] needs a model_name",
                                  parameter="model_list")
            if not isinstance(params, Mapping) or not params.get("model"):
                raise ConfigError(f"model_list[{i}] needs litellm_params with a model",
                                  parameter="model_list")
            clean = {k: _env(v, f"model_list[{i}].litellm_params.{k}")
                     for k, v in params.items() if k not in _ROUTING_ONLY}
            _check_call_settings(clean, f"model_list[{i}].litellm_params")
            self._deployments.setdefault(name, []).append(clean)
        self._cycles: dict[str, Iterator[dict[str, Any]]] = {
            name: itertools.cycle(ds) for name, ds in self._deployments.items()}
        self._lock = threading.Lock()
        if caching_groups is not None and (isinstance(caching_groups, (str, bytes, Mapping))
                                           or not isinstance(caching_groups, Iterable)):
            raise ConfigError(f"caching_groups must be a list of model-name lists, e.g. "
                              f"[('gpt-4o', 'gpt-4o-eu')], got {caching_groups!r:.80}",
                              parameter="caching_groups")
        groups = list(caching_groups or ())
        for g in groups:
            if isinstance(g, (str, bytes, Mapping)) or not isinstance(g, Iterable):
                # caching_groups=["a", "b"] would be the groups of the letters of each
                raise ConfigError(f"caching_groups must be a list of model-name lists, "
                                  f"e.g. [('gpt-4o', 'gpt-4o-eu')]; got the item {g!r}",
                                  parameter="caching_groups")
        self.caching_groups = [tuple(g) for g in groups]
        self._group_of: dict[str, tuple[str, ...]] = {}
        for g in self.caching_groups:
            if not all(isinstance(m, str) and m for m in g):
                raise ConfigError(f"a caching group's models are model names (non-empty "
                                  f"str), got {g!r}", parameter="caching_groups")
            # the scope is a tuple, a JSON array in the key: no model name (a str) can
            # equal it, nor can another group's, whatever characters the names hold (a
            # joined string did: ("a,b", "c") and ("a", "b,c") were one scope, and so
            # was a model named "caching_group:a,b"). Sorted: the order is not the group.
            label = ("caching_group", *sorted(set(g)))
            for model in g:
                if self._group_of.get(model, label) != label:
                    raise ConfigError(f"model {model!r} is in two caching groups",
                                      parameter="caching_groups")
                self._group_of[model] = label
        if redis_host is not None:
            if cache is not None:
                raise ConfigError("give either cache= or redis_host=", parameter="cache")
            from .._cache import Cache

            cache = Cache(type="redis", host=redis_host, port=_port(redis_port),
                          password=redis_password)
        elif cache is not None and not all(callable(getattr(cache, m, None))
                                           for m in ("get_cache", "add_cache")):
            # accepted, it failed the router's first call with a raw TypeError
            raise ConfigError(f"cache must be a semcache Cache (or an object with "
                              f"get_cache and add_cache) or None, got {cache!r:.80}",
                              parameter="cache")
        self.cache = cache
        self.cache_responses = cache_responses
        #: LiteLLM's cache_responses=True with no Redis settings caches in memory: the
        #: router's own, used only while no cache= and no semcache.cache are set
        self._memory: Any = None
        self.defaults: dict[str, Any] = dict(default_litellm_params or {})
        if num_retries is not None:
            self.defaults["num_retries"] = num_retries
        if timeout is not None:
            self.defaults["timeout"] = timeout

    @property
    def model_names(self) -> list[str]:
        return list(self._deployments)

    def caching_group(self, model_name: str) -> str | tuple[str, ...]:
        """The cache scope of a model name: its group (``("caching_group", *members)``,
        sorted), or the name itself."""
        return self._group_of.get(model_name, model_name)

    def _flow(self, call_type: str, model: str, kwargs: dict[str, Any]) -> Any:
        from . import _GLOBAL, _flow, _root

        if model not in self._cycles:
            raise InvalidRequestError(f"no deployment for model {model!r}; the router "
                                      f"knows {self.model_names}")
        with self._lock:
            deployment = next(self._cycles[model])
        params = {**self.defaults, **deployment, **kwargs,
                  "caching_group": self.caching_group(model)}
        if self.cache_responses is False:
            params["caching"] = False
        cache = self.cache
        if cache is None and self.cache_responses is True and _root().cache is None:
            with self._lock:
                if self._memory is None:
                    from .._cache import Cache

                    self._memory = Cache()
            cache = self._memory
        return _flow(call_type, params, cache if cache is not None else _GLOBAL)

    def completion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        from . import _run

        return _run(self._flow("completion", model, {"messages": messages, **kwargs}))

    async def acompletion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        from . import _arun

        return await _arun(self._flow("acompletion", model, {"messages": messages,
                                                              **kwargs}))

    def text_completion(self, model: str, prompt: Any, **kwargs: Any) -> Any:
        from . import _run

        return _run(self._flow("text_completion", model, {"prompt": prompt, **kwargs}))

    async def atext_completion(self, model: str, prompt: Any, **kwargs: Any) -> Any:
        from . import _arun

        return await _arun(self._flow("atext_completion", model, {"prompt": prompt,
                                                                   **kwargs}))

    def embedding(self, model: str, input: Any, **kwargs: Any) -> Any:
        from . import _run

        return _run(self._flow("embedding", model, {"input": input, **kwargs}))

    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> Any:
        from . import _arun

        return await _arun(self._flow("aembedding", model, {"input": input, **kwargs}))

    def __repr__(self) -> str:
        return f"Router(models={self.model_names}, caching_groups={self.caching_groups})"
