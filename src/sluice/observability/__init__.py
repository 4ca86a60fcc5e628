"""Observability: structured logs, the access line, request ids, Prometheus metrics, tracing and health.

Owns what the gateway tells operators: ``logging.py`` and ``access.py`` (log lines), ``request_id.py`` (the id on
every line and response), ``metrics.py``/``local_metrics.py``/``multiprocess.py`` (Prometheus, one or several
workers), ``tracing.py`` (OpenTelemetry) and ``health.py`` (liveness, readiness, ``/metrics``).

May import: :mod:`sluice.config`, :mod:`sluice.errors` and :mod:`sluice.version`; it reads the other rooms only
through what they hand it (type-only imports aside), so every room may report to it.
"""
