"""The proxy's configuration file: LiteLLM proxy's shape, plus ``semcache_settings``.

A LiteLLM user's ``config.yaml`` works unchanged for everything semcache supports::

    model_list:
      - model_name: gpt-4o-mini                  # what clients ask for
        litellm_params:
          model: openai/gpt-4o-mini              # what the upstream is asked for
          api_base: https://api.openai.com/v1
          api_key: os.environ/OPENAI_API_KEY     # resolved from the environment
    litellm_settings:
      cache: true
      cache_params: {type: faiss-semantic, similarity_threshold: 0.9, ttl: 3600}
    router_settings:
      caching_groups: [["gpt-4o-mini", "gpt-4o-mini-eu"]]
    general_settings:
      master_key: os.environ/SEMCACHE_MASTER_KEY
    semcache_settings:                           # semcache's own (LiteLLM ignores it)
      keys:
        - {key: os.environ/TEAM_A_KEY, namespace: team-a}
      prices: {gpt-4o-mini: {input: 0.15, output: 0.60}}   # USD per 1M tokens

Every check happens here, at load time: a bad value is a ``ProxyConfigError`` (a
``ConfigError``) naming the file, the key path and the reason. Keys LiteLLM knows but
semcache does not implement are collected and reported in ONE warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import _CONTROL_NAMES
from .._errors import ConfigError, SemcacheError
from .._keys import validate_namespace
from .defaults import apply_litellm_defaults
from .limits import Limits

__all__ = [
    "ClientKey",
    "Deployment",
    "Limits",
    "Price",
    "ProxyConfig",
    "ProxyConfigError",
    "load_config",
    "parse_config",
]

log = logging.getLogger("semcache.proxy")

OPENAI_API_BASE = "https://api.openai.com/v1"
#: LiteLLM provider prefixes whose endpoints speak the OpenAI wire format
_OPENAI_PREFIXES = ("openai/", "hosted_vllm/", "text-completion-openai/", "openai_like/")

# What semcache reads from each section; everything else in a section is reported once.
_TOP = {"model_list", "litellm_settings", "router_settings", "general_settings",
        "semcache_settings"}
_LITELLM = {"cache", "cache_params", "request_timeout"}
_ROUTER = {"caching_groups"}
_GENERAL = {"master_key"}
_DEPLOYMENT = {"model_name", "litellm_params", "model_info"}
_PARAMS = {"model", "api_base", "api_key", "timeout"}
_SEMCACHE = {"keys", "prices", "embedding_batching", "upstream_timeout", "max_connections",
             "dashboard", "max_body_bytes", "max_prompt_chars", "body_timeout"}
_KEY_FIELDS = ("key", "namespace", "name", "allowed_cache_controls")


#: permission names: the control's canonical field (``no-cache`` and ``no_cache`` are one)
_PERMISSION_NAMES = {**_CONTROL_NAMES, "cache_key": "cache_key",
                     "caching_group": "caching_group"}
ALL_CONTROLS = frozenset(_PERMISSION_NAMES.values())
#: what a client key may do unless granted more: only its own request changes (see
#: permissions.py and docs/proxy.md, "Security model")
DEFAULT_CONTROLS = frozenset({"ttl", "s_maxage", "no_cache", "no_store", "use_cache"})


def parse_allowed(names: list[Any]) -> frozenset[str]:
    """``allowed_cache_controls`` as canonical names; ValueError names an unknown one."""
    out = set()
    for name in names:
        field = _PERMISSION_NAMES.get(name) if isinstance(name, str) else None
        if field is None:
            raise ValueError(f"unknown cache control {name!r}; known: "
                             f"{', '.join(sorted(_PERMISSION_NAMES))}")
        out.add(field)
    return frozenset(out)


class ProxyConfigError(ConfigError):
    """A config file value is invalid: ``.file`` and ``.key`` (a dotted path) say where."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}", parameter=key)
        self.file = file
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Deployment:
    model_name: str  #: the name clients use
    model: str  #: the name sent upstream
    api_base: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ClientKey:
    key: str = field(repr=False)
    namespace: str
    name: str
    #: canonical names of the cache controls it may use (``permissions.DEFAULT_CONTROLS``
    #: unless its entry lists ``allowed_cache_controls``)
    allowed: frozenset[str] = DEFAULT_CONTROLS


@dataclass(frozen=True, slots=True)
class Price:
    input: float  #: USD per 1M prompt tokens
    output: float  #: USD per 1M completion tokens


@dataclass(slots=True)
class ProxyConfig:
    deployments: dict[str, list[Deployment]]
    cache_enabled: bool = True
    cache_params: dict[str, Any] = field(default_factory=dict)
    caching_groups: dict[str, str] = field(default_factory=dict)  #: model -> group name
    master_key: str | None = field(default=None, repr=False)
    keys: list[ClientKey] = field(default_factory=list)
    prices: dict[str, Price] = field(default_factory=dict)
    embedding_batching: bool = True
    upstream_timeout: float = 600.0
    max_connections: int = 1000
    dashboard: bool = True
    limits: Limits = field(default_factory=Limits)
    unsupported: list[str] = field(default_factory=list)
    source: str = "<config>"

    @property
    def default_namespace(self) -> str:
        return self.cache_params.get("namespace") or "default"

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this proxy writes to: flush touches these and nothing else."""
        return list(dict.fromkeys([self.default_namespace, *(k.namespace for k in self.keys)]))


def load_config(path: str | os.PathLike[str], *, warn: bool = True) -> ProxyConfig:
    """Read and validate a YAML config file; warns once about unsupported keys."""
    import yaml

    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProxyConfigError(file, "<file>", f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProxyConfigError(file, "<file>", f"not UTF-8 text ({exc.reason})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProxyConfigError(file, "<file>", f"not valid YAML: {exc}") from exc
    except RecursionError:  # PyYAML's composer recurses once per level
        raise ProxyConfigError(file, "<file>", "not valid YAML: nested too deeply") from None
    except ValueError as exc:  # a constructor's: int() past its digit limit, a bad date
        raise ProxyConfigError(file, "<file>", f"not valid YAML: a value: {exc}") from None
    cfg = parse_config(raw if raw is not None else {}, file=file)
    if warn:
        warn_unsupported(cfg)
    return cfg


def warn_unsupported(cfg: ProxyConfig) -> None:
    if cfg.unsupported:
        log.warning("%s: these LiteLLM settings are not supported by semcache and are "
                    "ignored: %s", cfg.source, ", ".join(cfg.unsupported))


def parse_config(raw: Any, *, file: str = "<config>",
                 environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """Validate an already-parsed config mapping (what ``load_config`` does after YAML)."""
    return _Parser(file, os.environ if environ is None else environ).parse(raw)


class _Parser:
    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.env = environ
        self.unsupported: list[str] = []

    def fail(self, key: str, reason: str) -> ProxyConfigError:
        return ProxyConfigError(self.file, key, reason)

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(f"{key}.{k}", "keys must be strings")
        return dict(value)

    def note(self, section: dict[str, Any], known: set[str], prefix: str) -> None:
        self.unsupported += [f"{prefix}{k}" for k in section if k not in known]

    def resolve(self, value: Any, key: str) -> Any:
        """LiteLLM's ``os.environ/NAME``: the secret comes from the environment."""
        if isinstance(value, str) and value.startswith("os.environ/"):
            name = value[len("os.environ/"):]
            if not name:
                raise self.fail(key, "os.environ/ needs a variable name")
            if name not in self.env:
                raise self.fail(key, f"environment variable {name} is not set")
            return self.env[name]
        if isinstance(value, Mapping):
            return {k: self.resolve(v, f"{key}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{key}[{i}]") for i, v in enumerate(value)]
        return value

    def string(self, value: Any, key: str, *, required: bool = True) -> str | None:
        value = self.resolve(value, key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def number(self, value: Any, key: str, *, minimum: float = 0.0,
               strict: bool = True) -> float:
        value = self.resolve(value, key)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        # NaN passes every comparison below (NaN <= 0 is False) and inf overflowed int():
        # a number here must be finite
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or \
                (value <= minimum if strict else value < minimum):
            op = ">" if strict else ">="
            raise self.fail(key, f"must be a finite number {op} {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, value: Any, key: str) -> int:
        """A count (connections, bytes, characters): a whole number >= 1, so 0.5 is not
        silently truncated to 0."""
        number = self.number(value, key, minimum=1, strict=False)
        if not number.is_integer():
            raise self.fail(key, f"must be a whole number >= 1, got {value!r}")
        return int(number)

    def parse(self, raw: Any) -> ProxyConfig:
        top = self.mapping(raw, "<top level>")
        self.note(top, _TOP, "")
        deployments = self.model_list(top.get("model_list"))
        lite = self.mapping(top.get("litellm_settings"), "litellm_settings")
        self.note(lite, _LITELLM, "litellm_settings.")
        router = self.mapping(top.get("router_settings"), "router_settings")
        self.note(router, _ROUTER, "router_settings.")
        general = self.mapping(top.get("general_settings"), "general_settings")
        self.note(general, _GENERAL, "general_settings.")
        own = self.mapping(top.get("semcache_settings"), "semcache_settings")
        # a master key anywhere else would be ignored, and a proxy with no master key
        # and no client keys is open (every caller the master): refused, not warned
        for section, prefix in ((top, ""), (lite, "litellm_settings."),
                                (router, "router_settings."), (own, "semcache_settings.")):
            if "master_key" in section:
                raise self.fail(f"{prefix}master_key", "the master key belongs in "
                                "general_settings.master_key; here it would be ignored")
        for k in own:
            if k not in _SEMCACHE:  # ours: a typo is an error, not a warning
                raise self.fail(f"semcache_settings.{k}",
                                f"unknown setting; known: {', '.join(sorted(_SEMCACHE))}")

        cfg = ProxyConfig(deployments=deployments, source=self.file)
        cache = self.resolve(lite.get("cache", True), "litellm_settings.cache")
        if not isinstance(cache, bool):
            raise self.fail("litellm_settings.cache", f"must be true or false, got {cache!r}")
        cfg.cache_enabled = cache
        cfg.cache_params = self.cache_params(lite.get("cache_params"))
        if "request_timeout" in lite:
            cfg.upstream_timeout = self.number(lite["request_timeout"],
                                               "litellm_settings.request_timeout")
        cfg.caching_groups = self.caching_groups(router.get("caching_groups"), deployments)
        if general.get("master_key") is not None:
            cfg.master_key = self.string(general["master_key"], "general_settings.master_key")
        cfg.keys = self.keys(own.get("keys"), cfg.master_key)
        cfg.prices = self.prices(own.get("prices"))
        for name in ("embedding_batching", "dashboard"):
            if name in own:
                v = self.resolve(own[name], f"semcache_settings.{name}")
                if not isinstance(v, bool):
                    raise self.fail(f"semcache_settings.{name}", f"must be true or false, "
                                    f"got {v!r}")
                setattr(cfg, name, v)
        if "upstream_timeout" in own:
            cfg.upstream_timeout = self.number(own["upstream_timeout"],
                                               "semcache_settings.upstream_timeout")
        if "max_connections" in own:
            cfg.max_connections = self.integer(own["max_connections"],
                                               "semcache_settings.max_connections")
        limits: dict[str, Any] = {name: self.integer(own[name], f"semcache_settings.{name}")
                                  for name in ("max_body_bytes", "max_prompt_chars")
                                  if name in own}
        if "body_timeout" in own:
            limits["body_timeout"] = self.number(own["body_timeout"],
                                                 "semcache_settings.body_timeout")
        cfg.limits = Limits(**limits)
        cfg.unsupported = self.unsupported
        return cfg

    def model_list(self, raw: Any) -> dict[str, list[Deployment]]:
        if raw is None:
            return {}
        if not isinstance(raw, list):
            raise self.fail("model_list", f"must be a list, got {type(raw).__name__}")
        out: dict[str, list[Deployment]] = {}
        for i, item in enumerate(raw):
            where = f"model_list[{i}]"
            entry = self.mapping(item, where)
            self.note(entry, _DEPLOYMENT, f"{where}.")
            name = self.string(entry.get("model_name"), f"{where}.model_name")
            assert name is not None
            params = self.mapping(entry.get("litellm_params"), f"{where}.litellm_params")
            self.note(params, _PARAMS, f"{where}.litellm_params.")
            model = self.string(params.get("model", name), f"{where}.litellm_params.model")
            assert model is not None
            for prefix in _OPENAI_PREFIXES:
                if model.startswith(prefix):
                    model = model[len(prefix):]
                    break
            api_base = self.string(params.get("api_base", OPENAI_API_BASE),
                                   f"{where}.litellm_params.api_base")
            assert api_base is not None
            if not api_base.startswith(("http://", "https://")):
                raise self.fail(f"{where}.litellm_params.api_base",
                                f"must be an http(s) URL, got {api_base!r}")
            api_key = self.string(params.get("api_key"), f"{where}.litellm_params.api_key",
                                  required=False)
            timeout = None
            if params.get("timeout") is not None:
                timeout = self.number(params["timeout"], f"{where}.litellm_params.timeout")
            out.setdefault(name, []).append(
                Deployment(name, model, api_base.rstrip("/"), api_key, timeout))
        return out

    def cache_params(self, raw: Any) -> dict[str, Any]:
        params = self.resolve(self.mapping(raw, "litellm_settings.cache_params"),
                              "litellm_settings.cache_params")
        # LiteLLM's default type, and its parameters that the type does not use are
        # warned about and dropped, not refused (defaults.py, issue #22)
        try:
            params, dropped = apply_litellm_defaults(params, self.env)
        except ValueError as exc:
            raise self.fail(f"litellm_settings.cache_params.{exc.args[0]}",
                            exc.args[1]) from None
        self.unsupported += [f"litellm_settings.cache_params.{k}" for k in dropped]
        if params.get("namespace") is not None:
            try:
                validate_namespace(params["namespace"])
            except ConfigError as exc:
                raise self.fail("litellm_settings.cache_params.namespace", str(exc)) from None
        return params

    def caching_groups(self, raw: Any, deployments: Mapping[str, Any]) -> dict[str, str]:
        raw = self.resolve(raw, "router_settings.caching_groups")
        if raw is None:
            return {}
        if not isinstance(raw, list):
            raise self.fail("router_settings.caching_groups", "must be a list of model-name "
                            "lists, e.g. [[gpt-4o, gpt-4o-eu]]")
        out: dict[str, str] = {}
        for i, group in enumerate(raw):
            where = f"router_settings.caching_groups[{i}]"
            if not isinstance(group, (list, tuple)) or len(group) < 2 or \
                    not all(isinstance(m, str) and m for m in group):
                raise self.fail(where, f"must be a list of at least two model names, "
                                f"got {group!r}")
            # the members as a JSON array: a joined string made [["a|b", "c"], ["a", "b|c"]]
            # one group; a client allowed a body caching_group names it the same way
            name = "group:" + json.dumps(sorted(set(group)), separators=(",", ":"))
            for m in group:
                if m not in deployments:
                    raise self.fail(where, f"model {m!r} is not a model_name in model_list")
                if m in out:
                    raise self.fail(where, f"model {m!r} is already in another caching group")
                out[m] = name
        return out

    def keys(self, raw: Any, master_key: str | None) -> list[ClientKey]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self.fail("semcache_settings.keys", "must be a list of {key, namespace}")
        out: list[ClientKey] = []
        seen: set[str] = set() if master_key is None else {master_key}
        for i, item in enumerate(raw):
            where = f"semcache_settings.keys[{i}]"
            entry = self.mapping(item, where)
            for k in entry:
                if k not in _KEY_FIELDS:
                    raise self.fail(f"{where}.{k}", f"unknown field; known: "
                                    f"{', '.join(_KEY_FIELDS)}")
            key = self.string(entry.get("key"), f"{where}.key")
            assert key is not None
            if key in seen:
                raise self.fail(f"{where}.key", "duplicate key (or the master key)")
            seen.add(key)
            ns = entry.get("namespace")
            try:
                ns = validate_namespace(ns)
            except ConfigError as exc:
                raise self.fail(f"{where}.namespace", str(exc)) from None
            allowed = DEFAULT_CONTROLS
            if entry.get("allowed_cache_controls") is not None:
                names = self.resolve(entry["allowed_cache_controls"],
                                     f"{where}.allowed_cache_controls")
                if not isinstance(names, list):
                    raise self.fail(f"{where}.allowed_cache_controls",
                                    "must be a list of cache control names")
                try:
                    allowed = parse_allowed(names)
                except ValueError as exc:
                    raise self.fail(f"{where}.allowed_cache_controls", str(exc)) from None
            out.append(ClientKey(key, ns, str(entry.get("name") or ns), allowed))
        return out

    def prices(self, raw: Any) -> dict[str, Price]:
        table = self.mapping(raw, "semcache_settings.prices")
        out: dict[str, Price] = {}
        for model, p in table.items():
            where = f"semcache_settings.prices.{model}"
            entry = self.mapping(p, where)
            for k in entry:
                if k not in ("input", "output"):
                    raise self.fail(f"{where}.{k}", "unknown field; known: input, output "
                                    "(USD per 1M tokens)")
            out[model] = Price(
                self.number(entry.get("input", 0.0), f"{where}.input", strict=False),
                self.number(entry.get("output", 0.0), f"{where}.output", strict=False))
        return out


def build_cache(cfg: ProxyConfig, **overrides: Any) -> Any:
    """The ``Cache`` the config describes; a bad parameter names its config key."""
    from .. import Cache
    from .._registry import TYPES, get_embedder
    from ..embedders.batching import BatchingEmbedder

    params = dict(cfg.cache_params)
    params.update(overrides)
    cache_type = params.pop("type")
    spec = TYPES.get(cache_type)
    if spec is not None and spec.semantic and "embedder" not in params:
        name = spec.embedder_param or "embedding_model"
        model = params.pop(spec.embedder_param, None) if spec.embedder_param else None
        key = f"litellm_settings.cache_params.{name}"
        try:
            if isinstance(model, str) and model in cfg.deployments:
                # LiteLLM's meaning: the embedding model is a model_name of model_list,
                # called on that deployment's endpoint with its key
                embedder = _deployment_embedder(cfg.deployments[model][0])
            else:
                embedder = get_embedder(model)
        except SemcacheError as exc:
            raise ProxyConfigError(cfg.source, key, str(exc)) from exc
        params["embedder"] = BatchingEmbedder(embedder) if cfg.embedding_batching else embedder
    try:
        return Cache(type=cache_type, **params)
    except ConfigError as exc:
        key = "litellm_settings.cache_params"
        if exc.parameter:
            key += f".{exc.parameter}"
        raise ProxyConfigError(cfg.source, key, str(exc)) from exc


def _deployment_embedder(dep: Deployment) -> Any:
    from ..embedders.registry import resolve_embedder

    return resolve_embedder(f"openai/{dep.model}", api_base=dep.api_base,
                            api_key=dep.api_key)
