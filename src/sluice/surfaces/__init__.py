"""The surfaces: the client-facing routes, one package per API format (OpenAI, Anthropic, Ollama, Responses).

Each route reads and parses the body, decodes the client's format, runs the call through the pipeline and encodes
the answer. Shared by them: ``request.py`` (the per-request wrapper, JSON body reading), ``relay.py`` (stream
relays), ``passthrough.py`` (same-format forwarding), ``cache_replay.py`` (the response cache at the surface) and
``translate.py`` (the translated path, written once; each surface gives a ``Rendering`` of its answers).

May import: :mod:`sluice.canonical`, :mod:`sluice.codecs`, :mod:`sluice.errors`, :mod:`sluice.call`,
:mod:`sluice.pipeline`, :mod:`sluice.providers`, :mod:`sluice.routing`, :mod:`sluice.cache`, :mod:`sluice.accounting`,
:mod:`sluice.stored_responses` (its service) and :mod:`sluice.server.exchange`. Never the store directly
(import-linter contract in pyproject.toml).
"""
