"""Decision policies: which cached candidate may be served (see semcache._policy)."""

from .._policy import Decision, DecisionPolicy, StaticThreshold
from .verified import VerifiedPolicy

__all__ = ["Decision", "DecisionPolicy", "StaticThreshold", "VerifiedPolicy"]
