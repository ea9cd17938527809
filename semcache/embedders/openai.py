"""Embedder for any OpenAI-compatible ``/v1/embeddings`` endpoint, via the ``openai`` client.

OpenAI itself (``text-embedding-3-small``/``-large``, ``text-embedding-ada-002``) or a
self-hosted server (vLLM, TEI, Ollama, LiteLLM proxy, ...) through ``api_base``. The
client's own retry loop (exponential backoff on connection errors, timeouts, 408/409/429
and 5xx) is used with a small ``max_retries``; every error it raises is mapped to
semcache's tree in one place, ``_map_errors``. The async twin uses ``AsyncOpenAI`` on the
event loop, never a blocking call, and shares the base class's validation and LRU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .._connections.openai import OpenAIClients
from .._errors import BackendError, BackendTimeout, BackendUnavailable, ConfigError
from .base import Embedder

__all__ = ["OPENAI_DIMS", "OpenAIEmbedder"]

#: native output sizes, so ``dim`` needs no probe call
OPENAI_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


@contextlib.contextmanager
def _map_errors(model_id: str) -> Iterator[None]:
    """The one place where the openai client's errors become semcache's."""
    import openai

    try:
        yield
    except openai.APITimeoutError as exc:  # subclass of APIConnectionError: first
        raise BackendTimeout(f"{model_id}: timed out: {exc}", backend="embedder") from exc
    except openai.APIConnectionError as exc:
        raise BackendUnavailable(f"{model_id}: cannot connect: {exc}",
                                 backend="embedder") from exc
    except openai.APIStatusError as exc:
        cls = BackendUnavailable if exc.status_code in (502, 503, 504) else BackendError
        raise cls(f"{model_id}: HTTP {exc.status_code}: {exc.message}",
                  backend="embedder") from exc
    except openai.OpenAIError as exc:  # response validation and the like
        raise BackendError(f"{model_id}: {exc}", backend="embedder") from exc



class OpenAIEmbedder(Embedder):
    """``model`` on an OpenAI-compatible endpoint.

    ``api_base``/``api_key`` default to ``$OPENAI_BASE_URL``/``$OPENAI_API_KEY``; a
    self-hosted ``api_base`` needs no key. ``dimensions`` asks text-embedding-3 models
    (or any server that supports it) for shorter vectors. ``dim`` is known without a call
    for the models in ``OPENAI_DIMS`` or when ``dimensions``/``dim`` is given; otherwise
    the first access makes one probe call. ``timeout`` (seconds) bounds each attempt;
    ``max_retries`` further attempts follow with the client's backoff.
    """

    batch_size = 256  # inputs per request (OpenAI accepts up to 2048)

    def __init__(self, model: str = "text-embedding-3-small", *, api_base: str | None = None,
                 api_key: str | None = None, dimensions: int | None = None,
                 dim: int | None = None, timeout: float = 5.0, max_retries: int = 2,
                 batch_size: int | None = None, cache_size: int = 4096,
                 extra_headers: dict[str, str] | None = None) -> None:
        super().__init__(cache_size=cache_size)
        model = model.removeprefix("openai/")
        if not model:
            raise ConfigError("an embedding model name is required", parameter="model")
        if dimensions is not None and dimensions < 1:
            raise ConfigError("dimensions must be >= 1", parameter="dimensions")
        if timeout <= 0:
            raise ConfigError("timeout must be > 0 seconds", parameter="timeout")
        if max_retries < 0:
            raise ConfigError("max_retries must be >= 0", parameter="max_retries")
        api_base = api_base or os.environ.get("OPENAI_BASE_URL") or None
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None:
            if api_base is None:
                raise ConfigError(
                    f"embedding model {model!r} on OpenAI needs an API key: pass api_key "
                    "or set OPENAI_API_KEY (or point api_base at a server that needs none)",
                    parameter="api_key")
            api_key = "not-needed"  # self-hosted servers ignore it; the client wants one
        self.model = model
        self.api_base = api_base
        self._api_key = api_key
        self.dimensions = dimensions
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_headers = extra_headers
        if batch_size is not None:
            if batch_size < 1:
                raise ConfigError("batch_size must be >= 1", parameter="batch_size")
            self.batch_size = batch_size
        self._dim = dimensions or dim or OPENAI_DIMS.get(model)
        self.model_id = f"openai/{model}" + (f"@{dimensions}" if dimensions else "")
        self._clients = OpenAIClients(self._client_kwargs())

    # -- clients, made on first use (no network in the constructor) -------------------

    def _client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"api_key": self._api_key, "timeout": self.timeout,
                              "max_retries": self.max_retries}
        if self.api_base:
            kw["base_url"] = self.api_base
        if self.extra_headers:
            kw["default_headers"] = self.extra_headers
        return kw

    # -- the seam ---------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if self._dim is None:  # unknown model: one probe call, then known
            self._dim = int(self._call(self._embed, ["dimension probe"]).shape[1])
        return self._dim

    def _request(self, texts: list[str]) -> dict[str, Any]:
        req: dict[str, Any] = {"model": self.model, "input": texts,
                               "encoding_format": "float"}
        if self.dimensions is not None:
            req["dimensions"] = self.dimensions
        return req

    def _vectors(self, response: Any, n: int) -> np.ndarray:
        """The answer's rows in input order, or a ``BackendError``: a server's garbage
        (rows missing, repeated or misnumbered, values that are not numbers) must never
        become a vector that the LRU and the index keep for another text."""
        data = getattr(response, "data", None)
        if not isinstance(data, list):
            raise self._bad_answer(f"'data' is {type(data).__name__}, not a list")
        if len(data) != n:
            raise BackendError(f"{self.model_id} returned {len(data)} vectors for {n} texts",
                               backend="embedder")
        by_index = {getattr(d, "index", None): d for d in data}
        if set(by_index) != set(range(n)):  # each input's row exactly once, by index
            raise self._bad_answer(
                f"row indices {sorted(map(repr, by_index))} are not 0..{n - 1}, once each")
        try:
            arr = np.array([by_index[i].embedding for i in range(n)])
        except ValueError:  # rows of different lengths
            raise self._bad_answer("rows of different lengths") from None
        if arr.ndim != 2 or arr.dtype.kind not in "iuf":  # bools, strings, nulls, lists
            raise self._bad_answer(f"rows are not lists of numbers ({arr.dtype}, "
                                   f"shape {arr.shape})")
        if self._dim is None:
            self._dim = int(arr.shape[1])
        return arr.astype(np.float32)

    def _bad_answer(self, why: str) -> BackendError:
        return BackendError(f"{self.model_id}: malformed embeddings answer: {why}",
                            backend="embedder")

    def _embed(self, texts: list[str]) -> np.ndarray:
        with _map_errors(self.model_id):
            response = self._clients.sync().embeddings.create(**self._request(texts))
            return self._vectors(response, len(texts))

    async def _aembed(self, texts: list[str]) -> np.ndarray:  # type: ignore[override]
        with _map_errors(self.model_id):
            response = await self._clients.async_().embeddings.create(**self._request(texts))
            return self._vectors(response, len(texts))

    def close(self) -> None:
        self._clients.close()

    async def aclose(self) -> None:
        await self._clients.aclose()

    def __repr__(self) -> str:
        return (f"OpenAIEmbedder(model_id={self.model_id!r}, api_base={self.api_base!r}, "
                f"timeout={self.timeout}, max_retries={self.max_retries})")
