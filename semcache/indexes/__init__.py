"""Vector indexes: the ``VectorIndex`` seam (``base.py``) and its backends, one per module.

Each backend needs only its optional client library and ``semcache._errors`` (RedisVL
and Qdrant also ``semcache._connections``); none imports ``exact/``, ``embedders/`` or
the core. ``semcache._registry`` pairs an index with its exact store.
"""
