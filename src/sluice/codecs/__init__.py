"""The wire formats, one package per format and both directions (what clients send and upstreams receive).

Pure: bytes and JSON in, :mod:`sluice.canonical` types out, and back; ``expressible.py`` says what each upstream
kind can carry (the check before every translation), ``framing.py`` frames SSE and NDJSON, ``fields.py`` reads
fields naming the bad one.

May import: :mod:`sluice.canonical` and :mod:`sluice.errors` only (an import-linter contract in pyproject.toml).
"""
