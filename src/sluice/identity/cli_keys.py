"""``sluice keys create|list|edit|revoke``: API keys from the operator's side (the database directly).

Users create their own keys through the API or the UI, within their grants; an operator makes one for a user with
``--user`` (in a workspace the user belongs to). The commands parse their options and call the API's own
:class:`sluice.identity.key_service.KeyService`, so a key made here obeys the same rules and reads the same in the
audit log (actor ``cli``); running gateways sharing Redis drop a changed key at once (otherwise within
``key_cache.ttl_seconds``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from sluice.cli_common import ConfigOpt, DataDirOpt, out
from sluice.identity.cli import keys_cli, operator, usage
from sluice.identity.grants import KEY_ROLES, OPERATOR
from sluice.identity.key_service import KeyTerms, NewKey
from sluice.identity.principal import PRIORITY_ORDER
from sluice.identity.service import IdentityService
from sluice.store.models import DEFAULT_WORKSPACE_ID, ApiKey


def model_list(text: str) -> list[str]:
    """``a,b`` → ["a", "b"] (blank entries dropped)."""
    return [m.strip() for m in text.split(",") if m.strip()]


def models_change(models: str | None, all_models: bool) -> dict[str, Any]:
    """``--models a,b`` or ``--all-models`` as the change they ask for (none when neither is given)."""
    if models is not None and all_models:
        raise usage("Give either --models or --all-models.")
    if models is None and not all_models:
        return {}
    return {"allowed_models": None if all_models else model_list(models or "")}


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", "-n", help="A label for the key.")],
    models: Annotated[str | None, typer.Option(help="Comma-separated models the key may use (default all).")] = None,
    priority: Annotated[str, typer.Option(help=f"Priority class: {', '.join(PRIORITY_ORDER)}.")] = "standard",
    user: Annotated[str | None, typer.Option(help="Owner of the key: a user's id or email.")] = None,
    workspace: Annotated[str, typer.Option(help="Workspace id the key belongs to.")] = DEFAULT_WORKSPACE_ID,
    role: Annotated[str, typer.Option(help="Role the key acts with: admin, owner, member or viewer.")] = "member",
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this many days.")] = None,
    ip_allow: Annotated[
        list[str] | None, typer.Option("--ip-allow", help="A network the key may be used from (repeatable).")
    ] = None,
    cache: Annotated[
        bool | None,
        typer.Option("--cache/--no-cache", help="Cache this key's answers, or never (default: as the model says)."),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a virtual key; the key is shown once and never again."""
    op = operator(config, data_dir)
    if priority not in PRIORITY_ORDER or role not in KEY_ROLES:
        raise usage(f"Unknown priority class or role (classes: {', '.join(PRIORITY_ORDER)}).")
    if expires_in_days is not None and expires_in_days <= 0:
        raise usage("--expires-in-days must be positive.")
    terms = KeyTerms(
        name=name,
        workspace_id=workspace,
        role=role,
        priority=priority,
        allowed_models=model_list(models) if models else None,
        expires_at=datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None,
        ip_allow=tuple(ip_allow or ()),
        cache=cache,
    )

    async def work(identity: IdentityService) -> NewKey:
        owner = await identity.users.find(user) if user else None
        return await identity.keys.create(OPERATOR, replace(terms, user_id=owner.id if owner else None))

    new = op.run(work)
    out.print(f"Created key {new.key.id} ({new.key.prefix}…). Copy it now; it is not shown again:")
    out.print(new.secret, markup=False, highlight=False)
    op.told()


@keys_cli.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List keys (never the secrets: only their visible prefixes)."""
    rows = operator(config, data_dir).run(lambda identity: identity.keys.list(OPERATOR, include_revoked=all_keys))
    table = Table(
        "id", "name", "prefix", "workspace", "user", "models", "priority", "cache", "created", "expires", "status"
    )
    for key in rows:
        table.add_row(
            key.id,
            key.name,
            key.prefix + "…",
            key.workspace_id,
            key.user_id or "-",
            ",".join(key.allowed_models) if key.allowed_models is not None else "all",
            key.priority,
            {True: "on", False: "off", None: "-"}[key.cache],
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            key.expires_at.strftime("%Y-%m-%d %H:%M") if key.expires_at else "-",
            "revoked" if key.revoked_at else "active",
        )
    out.print(table)


@keys_cli.command("revoke")
def keys_revoke(
    ident: Annotated[str, typer.Argument(help="The key's id or its visible prefix.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Revoke a key: at once on gateways sharing Redis, otherwise within the key cache lifetime (30 s)."""
    op = operator(config, data_dir)

    async def work(identity: IdentityService) -> ApiKey:
        return await identity.keys.revoke(OPERATOR, (await identity.keys.find(ident)).id)

    key = op.run(work)
    out.print(f"Revoked key {key.id} ({key.prefix}…).")
    op.told()


@keys_cli.command("edit")
def keys_edit(
    ident: Annotated[str, typer.Argument(help="The key's id or its visible prefix.")],
    name: Annotated[str | None, typer.Option("--name", "-n", help="A new label.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models the key may use.")] = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Let the key use every model.")] = False,
    priority: Annotated[str | None, typer.Option(help=f"Priority class: {', '.join(PRIORITY_ORDER)}.")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Expire this many days from now.")] = None,
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Never expire.")] = False,
    cache: Annotated[
        str | None, typer.Option(help="Response caching for this key: on, off, or model (as the model says).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Rename a key or change its models, priority class, expiry or caching (the secret stays the same)."""
    op = operator(config, data_dir)
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    changes.update(models_change(models, all_models))
    if priority is not None:
        if priority not in PRIORITY_ORDER:
            raise usage(f"Unknown priority class (known: {', '.join(PRIORITY_ORDER)}).")
        changes["priority"] = priority
    changes.update(_expiry_change(expires_in_days, no_expiry))
    if cache is not None:
        changes["cache"] = _cache_setting(cache)
    if not changes:
        raise usage(
            "Nothing to change: give --name, --models, --all-models, --priority, --expires-in-days, --no-expiry"
            " or --cache."
        )

    async def work(identity: IdentityService) -> ApiKey:
        return await identity.keys.edit(OPERATOR, (await identity.keys.find(ident)).id, changes)

    key = op.run(work)
    out.print(f"Updated key {key.id} ({key.prefix}…).", markup=False)
    op.told()


def _expiry_change(expires_in_days: float | None, no_expiry: bool) -> dict[str, Any]:
    if expires_in_days is not None and no_expiry:
        raise usage("Give either --expires-in-days or --no-expiry.")
    if expires_in_days is None and not no_expiry:
        return {}
    if expires_in_days is not None and expires_in_days <= 0:
        raise usage("--expires-in-days must be positive.")
    return {"expires_at": datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None}


def _cache_setting(value: str) -> bool | None:
    settings = {"on": True, "off": False, "model": None}
    if value not in settings:
        raise usage("--cache takes on, off or model.")
    return settings[value]
