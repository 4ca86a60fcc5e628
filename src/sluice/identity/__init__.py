"""Identity: who is calling and what they may do.

Owns API keys, users, workspaces and memberships, invitations, password resets and sessions, IP rules and trusted
proxies, the registration mode, the grant rule (:mod:`.grants`) and the audit log (:mod:`.audit`).

Fixed roles inside:
- the hot path: ``keys.py``/``users.py`` (token → :class:`~.principal.Principal`, cached), ``authenticate.py``,
  ``network.py``, ``invalidation.py`` (dropping cached identity on every replica);
- services, the only way identity's objects change: ``service.py`` groups ``key_service``, ``user_service``,
  ``workspace_service``, ``invite_service``, ``access_service`` and ``subjects`` (what other rooms may ask);
  ``accounts.py`` is a user's own registration, sign-in and password;
- repositories, the only modules with SQL on identity's tables: ``key_repository``, ``user_repository``,
  ``workspace_repository``, ``access_repository`` and ``audit`` (settings rows go through
  :mod:`sluice.store.settings`);
- ``cli*.py``: the ``sluice keys|admin|invites`` commands, which parse, call the services as the operator and print.

May import: :mod:`sluice.store`, :mod:`sluice.config`, :mod:`sluice.errors`, :mod:`sluice.cli_common` (the CLI
modules) and :mod:`sluice.server.exchange` (the request a surface authenticates). Nothing above it (limits,
accounting, routing, admin, surfaces, web) — they ask identity through its services.
"""
