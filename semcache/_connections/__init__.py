"""Connections that an exact store and a vector index of one backend share.

A backend that serves both seams (Redis for ``redis-semantic``, Qdrant for
``qdrant-semantic``) needs one client pool and one error mapping for both. They live
here, below the seams, so that ``exact/`` and ``indexes/`` never import each other:
each takes a connection, and ``semcache._registry`` builds one and hands it to both.

This layer imports only ``semcache._errors`` (the import contract in ``.importlinter``
checks it), and each module needs its backend's optional client library.
"""
