"""Names for the ids the API answers with: users by email, keys by name and prefix, workspaces by name.

A page loads the directory once, through the lists the signed-in user may read anyway (so an owner names only
their workspace's people, a member only their own keys), and shows names wherever it would otherwise show an id.
An id the directory does not know stays visible as it is: it is then someone the reader may not see, or gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluice.web.client import ApiError, GatewayClient
from sluice.web.session import me, role_at_least


@dataclass
class Directory:
    users: dict[str, str] = field(default_factory=dict)  # id → email
    keys: dict[str, str] = field(default_factory=dict)  # id → "name (sk-sl-ab12…)"
    workspaces: dict[str, str] = field(default_factory=dict)  # id → name

    def user(self, user_id: str | None) -> str:
        return self.users.get(user_id or "", user_id or "—")

    def key(self, key_id: str | None) -> str:
        return self.keys.get(key_id or "", key_id or "—")

    def workspace(self, workspace_id: str | None) -> str:
        return self.workspaces.get(workspace_id or "", workspace_id or "—")

    def of(self, kind: str, ident: str | None) -> str:
        """The name of a user, key, workspace or model (models are named by their name already)."""
        if kind == "user":
            return self.user(ident)
        if kind == "key":
            return self.key(ident)
        if kind == "workspace":
            return self.workspace(ident)
        return ident or "—"


async def _rows(client: GatewayClient, path: str) -> list[dict[str, Any]]:
    try:
        found = await client.admin("GET", path)
    except ApiError:
        return []
    return list(found) if isinstance(found, list) else []


def key_label(key: dict[str, Any]) -> str:
    return f"{key['name']} ({key['prefix']}…)"


async def load_directory(client: GatewayClient) -> Directory:
    names = Directory()
    mine = me()
    user = mine.get("user") or {}
    if user.get("id"):
        names.users[str(user["id"])] = str(user.get("email"))
    if role_at_least("owner"):
        names.users.update({u["id"]: u["email"] for u in await _rows(client, "/users")})
    if role_at_least("member"):
        names.keys = {k["id"]: key_label(k) for k in await _rows(client, "/keys")}
    names.workspaces = {w["id"]: w["name"] for w in await _rows(client, "/workspaces")}
    return names
