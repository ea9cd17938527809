"""Exact stores: the ``ExactStore`` seam (``base.py``) and its backends, one per module.

Each backend needs only its optional client library and ``semcache._errors`` (Redis and
Qdrant also ``semcache._connections``); none imports ``indexes/``, ``embedders/`` or the
core. ``semcache._registry`` maps LiteLLM's type strings to them.
"""
