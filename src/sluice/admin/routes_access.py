"""``/admin/v1/invites``, ``/ip-rules``, ``/settings`` and ``/audit``.

Registration tokens are created by admins (any workspace) and by workspace owners (their own, with a role no
higher than theirs); the token is shown once and only its hash is kept. IP rules: admins manage global and
anonymous-network rules; owners manage the rules of their own workspace and its keys. The rules are the identity
services' (:class:`~sluice.identity.invite_service.InviteService`,
:class:`~sluice.identity.access_service.AccessService`), shared with the CLI; these routes parse, declare the least
role, call them and render.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sluice.admin.policy import Caller, requires
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
from sluice.errors import InvalidRequest
from sluice.identity.access_service import GatewaySettings, RuleTerms
from sluice.identity.audit import AuditQuery
from sluice.store.models import IpRule, RegistrationToken

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
    return [invite_out(i) for i in await caller.identity.invites.list(caller)]


@router.post("/invites", status_code=201, response_model=InviteCreated, tags=["invites"])
async def create_invite(body: InviteCreate, caller: Owner) -> InviteCreated:
    new = await caller.identity.invites.create(
        caller, workspace_id=body.workspace_id, role=body.role, hours=body.expires_in_hours, note=body.note
    )
    return InviteCreated(**invite_out(new.invite).model_dump(), token=new.token)


@router.delete("/invites/{invite_id}", response_model=InviteOut, tags=["invites"])
async def revoke_invite(invite_id: str, caller: Owner) -> InviteOut:
    return invite_out(await caller.identity.invites.revoke(caller, invite_id))


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
    return [rule_out(r) for r in await caller.identity.access.rules(caller)]


@router.post("/ip-rules", status_code=201, response_model=IpRuleOut, tags=["ip-rules"])
async def create_ip_rule(body: IpRuleCreate, caller: Owner) -> IpRuleOut:
    terms = RuleTerms(
        cidr=body.cidr,
        scope=body.scope,
        workspace_id=body.workspace_id,
        key_id=body.key_id,
        anonymous=body.anonymous,
        priority=body.priority,
        allowed_models=body.allowed_models,
        note=body.note,
    )
    return rule_out(await caller.identity.access.create_rule(caller, terms))


@router.delete("/ip-rules/{rule_id}", status_code=204, tags=["ip-rules"])
async def delete_ip_rule(rule_id: str, caller: Owner) -> None:
    await caller.identity.access.delete_rule(caller, rule_id)


# --- settings and audit ---------------------------------------------------------------------------------------


def settings_out(settings: GatewaySettings) -> SettingsOut:
    return SettingsOut.model_validate(asdict(settings))


@router.get("/settings", response_model=SettingsOut, tags=["settings"])
async def get_settings(caller: Admin) -> SettingsOut:
    return settings_out(await caller.identity.access.gateway_settings())


@router.put("/settings", response_model=SettingsOut, tags=["settings"])
async def put_settings(body: SettingsUpdate, caller: Admin) -> SettingsOut:
    """Change the registration mode or the trusted proxies (fields left out stay as they are)."""
    changes = body.model_dump(include=body.model_fields_set)
    return settings_out(await caller.identity.access.update_settings(caller, changes))


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
    query = AuditQuery(workspace_id, since, until, action, actor, target_type, target_id, before_id, limit)
    rows = await caller.identity.access.audit_log(caller, query)
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
