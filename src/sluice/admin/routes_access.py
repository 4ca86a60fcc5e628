"""``/admin/v1/invites``, ``/ip-rules``, ``/settings`` and ``/audit``.

Registration tokens are created by admins (any workspace) and by workspace owners (their own, with a role no
higher than theirs); the token is shown once and only its hash is kept. IP rules: admins manage global and
anonymous-network rules; owners manage the rules of their own workspace and its keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.admin.policy import Caller, check_grant, requires
from sluice.admin.schemas import (
    AuditOut,
    InviteCreate,
    InviteCreated,
    InviteOut,
    IpRuleCreate,
    IpRuleOut,
    SettingsOut,
    SettingsUpdate,
)
from sluice.config import Settings
from sluice.errors import InvalidRequest, NotFound, PermissionDenied
from sluice.identity.accounts import hash_invite, invite_expiry, new_invite_token
from sluice.identity.audit import audit, audit_events
from sluice.identity.changes import invite_image, rule_image
from sluice.identity.network import normalise_networks, parse_network
from sluice.identity.runtime_settings import (
    registration_mode,
    set_registration_mode,
    set_trusted_proxies,
    stored_trusted_proxies,
)
from sluice.store.models import ApiKey, IpRule, RegistrationToken, Workspace
from sluice.store.types import utcnow

router = APIRouter()

Admin = Annotated[Caller, Depends(requires("admin"))]
Owner = Annotated[Caller, Depends(requires("owner"))]


# --- registration tokens ----------------------------------------------------------------------------------------


def invite_out(invite: RegistrationToken) -> InviteOut:
    return InviteOut(
        id=invite.id,
        workspace_id=invite.workspace_id,
        role=invite.role,
        note=invite.note,
        created_by=invite.created_by,
        created_at=invite.created_at,
        expires_at=invite.expires_at,
        used_at=invite.used_at,
        used_by=invite.used_by,
        revoked_at=invite.revoked_at,
    )


@router.get("/invites", response_model=list[InviteOut], tags=["invites"])
async def list_invites(caller: Owner) -> list[InviteOut]:
    query = select(RegistrationToken).order_by(RegistrationToken.created_at)
    scope = caller.workspace_scope()
    if scope is not None:
        query = query.where(RegistrationToken.workspace_id == scope)
    async with caller.services.db.session() as session:
        return [invite_out(i) for i in (await session.execute(query.limit(10_000))).scalars()]


@router.post("/invites", status_code=201, response_model=InviteCreated, tags=["invites"])
async def create_invite(body: InviteCreate, caller: Owner) -> InviteCreated:
    workspace_id = body.workspace_id if caller.is_admin else caller.principal.workspace_id
    if not caller.is_admin and body.workspace_id not in (None, workspace_id):
        raise PermissionDenied("You can only invite into your own workspace.", code="grant_exceeds_own")
    check_grant(caller.principal, role=body.role)
    hours = body.expires_in_hours or caller.services.settings.auth.invite_ttl_hours
    token = new_invite_token()
    async with caller.services.db.session() as session:
        if workspace_id is not None and await session.get(Workspace, workspace_id) is None:
            raise NotFound("No such workspace.", code="workspace_not_found")
        invite = RegistrationToken(
            token_hash=hash_invite(token),
            workspace_id=workspace_id,
            role=body.role,
            note=body.note,
            created_by=caller.actor.name,
            expires_at=invite_expiry(hours),
        )
        session.add(invite)
        await session.flush()
        audit(
            session,
            caller.actor,
            "invite.create",
            "invite",
            invite.id,
            workspace_id=workspace_id,
            after=invite_image(invite),
        )
    return InviteCreated(**invite_out(invite).model_dump(), token=token)


@router.delete("/invites/{invite_id}", response_model=InviteOut, tags=["invites"])
async def revoke_invite(invite_id: str, caller: Owner) -> InviteOut:
    async with caller.services.db.session() as session:
        invite = await session.get(RegistrationToken, invite_id)
        if invite is None or not caller.sees_workspace(invite.workspace_id):
            raise NotFound("No such invitation.", code="invite_not_found")
        if invite.revoked_at is None:
            invite.revoked_at = utcnow()
        audit(session, caller.actor, "invite.revoke", "invite", invite.id, workspace_id=invite.workspace_id)
    return invite_out(invite)


# --- IP rules -------------------------------------------------------------------------------------------------


def rule_out(rule: IpRule) -> IpRuleOut:
    return IpRuleOut(
        id=rule.id,
        cidr=rule.cidr,
        scope=rule.scope,
        workspace_id=rule.workspace_id,
        key_id=rule.key_id,
        anonymous=rule.anonymous,
        priority=rule.priority,
        allowed_models=rule.allowed_models,
        note=rule.note,
        created_by=rule.created_by,
        created_at=rule.created_at,
    )


@router.get("/ip-rules", response_model=list[IpRuleOut], tags=["ip-rules"])
async def list_ip_rules(caller: Owner) -> list[IpRuleOut]:
    query = select(IpRule).order_by(IpRule.created_at)
    scope = caller.workspace_scope()
    if scope is not None:
        query = query.where(IpRule.workspace_id == scope)
    async with caller.services.db.session() as session:
        return [rule_out(r) for r in (await session.execute(query)).scalars()]


@router.post("/ip-rules", status_code=201, response_model=IpRuleOut, tags=["ip-rules"])
async def create_ip_rule(body: IpRuleCreate, caller: Owner) -> IpRuleOut:
    try:
        cidr = str(parse_network(body.cidr))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="cidr") from None
    if not caller.is_admin and (body.scope == "global" or body.anonymous):
        raise PermissionDenied("Global and anonymous-network rules need the 'admin' role.", code="insufficient_role")
    if body.anonymous and body.scope == "key":
        raise InvalidRequest("An anonymous rule cannot be scoped to a key.", param="anonymous")
    if not body.anonymous:  # they would be stored and never used: refuse rather than mislead
        for name in ("priority", "allowed_models"):
            if getattr(body, name) is not None:
                raise InvalidRequest(f"{name} applies only to anonymous rules.", param=name)
    workspace_id = body.workspace_id if caller.is_admin else caller.principal.workspace_id
    if not caller.is_admin and body.workspace_id not in (None, workspace_id):
        raise NotFound("No such workspace.", code="workspace_not_found")
    async with caller.services.db.session() as session:
        if body.scope == "key":
            key = await session.get(ApiKey, body.key_id or "")
            if key is None or not caller.sees_workspace(key.workspace_id):
                raise NotFound("No such API key.", code="key_not_found")
            workspace_id = key.workspace_id
        elif body.scope == "workspace" and (workspace_id is None or await session.get(Workspace, workspace_id) is None):
            raise NotFound("No such workspace.", code="workspace_not_found")
        rule = IpRule(
            cidr=cidr,
            scope=body.scope,
            workspace_id=workspace_id if body.scope != "global" or body.anonymous else None,
            key_id=body.key_id if body.scope == "key" else None,
            anonymous=body.anonymous,
            priority=body.priority,
            allowed_models=body.allowed_models,
            note=body.note,
            created_by=caller.actor.name,
        )
        session.add(rule)
        await session.flush()
        audit(
            session,
            caller.actor,
            "ip_rule.create",
            "ip_rule",
            rule.id,
            workspace_id=rule.workspace_id,
            after=rule_image(rule),
        )
    await caller.services.invalidation.publish("rules")
    return rule_out(rule)


@router.delete("/ip-rules/{rule_id}", status_code=204, tags=["ip-rules"])
async def delete_ip_rule(rule_id: str, caller: Owner) -> None:
    async with caller.services.db.session() as session:
        rule = await session.get(IpRule, rule_id)
        if rule is None or not (
            caller.is_admin
            or (rule.workspace_id == caller.principal.workspace_id and rule.scope != "global" and not rule.anonymous)
        ):
            raise NotFound("No such IP rule.", code="ip_rule_not_found")
        before = rule_image(rule)
        await session.delete(rule)
        audit(
            session, caller.actor, "ip_rule.delete", "ip_rule", rule_id, workspace_id=rule.workspace_id, before=before
        )
    await caller.services.invalidation.publish("rules")


# --- settings and audit ---------------------------------------------------------------------------------------


async def _settings_out(session: AsyncSession, settings: Settings) -> SettingsOut:
    stored = await stored_trusted_proxies(session)
    return SettingsOut(
        registration=await registration_mode(session, settings),
        trusted_proxies=stored if stored is not None else normalise_networks(settings.server.trusted_proxies),
        trusted_proxies_stored=stored is not None,
    )


@router.get("/settings", response_model=SettingsOut, tags=["settings"])
async def get_settings(caller: Admin) -> SettingsOut:
    async with caller.services.db.session() as session:
        return await _settings_out(session, caller.services.settings)


@router.put("/settings", response_model=SettingsOut, tags=["settings"])
async def put_settings(body: SettingsUpdate, caller: Admin) -> SettingsOut:
    """Change the registration mode or the trusted proxies (fields left out stay as they are)."""
    fields = body.model_fields_set
    settings = caller.services.settings
    async with caller.services.db.session() as session:
        before = (await _settings_out(session, settings)).model_dump()
        if body.registration is not None:
            await set_registration_mode(session, body.registration)
        if "trusted_proxies" in fields:
            await set_trusted_proxies(session, body.trusted_proxies)
        await session.flush()
        after = (await _settings_out(session, settings)).model_dump()
        changed = sorted(name for name in after if after[name] != before[name])
        audit(
            session,
            caller.actor,
            "settings.update",
            "settings",
            ",".join(sorted(fields)),
            before={name: before[name] for name in changed},
            after={name: after[name] for name in changed},
        )
    if "trusted_proxies" in fields:
        await caller.services.invalidation.publish("rules")  # every replica reloads rules and proxies together
    return SettingsOut.model_validate(after)


@router.get("/audit", response_model=list[AuditOut], tags=["audit"])
async def list_audit(
    caller: Owner,
    since: Annotated[datetime | None, Query(description="Events at or after this moment (with a time zone).")] = None,
    until: Annotated[datetime | None, Query(description="Events before this moment (with a time zone).")] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128, description="e.g. user:<id>, key:<prefix>, master")] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    workspace_id: Annotated[
        str | None, Query(max_length=64, description="Gateway admins: one workspace's events.")
    ] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Paging: events older than this id (the last page's last).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Newest first. Owners see their own workspace's events only; naming another workspace finds nothing."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (e.g. 2026-01-01T00:00:00Z).", param=name)
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("since must be before until.", param="since")
    scope = caller.workspace_scope(workspace_id)
    if not caller.is_admin and workspace_id not in (None, scope):
        return []  # another workspace: nothing, exactly like a workspace without events
    async with caller.services.db.session() as session:
        rows = await audit_events(
            session,
            workspace_id=scope,
            since=since,
            until=until,
            action=action,
            actor=actor,
            target_type=target_type,
            target_id=target_id,
            before_id=before_id,
            limit=limit,
        )
        return [
            AuditOut(
                id=r.id,
                at=r.at,
                actor=r.actor,
                action=r.action,
                target_type=r.target_type,
                target_id=r.target_id,
                workspace_id=r.workspace_id,
                before=r.before,
                after=r.after,
                request_id=r.request_id,
            )
            for r in rows
        ]
