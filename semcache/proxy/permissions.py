"""What a client may put in a request body: cache controls per key, and which fields
reach the upstream.

A cache shared by many clients must never let one of them decide what another is
served (issue #18). So

- a client key may use the controls that only touch its own request (``no-cache``,
  ``no-store``, ``s-maxage``, ``use-cache``, a ``ttl`` no longer than the cache's),
  and nothing that names *where* an answer is filed or *which* entry is served
  (``cache_key``, ``caching_group``, ``namespace``, ``similarity_threshold``,
  ``target_error_rate``) unless its key entry lists it in ``allowed_cache_controls``
  (LiteLLM's per-key setting). The master key may use every control. A refused control
  is a 403 that names it, never a silent drop;
- the key covers everything that reaches the upstream: the fields the key leaves out
  (``_keys.TRANSPORT_PARAMS``: ``mock_response``, ``metadata``, ``extra_headers``,
  ``api_base``, ...) are stripped before forwarding, except ``stream`` and
  ``stream_options``, which change how an answer is delivered, never what it says
  (the table is in docs/proxy.md, "Security model").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._checks import finite_number
from .._config import _CONTROL_NAMES, MAX_TTL
from .._errors import ConfigError
from .._keys import CLIENT_SIDE_PARAMS, RESERVED_MARK, TRANSPORT_PARAMS
from .config import ALL_CONTROLS, DEFAULT_CONTROLS
from .replies import Reply

__all__ = [
    "ALL_CONTROLS",
    "DEFAULT_CONTROLS",
    "FORWARDED_UNKEYED",
    "MAX_TTL",
    "STRIPPED",
    "Owned",
    "Principal",
    "bad_control",
    "cache_controls",
    "take_owned",
]

#: the body fields the proxy reads and never forwards
_OWNED = frozenset({"cache", "caching", "cache_key", "caching_group"})
#: left out of the key but harmless upstream: they shape the delivery, not the answer
FORWARDED_UNKEYED = frozenset({"stream", "stream_options"})
#: left out of the key, so never forwarded: an upstream that honoured one (LiteLLM
#: answers ``mock_response`` verbatim) would file a planted answer under an ordinary key;
#: and the library's client-side parameters, which a proxy client may not choose
STRIPPED = (TRANSPORT_PARAMS | CLIENT_SIDE_PARAMS) - _OWNED - FORWARDED_UNKEYED

_CACHE_KEY = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no space
#: the form of the keys the cache computes, bare or namespaced (``exact_key`` takes a
#: ``cache_key`` that starts with the request's namespace as the full key, so
#: ``team-a:<digest>`` names the ordinary entry itself)
_COMPUTED_KEY = re.compile(r"(?:^|:)[0-9a-f]{64}$")
_SECONDS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class Principal:
    master: bool
    namespace: str
    allowed: frozenset[str] = ALL_CONTROLS

    def may(self, control: str) -> bool:
        return self.master or control in self.allowed


def _refuse(name: str) -> Reply:
    return Reply(403, f"this key may not use the cache control {name!r} (grant it with "
                 f"allowed_cache_controls in the key's entry of semcache_settings.keys)",
                 "permission_error", "cache_control_forbidden", name)


@dataclass(slots=True)
class Owned:
    """The proxy's own body fields, taken out of the body."""

    cache: Any = None
    caching: Any = None
    cache_key: str | None = None
    caching_group: str | None = None


def take_owned(body: dict[str, Any], who: Principal) -> Owned:
    """Pop the proxy's fields and the stripped transport fields from ``body``; check
    ``cache_key`` and ``caching_group`` against the key's permissions."""
    owned = Owned()
    present = _OWNED.intersection(body)
    if present:
        owned.cache = body.pop("cache", None)
        owned.caching = body.pop("caching", None)
        key = body.pop("cache_key", None)
        group = body.pop("caching_group", None)
        if owned.caching is not None and not isinstance(owned.caching, bool):
            raise Reply(400, f"'caching' must be true or false, got {owned.caching!r}",
                        param="caching")
        if key is not None:
            if not who.may("cache_key"):
                raise _refuse("cache_key")
            if not isinstance(key, str) or not _CACHE_KEY.fullmatch(key):
                raise Reply(400, "'cache_key' must be 1-256 printable ASCII characters "
                            "without spaces", param="cache_key")
            if RESERVED_MARK in key:
                raise Reply(400, f"'cache_key' may not contain {RESERVED_MARK!r}: keys with "
                            "it are semcache's own", param="cache_key")
            if _COMPUTED_KEY.search(key):
                # it could only name an ordinary request's entry: planting, not caching
                raise Reply(400, "'cache_key' may not have the form of a computed key "
                            "(64 hex digits)", param="cache_key")
            owned.cache_key = key
        if group is not None:
            if not who.may("caching_group"):
                raise _refuse("caching_group")
            if not isinstance(group, str) or not 0 < len(group) <= 200:
                raise Reply(400, "'caching_group' must be a string of 1-200 characters",
                            param="caching_group")
            owned.caching_group = group
    for name in STRIPPED.intersection(body):
        del body[name]
    return owned


def cache_controls(cache_control: str | None, raw: Any, who: Principal, *,
                   default_ns: str, namespaces: list[str],
                   cache_ttl: float | None) -> dict[str, Any]:
    """The request's controls: the ``Cache-Control`` header, then the body's ``cache``
    (which wins), checked against the key's permissions. Values are validated by
    ``Controls.parse`` (a 400 naming the control); this adds who may use what."""
    controls: dict[str, Any] = {}
    if cache_control:
        for part in cache_control.lower().split(","):
            name, _, value = part.strip().partition("=")
            if name in ("no-cache", "no-store"):
                controls[name] = True
            elif name in ("max-age", "s-maxage"):
                value = value.strip().strip('"')
                if not _SECONDS.fullmatch(value):
                    raise Reply(400, f"Cache-Control {name} must be a whole number of "
                                f"seconds (at most 12 digits), got {value[:40]!r}",
                                param="Cache-Control")
                controls["s-maxage"] = int(value)
            # other directives (no-transform, private, ...) do not apply to a cache lookup
    if raw is not None:
        if not isinstance(raw, dict):
            raise Reply(400, "the 'cache' field must be an object of cache controls",
                        param="cache")
        # the body wins under any of a control's names (a header s-maxage and a body
        # s_maxage are one control, which Controls.parse refuses to see twice)
        fields = {_CONTROL_NAMES.get(n) for n in raw}
        controls = {n: v for n, v in controls.items() if _CONTROL_NAMES.get(n) not in fields}
        controls.update(raw)
    if not controls and who.namespace == default_ns:
        return controls  # the common case: nothing to check
    for name, value in controls.items():
        field = _CONTROL_NAMES.get(name)
        if field is None or field == "namespace":
            continue  # unknown: Controls.parse refuses it, naming it; namespace below
        if field == "ttl":
            _check_ttl(name, value, who, cache_ttl)
        elif not who.may(field):
            raise _refuse(name)
    ns = controls.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise Reply(400, "cache namespace must be a string", param="cache.namespace")
    if not who.master:
        if ns is not None and ns != who.namespace:
            if not who.may("namespace"):
                raise Reply(403, "this key may not use another namespace",
                            "permission_error", "namespace_forbidden", "namespace")
        elif who.namespace != default_ns:
            controls["namespace"] = who.namespace
    if ns == default_ns:
        del controls["namespace"]  # the cache's own: Controls.parse's fast path
    elif ns is not None and ns not in namespaces:
        # everything this proxy writes stays in its namespaces, so flush reaches it
        raise Reply(403, f"namespace {ns!r} is not one of this proxy's "
                    f"({', '.join(namespaces)})", "permission_error", "namespace_forbidden",
                    "namespace")
    return controls


_CONTROL_PARAM = re.compile(r"cache\[('|\")(.{1,80})\1\]")


def bad_control(exc: ConfigError) -> Reply:
    """A 400 for a per-request control ``Controls.parse`` refused, with the control in
    ``param`` (``cache.target_error_rate``, as the ttl check names ``cache.ttl``): the
    OpenAI SDKs raise it as ``BadRequestError.param``; it was null."""
    m = _CONTROL_PARAM.fullmatch(exc.parameter or "")
    return Reply(400, str(exc), param=f"cache.{m.group(2)}" if m else exc.parameter)


def _check_ttl(name: str, value: Any, who: Principal, cache_ttl: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return  # not a number: Controls.parse says so
    if not who.may("ttl"):
        raise _refuse(name)
    # None: never expire; a cache ttl of 0 expires at once (LiteLLM's meaning), so any
    # positive ttl is longer than it (``cache_ttl or inf`` read 0 as no limit at all)
    longer = value is None or (cache_ttl is not None and value > cache_ttl)
    if value is not None and (not finite_number(value) or value > MAX_TTL):
        raise Reply(400, f"cache {name} must be at most {MAX_TTL:.0f} seconds (ten years), "
                    f"got {value!r}", param=f"cache.{name}")
    if not who.master and cache_ttl is not None and longer:
        # a client may keep its answers for less time than the config says, not longer
        raise Reply(403, f"this key may not set a ttl longer than the cache's "
                    f"({cache_ttl:g} s), got {value!r}", "permission_error",
                    "cache_control_forbidden", f"cache.{name}")

