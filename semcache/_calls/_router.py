"""``Router``: model names mapped to deployments, with LiteLLM's ``caching_groups``.

A call names a ``model_name``; the router picks one of its deployments (round-robin) and
calls it with the deployment's ``litellm_params``. The cache scope of a call is its
caching group when the model is in one (so every model of a group shares entries) and
the ``model_name`` otherwise: two model names never share entries unless grouped, even
when they are deployed on the same underlying model.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .._errors import ConfigError, InvalidRequestError

__all__ = ["Router"]

#: deployment settings that are about routing, not the call
_ROUTING_ONLY = frozenset({"rpm", "tpm", "order", "weight", "max_parallel_requests"})


class Router:
    """``Router(model_list=[{"model_name": ..., "litellm_params": {"model", "api_base",
    "api_key", ...}}], caching_groups=[("a", "b")])``."""

    def __init__(self, model_list: Sequence[Mapping[str, Any]],
                 caching_groups: Iterable[Iterable[str]] | None = None,
                 **defaults: Any) -> None:
        if not model_list:
            raise ConfigError("model_list must name at least one deployment",
                              parameter="model_list")
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
            clean = {k: v for k, v in params.items() if k not in _ROUTING_ONLY}
            self._deployments.setdefault(name, []).append(clean)
        self._cycles: dict[str, Iterator[dict[str, Any]]] = {
            name: itertools.cycle(ds) for name, ds in self._deployments.items()}
        self._lock = threading.Lock()
        self.caching_groups = [tuple(g) for g in caching_groups or ()]
        self._group_of: dict[str, str] = {}
        for g in self.caching_groups:
            # order-independent, and distinct from any plain model name
            label = "caching_group:" + ",".join(sorted(g))
            for model in g:
                if model in self._group_of:
                    raise ConfigError(f"model {model!r} is in two caching groups",
                                      parameter="caching_groups")
                self._group_of[model] = label
        self.defaults = defaults

    @property
    def model_names(self) -> list[str]:
        return list(self._deployments)

    def caching_group(self, model_name: str) -> str:
        """The cache scope of a model name: its group's label, or the name itself."""
        return self._group_of.get(model_name, model_name)

    def _route(self, model: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        if model not in self._cycles:
            raise InvalidRequestError(f"no deployment for model {model!r}; the router "
                                      f"knows {self.model_names}")
        with self._lock:
            deployment = next(self._cycles[model])
        return {**self.defaults, **deployment, **kwargs,
                "caching_group": self.caching_group(model)}

    def completion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        from . import completion

        return completion(messages=messages, **self._route(model, kwargs))

    async def acompletion(self, model: str, messages: list[Any], **kwargs: Any) -> Any:
        from . import acompletion

        return await acompletion(messages=messages, **self._route(model, kwargs))

    def text_completion(self, model: str, prompt: Any, **kwargs: Any) -> Any:
        from . import text_completion

        return text_completion(prompt=prompt, **self._route(model, kwargs))

    async def atext_completion(self, model: str, prompt: Any, **kwargs: Any) -> Any:
        from . import atext_completion

        return await atext_completion(prompt=prompt, **self._route(model, kwargs))

    def embedding(self, model: str, input: Any, **kwargs: Any) -> Any:
        from . import embedding

        return embedding(input=input, **self._route(model, kwargs))

    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> Any:
        from . import aembedding

        return await aembedding(input=input, **self._route(model, kwargs))

    def __repr__(self) -> str:
        return f"Router(models={self.model_names}, caching_groups={self.caching_groups})"
