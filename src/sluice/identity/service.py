"""The identity room's one service: what the admin API, the CLI and (through the API) the web UI call.

Each part holds the rules for one kind of object and is the only way they change: :class:`KeyService` (API keys),
:class:`UserService` (accounts as admins manage them), :class:`WorkspaceService` (workspaces and memberships),
:class:`InviteService` (invitations), :class:`AccessService` (IP rules, run-time settings, the audit log) and
:class:`Subjects` (what other rooms ask about keys, users and workspaces) and :class:`FirstRun` (the
first admin, made in the web UI with the setup code). A user's own registration, sign-in and
password are :class:`sluice.identity.accounts.Accounts`, which a running gateway builds beside it with the token
codec (the CLI signs nobody in). Each operation is one unit of work (:meth:`sluice.store.db.Database.session`); the
services never commit themselves, and announce a change only once it has committed.
"""

from __future__ import annotations

from sluice.config import Settings
from sluice.identity.access_service import AccessService
from sluice.identity.first_run import FirstRun
from sluice.identity.invalidation import Announce
from sluice.identity.invite_service import InviteService
from sluice.identity.key_service import KeyService
from sluice.identity.subjects import Subjects
from sluice.identity.user_service import UserService
from sluice.identity.workspace_service import WorkspaceService
from sluice.store.db import Database


class IdentityService:
    def __init__(self, db: Database, settings: Settings, announce: Announce) -> None:
        self.keys = KeyService(db, announce)
        self.users = UserService(db, announce)
        self.workspaces = WorkspaceService(db, announce)
        self.invites = InviteService(db, settings)
        self.access = AccessService(db, settings, announce)
        self.subjects = Subjects(db)
        self.first_run = FirstRun(db, settings)
