"""Accounting: what a call cost, its durable usage record, and the reports read back from the records.

Owns the usage records (spool file → outbox → database, and the daily roll-up) and the stored model prices.

Fixed roles inside: ``service.py`` (:class:`~.service.Accounting`, the room's one service: cost and records for
the request path, ``stored_prices`` and ``reports`` for the admin API and the CLI); ``prices.py``,
``estimate.py``, ``usage.py``, ``latency.py`` and ``export.py`` are pure; ``spool.py`` (the local durable file,
and the queue interface other rooms keep backlogs through) and ``outbox.py`` (shipping); the repositories —
``repository.py`` (usage records), ``analytics.py`` (the report queries), ``price_repository.py`` — are the only
modules with SQL on accounting's tables; ``cli.py`` is ``sluice prices|usage``.

May import: :mod:`sluice.store`, :mod:`sluice.config`, :mod:`sluice.canonical`, :mod:`sluice.limits`
(:class:`~sluice.limits.policy.Scope` and the spend error) and, for types only, :mod:`sluice.routing` and
:mod:`sluice.call` (the per-request record). Not identity's tables.
"""
