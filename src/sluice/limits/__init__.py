"""Limits: rpm, tpm, concurrency and money budgets per key, user, workspace and role default.

Owns the stored limit policies and the counters admission reserves from and settles into.

Fixed roles inside: ``policy.py`` (which limits apply: the one resolver) and ``periods.py`` are pure; the request
path is ``service.py`` (the :class:`~.service.Limiter`: admit and settle) over the stores (``store.py`` interface,
``memory.py``, ``redis.py`` + Lua) and ``reconcile.py`` (settlements the shared store missed, kept through the
spool's queue interface); ``stored.py`` is the service the admin API and ``sluice limits`` share; ``repository.py``
is the only module with SQL on ``limit_policies``; ``setup.py`` builds it all from settings.

May import: :mod:`sluice.identity` (the principal, :class:`~sluice.identity.subjects.Subjects`,
:mod:`~sluice.identity.grants`, :mod:`~sluice.identity.audit`, and for ``cli.py`` the identity service as the
operator has it — never identity's tables),
:mod:`sluice.accounting` (prices, spend read from the usage records, the spool's queue), :mod:`sluice.store`,
:mod:`sluice.config`, :mod:`sluice.errors`, :mod:`sluice.observability` (metrics) and, for types only,
:mod:`sluice.routing` and :mod:`sluice.call` (the per-request record).
"""
