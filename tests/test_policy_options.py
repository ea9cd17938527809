"""The verifier and policy controls a caller passes, checked like every other input.

``VerifiedPolicy``'s options, ``Cache(policy=...)`` and ``Cache(verifier_threshold=...)``
are either in force as given or refused with a ``ConfigError`` that names the option:
never a raw ``TypeError``, ``OverflowError`` or ``MemoryError``, and never a NaN or a
bool taken as a number (a NaN ``explore_allowance`` silently stopped all exploration, so
the policy never learned and never served; a NaN ``memory`` made every refit fade the
judged outcomes to NaN).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import Cache, ConfigError
from semcache.policies.base import DecisionPolicy, StaticThreshold
from semcache.policies.verified import VerifiedPolicy

#: any value a caller (or ``semcache eval --policy-param k=<json>``) could pass
VALUES = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10, max_value=10**7), st.integers(min_value=10**300,
                                                              max_value=10**400),
    st.sampled_from([10**9, 10**12, -(10**400), 1.5, 0.5, 0.0]),
    st.text(max_size=4), st.lists(st.integers(), max_size=2))

OPTIONS = ["per", "confidence", "audit_rate", "budget_window", "min_budget_samples",
           "min_judged", "min_audits", "max_serve_error", "min_score", "memory",
           "explore_rate", "explore_allowance", "seed"]
COUNTS = ["budget_window", "min_budget_samples", "min_judged", "min_audits",
          "explore_allowance"]
RATES = ["confidence", "audit_rate", "max_serve_error", "min_score", "explore_rate"]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(OPTIONS), VALUES)
def test_a_policy_option_is_in_force_or_refused_by_name(name: str, value: Any) -> None:
    try:
        p = VerifiedPolicy(0.05, **{name: value})
    except ConfigError as exc:
        assert exc.parameter == name and name in str(exc)
        return
    got = getattr(p, name) if name not in ("budget_window", "seed") else value
    if name in COUNTS:
        assert isinstance(got, int) and not isinstance(got, bool) and got >= 0
    elif name in RATES or name == "memory":
        assert isinstance(got, float) and math.isfinite(got) or (name == "memory"
                                                                 and got == math.inf)
    # a policy that took the option decides and counts
    p.record(p.decide("q", [], 0.5))


@pytest.mark.parametrize("name,value", [
    ("explore_allowance", float("nan")), ("memory", float("nan")),
    ("min_judged", float("nan")), ("min_budget_samples", float("nan")),
    ("min_audits", float("nan")), ("budget_window", 10**12), ("budget_window", 1.5),
    ("budget_window", True), ("min_judged", True), ("audit_rate", False),
    ("explore_rate", True), ("confidence", "0.9"), ("max_serve_error", "0.2"),
    ("memory", "x"), ("audit_rate", "x"), ("seed", [1]), ("explore_allowance", 1.5)])
def test_a_bad_policy_option_is_a_config_error_naming_it(name: str, value: Any) -> None:
    with pytest.raises(ConfigError) as e:
        VerifiedPolicy(0.05, **{name: value})
    assert e.value.parameter == name


@pytest.mark.parametrize("policy", ["verified", "static", 42, {"target_error_rate": 0.1},
                                    VerifiedPolicy, StaticThreshold])
def test_a_policy_that_is_not_a_decision_policy_is_refused_at_construction(
        minilm, policy: Any) -> None:
    # it used to be kept and crash the first lookup with an AttributeError
    with pytest.raises(ConfigError, match="DecisionPolicy") as e:
        Cache(type="faiss-semantic", embedder=minilm, policy=policy)
    assert e.value.parameter == "policy"


def test_a_decision_policy_instance_is_taken(minilm) -> None:
    p = VerifiedPolicy(0.05)
    c = Cache(type="faiss-semantic", embedder=minilm, policy=p)
    assert c.policy is p and isinstance(c.policy, DecisionPolicy)
    assert c.lookup(model="m", messages=[{"role": "user", "content": "hi"}]) is None


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_a_verifier_threshold_no_float_holds_is_a_config_error(minilm, value: int) -> None:
    with pytest.raises(ConfigError, match="verifier_threshold") as e:
        Cache(type="faiss-semantic", embedder=minilm, verifier_threshold=value)
    assert e.value.parameter == "verifier_threshold"
