"""A learning policy per namespace: what one namespace learns stays its own.

One ``Cache`` serves many namespaces (the proxy's tenants, ``cache={"namespace": ...}``).
A policy that learns (``VerifiedPolicy``) keeps a model of how often a candidate is
wrong, an error budget over its recent decisions and an exploration allowance: pooled
over every namespace, one tenant's judged outcomes and feedback would change which
risky candidates another is served, and its traffic would spend (or lend) the other's
budget. So the cache's own namespace decides with the configured policy
(``cache.policy``) and every other namespace that makes a decision with a fresh
instance of it (``DecisionPolicy.fresh``: the same options, nothing learned), made on
its first decision, its saved state read and written under its own namespace.

Bounded: at most ``MAX_NAMESPACE_POLICIES`` namespaces besides the cache's own get a
policy (a state each: its window alone may be ``budget_window`` slots). A namespace
beyond them is never served a semantic hit (``NoSemanticHits``: its lookups miss and
the LLM answers; exact hits are served as ever), counted in ``stats()`` as
``policy_namespaces_refused``: it can neither learn from nor spend anyone's state,
and the cache stays safe, only slower for it. A policy that does not learn (the static
threshold) has no state: every namespace shares it, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._entries import Candidate
from ._errors import ConfigError
from .policies.base import Decision, DecisionPolicy

if TYPE_CHECKING:
    from ._pipeline import Pipeline, Request

__all__ = ["MAX_NAMESPACE_POLICIES", "NoSemanticHits", "PoliciesByNamespace"]

#: namespaces, besides the cache's own, that get a learning policy of their own
MAX_NAMESPACE_POLICIES = 256


class NoSemanticHits(DecisionPolicy):
    """The decision of a namespace refused a learning policy: never serve a candidate."""

    name = "refused"

    def decide(self, query: str, candidates: Sequence[Candidate], threshold: float, *,
               target_error_rate: float | None = None) -> Decision:
        return Decision("miss", candidates[0] if candidates else None, "no_policy")


_REFUSED = NoSemanticHits()


class PoliciesByNamespace:
    """The learning policies of the namespaces other than the cache's own."""

    def __init__(self, home: str, policy: DecisionPolicy,
                 cap: int = MAX_NAMESPACE_POLICIES) -> None:
        if policy.learns:  # a policy that cannot make another namespace's: said now
            try:
                policy.fresh()
            except NotImplementedError as exc:
                raise ConfigError(f"{exc}: each namespace learns with its own instance",
                                  parameter="policy") from None
        self._home, self._cap = home, cap
        self._by_ns: dict[str, DecisionPolicy] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def for_request(self, cache: Pipeline, req: Request) -> DecisionPolicy:
        """The policy ``req`` decides with: its namespace's instance of the cache's
        policy, or of the verified policy a per-request target on a static cache makes
        (made by the first such request, with its target)."""
        policy = cache.policy
        if req.controls.target_error_rate is not None and policy.name != "verified":
            if cache._verified is None:
                from .policies.verified import VerifiedPolicy

                cache._verified = VerifiedPolicy(req.controls.target_error_rate)
            policy = cache._verified
        return self.for_namespace(req.namespace, policy)

    def for_namespace(self, namespace: str, policy: DecisionPolicy) -> DecisionPolicy:
        """The policy ``namespace`` decides with; ``policy`` is the cache's own."""
        if not policy.learns or namespace == self._home:
            return policy
        got = self._by_ns.get(namespace)
        if got is not None:
            return got
        with self._lock:
            got = self._by_ns.get(namespace)
            if got is None:
                if len(self._by_ns) >= self._cap:
                    self.refused += 1
                    return _REFUSED
                got = self._by_ns[namespace] = policy.fresh()
        return got

    def get(self, namespace: str) -> DecisionPolicy | None:
        return self._by_ns.get(namespace)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            items = list(self._by_ns.items())
        return {ns: p.stats() for ns, p in items}
