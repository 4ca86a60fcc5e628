"""What other rooms ask identity about a key, a user or a workspace, without reading identity's tables themselves.

Limits attach to these subjects: before a scope's limits are shown or changed, :meth:`Subjects.check_visible` says
whether the caller may see the subject at all, and :meth:`Subjects.role_of` names the role whose default applies to
it (as admission sees it). :meth:`Subjects.display_names` names them for pages that list them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sluice.errors import NotFound
from sluice.identity.grants import Authority
from sluice.identity.key_repository import KeyRepository
from sluice.identity.keys import principal_for
from sluice.identity.names import DisplayNames, KeyName, distinct_ids
from sluice.identity.user_repository import UserRepository
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID


class Subjects:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def check_visible(self, by: Authority, kind: str, ident: str) -> None:
        """Raise NotFound unless the key, user or workspace exists and lies in ``by``'s view (a user: only
        themselves, unless ``by`` is a gateway admin)."""
        async with self.db.session() as session:
            if kind == "workspace":
                found = await WorkspaceRepository(session).get(ident)
                visible = found is not None and by.sees_workspace(found.id)
            elif kind == "key":
                key = await KeyRepository(session).get(ident)
                visible = key is not None and by.sees_workspace(key.workspace_id)
            else:
                user = await UserRepository(session).get(ident)
                visible = user is not None and (by.is_admin or user.id == by.principal.user_id)
        if not visible:
            raise NotFound(f"No such {kind}.", code=f"{kind}_not_found")

    async def role_of(self, kind: str, ident: str, workspace_id: str | None = None) -> str | None:
        """The role whose default applies to a key or user (as admission sees it), or None.

        A key's role is its own capped by its owner's standing now (none once revoked or its owner gone: it is not
        admitted at all). A user's role is ``admin`` for
        gateway admins, otherwise their membership's role in ``workspace_id`` (default: the default workspace) —
        the role their JWTs there carry.
        """
        async with self.db.session() as session:
            if kind == "key":
                principal = principal_for(await KeyRepository(session).standing(key_id=ident))
                return principal.role if principal is not None else None
            if kind == "user":
                users = UserRepository(session)
                user = await users.get(ident)
                if user is None:
                    return None
                if user.is_admin:
                    return "admin"
                membership = await users.membership(ident, workspace_id or DEFAULT_WORKSPACE_ID)
                return membership.role if membership is not None else None
        return None

    async def display_names(
        self,
        *,
        users: Iterable[str | None] = (),
        keys: Iterable[str | None] = (),
        workspaces: Iterable[str | None] = (),
    ) -> DisplayNames:
        """The names of the given ids (ids that name nothing are left out); one query per kind."""
        names = DisplayNames()
        user_ids, key_ids, workspace_ids = distinct_ids(users), distinct_ids(keys), distinct_ids(workspaces)
        async with self.db.session() as session:
            if user_ids:
                names.users = await UserRepository(session).emails(user_ids)
            if key_ids:
                found = await KeyRepository(session).names(key_ids)
                names.keys = {ident: KeyName(name, prefix) for ident, (name, prefix) in found.items()}
            if workspace_ids:
                names.workspaces = await WorkspaceRepository(session).names(workspace_ids)
        return names
