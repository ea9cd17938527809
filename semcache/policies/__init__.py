"""Decision policies: which cached candidate may be served (the seam: semcache/policies/base.py)."""

from .base import Decision, DecisionPolicy, StaticThreshold
from .verified import VerifiedPolicy

__all__ = ["Decision", "DecisionPolicy", "StaticThreshold", "VerifiedPolicy"]
