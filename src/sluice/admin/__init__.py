"""The admin REST API under ``/admin/v1``: routes that parse, declare the least role, call a room's service and
render.

``policy.py`` authenticates the caller and checks the declared role; ``schemas.py`` holds the request and response
bodies; ``routes_*.py`` call :mod:`sluice.identity`'s services, :class:`~sluice.limits.stored.StoredLimits`,
:class:`~sluice.accounting.service.Accounting`'s reports and :class:`~sluice.routing.stored.StoredCatalog`; no route
opens a database session or holds a business rule.

May import every room's services and :mod:`sluice.services`; the web UI reaches it over HTTP only.
"""
