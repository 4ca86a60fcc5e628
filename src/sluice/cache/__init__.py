"""The response cache: identical requests answered from a stored answer, per workspace, when the caller opts in.

Owns the cache keys (``keys.py``: what makes two requests the same), the stores (``store.py``: an in-process LRU or
Redis) and the rules around them (``service.py``: opt-in headers, TTLs, what may be stored and replayed).

May import: :mod:`sluice.canonical`, :mod:`sluice.config`, :mod:`sluice.errors`, :mod:`sluice.identity` (the
principal) and :mod:`sluice.routing` (the route a request resolved to). Never the surfaces or the store.
"""
