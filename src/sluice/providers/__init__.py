"""Providers: one class per upstream kind (OpenAI, Azure, Gemini, Anthropic, Ollama, the built-in mock).

Owns talking to upstreams: ``base.py`` (the :class:`~.base.Provider` interface and :class:`~.base.HttpProvider`,
the one base of the HTTP kinds: client, headers, start/stop, pass-through), ``http.py`` (pooled aiohttp, deadlines,
size caps, the mapping of upstream failures to Sluice errors), one module per kind, and ``registry.py`` (kind to
class).

May import: :mod:`sluice.canonical`, :mod:`sluice.codecs`, :mod:`sluice.config`, :mod:`sluice.errors`,
:mod:`sluice.observability` and :mod:`sluice.accounting.estimate` (the mock's token counts). Never the surfaces,
the pipeline, the server or the store (import-linter contracts in pyproject.toml).
"""
