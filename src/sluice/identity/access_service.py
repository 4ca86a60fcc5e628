"""IP rules, the gateway's run-time settings (registration mode, trusted proxies) and reading the audit log.

IP rules: gateway admins manage every rule, including global and anonymous-network ones; workspace owners manage
the rules of their own workspace and its keys. A rule is filed under the workspace it concerns (a key's rule under
the key's workspace, so its owners see it); a global rule that admits no anonymous callers concerns every workspace
and is filed under none. Rule and proxy changes are announced, so every replica reloads both at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from sluice.config import RegistrationMode, Settings
from sluice.errors import InvalidRequest, NotFound, PermissionDenied
from sluice.identity.access_repository import RuleRepository
from sluice.identity.audit import AuditQuery, audit, audit_events
from sluice.identity.grants import Authority, check_grant
from sluice.identity.images import rule_image
from sluice.identity.invalidation import Announce
from sluice.identity.key_repository import KeyRepository
from sluice.identity.network import NetworkRules, normalise_networks, parse_network
from sluice.identity.runtime_settings import (
    registration_mode,
    set_registration_mode,
    set_trusted_proxies,
    stored_trusted_proxies,
    trusted_proxies,
)
from sluice.identity.workspace_repository import WorkspaceRepository
from sluice.store.db import Database
from sluice.store.models import AuditEvent, IpRule
from sluice.store.settings import SettingsRepository


@dataclass(frozen=True, slots=True)
class RuleTerms:
    cidr: str
    scope: str = "global"  # global | workspace | key
    workspace_id: str | None = None
    key_id: str | None = None
    anonymous: bool = False
    priority: str | None = None  # anonymous rules only
    allowed_models: list[str] | None = None  # anonymous rules only
    note: str = ""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    registration: RegistrationMode
    trusted_proxies: list[str]  # in force: the stored list, else the configuration's
    trusted_proxies_stored: bool  # False: the configuration file's list applies


class AccessService:
    def __init__(self, db: Database, settings: Settings, announce: Announce) -> None:
        self.db = db
        self.settings = settings
        self.announce = announce

    # --- IP rules -----------------------------------------------------------------------------------------------

    async def rules(self, by: Authority) -> Sequence[IpRule]:
        async with self.db.session() as session:
            return await RuleRepository(session).list(by.workspace_scope())

    async def create_rule(self, by: Authority, terms: RuleTerms) -> IpRule:
        cidr = _checked(by, terms)
        workspace_id = terms.workspace_id if by.is_admin else by.principal.workspace_id
        if not by.is_admin and terms.workspace_id not in (None, workspace_id):
            raise NotFound("No such workspace.", code="workspace_not_found")
        if terms.scope == "global" and not terms.anonymous:
            workspace_id = None  # it concerns every workspace
        async with self.db.session() as session:
            if terms.scope == "key":
                key = await KeyRepository(session).get(terms.key_id or "")
                if key is None or not by.sees_workspace(key.workspace_id):
                    raise NotFound("No such API key.", code="key_not_found")
                workspace_id = key.workspace_id
            elif (terms.scope == "workspace" and workspace_id is None) or (
                workspace_id is not None and not await WorkspaceRepository(session).exists(workspace_id)
            ):
                raise NotFound("No such workspace.", code="workspace_not_found")
            rule = await RuleRepository(session).add(
                IpRule(
                    cidr=cidr,
                    scope=terms.scope,
                    workspace_id=workspace_id,
                    key_id=terms.key_id if terms.scope == "key" else None,
                    anonymous=terms.anonymous,
                    priority=terms.priority,
                    allowed_models=terms.allowed_models,
                    note=terms.note,
                    created_by=by.actor.name,
                )
            )
            audit(
                session,
                by.actor,
                "ip_rule.create",
                "ip_rule",
                rule.id,
                workspace_id=rule.workspace_id,
                after=rule_image(rule),
            )
        await self.announce("rules", None)
        return rule

    async def delete_rule(self, by: Authority, rule_id: str) -> None:
        async with self.db.session() as session:
            rules = RuleRepository(session)
            rule = await rules.get(rule_id)
            if rule is None or not (
                by.is_admin
                or (rule.workspace_id == by.principal.workspace_id and rule.scope != "global" and not rule.anonymous)
            ):
                raise NotFound("No such IP rule.", code="ip_rule_not_found")
            before = rule_image(rule)
            await rules.remove(rule)
            audit(
                session, by.actor, "ip_rule.delete", "ip_rule", rule_id, workspace_id=rule.workspace_id, before=before
            )
        await self.announce("rules", None)

    async def network_rules(self) -> tuple[NetworkRules, list[str]]:
        """The compiled IP rules and the trusted proxies in force (the stored list, else the configuration's)."""
        async with self.db.session() as session:
            rows = await RuleRepository(session).list()
            proxies = await trusted_proxies(SettingsRepository(session), self.settings)
        return NetworkRules.compile(rows), proxies

    # --- run-time settings ----------------------------------------------------------------------------------

    async def gateway_settings(self) -> GatewaySettings:
        async with self.db.session() as session:
            return await self._current(SettingsRepository(session))

    async def update_settings(self, by: Authority, changes: Mapping[str, Any]) -> GatewaySettings:
        """Change ``registration`` and/or ``trusted_proxies`` (``None``: back to the configuration's list); the
        audit row names the fields asked for and records the values that changed."""
        async with self.db.session() as session:
            stored = SettingsRepository(session)
            before = asdict(await self._current(stored))
            if changes.get("registration") is not None:
                await set_registration_mode(stored, changes["registration"])
            if "trusted_proxies" in changes:
                try:
                    await set_trusted_proxies(stored, changes["trusted_proxies"])
                except ValueError as exc:
                    raise InvalidRequest(str(exc), param="trusted_proxies") from None
            now = await self._current(stored)
            after = asdict(now)
            changed = sorted(name for name in after if after[name] != before[name])
            audit(
                session,
                by.actor,
                "settings.update",
                "settings",
                ",".join(sorted(changes)),
                before={name: before[name] for name in changed},
                after={name: after[name] for name in changed},
            )
        if "trusted_proxies" in changes:
            await self.announce("rules", None)  # every replica reloads rules and proxies together
        return now

    async def _current(self, stored: SettingsRepository) -> GatewaySettings:
        proxies = await stored_trusted_proxies(stored)
        return GatewaySettings(
            registration=await registration_mode(stored, self.settings),
            trusted_proxies=proxies
            if proxies is not None
            else normalise_networks(self.settings.server.trusted_proxies),
            trusted_proxies_stored=proxies is not None,
        )

    # --- the audit log --------------------------------------------------------------------------------------

    async def audit_log(self, by: Authority, query: AuditQuery) -> list[AuditEvent]:
        """Newest first. Anyone but a gateway admin sees their own workspace's events; naming another workspace
        finds nothing, exactly like a workspace without events."""
        scope = by.workspace_scope(query.workspace_id)
        if not by.is_admin and query.workspace_id not in (None, scope):
            return []
        async with self.db.session() as session:
            return await audit_events(session, replace(query, workspace_id=scope))


def _checked(by: Authority, terms: RuleTerms) -> str:
    """The rule's network, normalised, once the rule is one ``by`` may make and one that means something."""
    try:
        cidr = str(parse_network(terms.cidr))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="cidr") from None
    if not by.is_admin and (terms.scope == "global" or terms.anonymous):
        raise PermissionDenied("Global and anonymous-network rules need the 'admin' role.", code="insufficient_role")
    if terms.anonymous and terms.scope == "key":
        raise InvalidRequest("An anonymous rule cannot be scoped to a key.", param="anonymous")
    if not terms.anonymous:  # they would be stored and never used: refuse rather than mislead
        for name in ("priority", "allowed_models"):
            if getattr(terms, name) is not None:
                raise InvalidRequest(f"{name} applies only to anonymous rules.", param=name)
    check_grant(by.principal, priority=terms.priority)
    return cidr
