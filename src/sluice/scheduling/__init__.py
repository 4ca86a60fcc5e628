"""Scheduling: the queue in front of every deployment: priority classes, aging, fair share between tenants.

Owns the ordering rules (``ordering.py``, ``book.py``), the backends that hold the line (``local.py`` in-process,
``redis.py`` and ``redis_scripts.py``, ``rabbitmq*.py``; ``backend.py`` is their interface) and ``service.py`` (the
scheduler the pipeline asks for a slot, and the admin view of the queues).

May import: :mod:`sluice.canonical`, :mod:`sluice.config`, :mod:`sluice.errors`, :mod:`sluice.identity` (the
principal: whose request waits) and :mod:`sluice.observability`.
"""
