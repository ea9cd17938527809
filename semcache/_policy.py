"""The ``DecisionPolicy`` seam's names where the core has always imported them from.

The base lives with its policies (semcache/policies/base.py), so the seam needs nothing
from the core; this re-export keeps ``semcache._policy`` imports working (core -> seam
is the allowed direction).
"""

from .policies.base import Action, Decision, DecisionPolicy, StaticThreshold

__all__ = ["Action", "Decision", "DecisionPolicy", "StaticThreshold"]
