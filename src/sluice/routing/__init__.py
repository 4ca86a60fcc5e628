"""Routing: public model names → deployments, strategies, retries, circuit breakers, health checks, deadlines.

``stored.py`` is the service for models and providers managed at run time through the admin API (their rows go
through :mod:`sluice.store.settings`).

May import: :mod:`sluice.providers`, :mod:`sluice.config`, :mod:`sluice.errors`, :mod:`sluice.store` and
:mod:`sluice.identity.audit` (the run-time changes' audit rows).
"""
