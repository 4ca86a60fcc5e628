"""Admin page for models and deployments: live state, and models and providers managed at run time.

Models and providers from the configuration file are shown read-only; those created here are stored through
``PUT /admin/v1/models/{name}`` and ``/providers/{name}`` and reach every replica without a restart. Credentials
are write-only: the page can set an API key, never show one.
"""

from __future__ import annotations

from typing import Any

from nicegui import app, ui

from sluice.web.client import GatewayClient
from sluice.web.context import UiContext
from sluice.web.layout import attempt, confirm, frame, heading, table
from sluice.web.money import money
from sluice.web.session import require

KINDS = ["openai", "anthropic", "ollama", "azure", "gemini", "mock"]


TESTS = "provider_tests"  # user storage: the last connection test of each provider, as this admin saw it


def health_text(deployment: dict[str, Any], failed_test: str | None) -> str:
    """What the page says of a deployment's health: a failed connection test or an open circuit is never
    'healthy', whatever the last active health check said."""
    if failed_test is not None:
        return f"connection test failed: {failed_test}"
    if deployment["circuit"] == "open":
        return "unhealthy (circuit open)"
    if not deployment["healthy"]:
        return "unhealthy"
    return "healthy"


def price_text(deployment: dict[str, Any], currency: str) -> str:
    if not deployment["price_input"] and not deployment["price_output"]:
        return "free"
    return (
        f"{money(deployment['price_input'], currency)} in / {money(deployment['price_output'], currency)} out"
        " per 1M tokens"
    )


async def models_page(context: UiContext) -> None:
    client = require(context, "admin")
    if client is None:
        return
    ui.page_title("Sluice · Models")
    frame(context, "Models and deployments")
    models = await attempt(lambda: client.admin("GET", "/models")) or []
    providers = await attempt(lambda: client.admin("GET", "/providers")) or []
    tests: dict[str, dict[str, Any]] = app.storage.user.setdefault(TESTS, {})
    shown = table(
        [], ["model", "source", "deployment", "health", "circuit", "in_flight", "price", "last_error"], key="deployment"
    )
    shown.mark("deployments")

    def fill() -> None:
        def failure(provider: str) -> str | None:
            found = tests.get(provider)
            return None if found is None or found["ok"] else str(found["error"])

        shown.rows = [
            {
                "model": m["name"],
                "source": m["source"],
                "deployment": d["id"],
                "health": health_text(d, failure(d["provider"])),
                "circuit": d["circuit"],
                "in_flight": d["in_flight"],
                "price": price_text(d, context.currency),
                "last_error": d["last_error"] or "",
            }
            for m in models
            for d in m["deployments"]
        ]
        shown.update()

    fill()
    for model in [m for m in models if m["source"] == "stored"]:
        stored_model_row(client, model)
    heading("Providers", 2, "text-xl mt-4")
    for provider in providers:
        with ui.row().classes("items-center gap-3 border-b py-1").mark(f"provider-{provider['name']}"):
            ui.label(provider["name"]).classes("w-40 font-medium")
            ui.label(f"{provider['kind']} · {provider['base_url'] or 'default URL'}").classes("w-96")
            ui.label("key set" if provider["api_key_set"] else "no key").classes("text-sm")
            ui.label(provider["source"]).classes("text-sm")
            last = tests.get(provider["name"])
            verdict = ui.label(test_text(last)).classes("text-sm").mark("provider-test")

            async def run(name: str = provider["name"], label: ui.label = verdict) -> None:
                outcome = await test(client, name)
                if outcome is not None:
                    tests[name] = outcome
                    app.storage.user[TESTS] = tests
                    label.set_text(test_text(outcome))
                    fill()

            ui.button(f"Test connection to {provider['name']}", on_click=run).props("dense flat no-caps")
    provider_form(client)
    model_form(client, [p["name"] for p in providers])


def test_text(outcome: dict[str, Any] | None) -> str:
    if outcome is None:
        return "not tested"
    return "last test: reachable" if outcome["ok"] else f"last test failed: {outcome['error']}"


async def test(client: GatewayClient, name: str) -> dict[str, Any] | None:
    result = await attempt(lambda: client.admin("POST", f"/providers/{name}/test"))
    if result is None:
        return None
    if result["ok"]:
        count = len(result["models"] or [])
        ui.notify(f"{name}: reachable in {result['latency_ms']:.0f} ms, {count} models listed.", type="positive")
    else:
        ui.notify(f"{name}: {result['error']}", type="negative", multi_line=True)
    return {"ok": bool(result["ok"]), "error": result["error"]}


def stored_model_row(client: GatewayClient, model: dict[str, Any]) -> None:
    definition = dict(model["definition"] or {})
    deployments = list(definition.get("deployments", []))
    with ui.row().classes("items-center gap-3"):
        ui.label(f"{model['name']} (stored)").classes("w-48 font-medium")
        for index, deployment in enumerate(deployments):
            enabled = deployment.get("enabled", True)

            async def toggle(i: int = index, now: bool = enabled) -> None:
                changed = [dict(d) for d in deployments]
                changed[i]["enabled"] = not now
                body = {"definition": {**definition, "deployments": changed}}
                if await attempt(lambda: client.admin("PUT", f"/models/{model['name']}", json=body)):
                    ui.navigate.to("/admin/models")

            label = f"{'disable' if enabled else 'enable'} {deployment['provider']}/{deployment.get('model') or ''}"
            ui.button(f"{label} of {model['name']}", on_click=toggle).props("dense flat no-caps")

        async def remove(name: str = model["name"]) -> None:
            if await attempt(lambda: client.admin("DELETE", f"/models/{name}")) is not None:
                ui.navigate.to("/admin/models")

        ui.button(
            f"Delete {model['name']}", on_click=lambda: confirm(f"Delete the model {model['name']}?", remove, "Delete")
        ).props("dense flat no-caps color=negative")


def provider_form(client: GatewayClient) -> None:
    ui.label("Add or replace a provider").classes("text-lg mt-2")
    with ui.row().classes("items-start gap-3"):
        name = ui.input("Provider name")
        kind = ui.select(KINDS, value="openai", label="Kind").classes("w-36")
        base_url = ui.input("Base URL (e.g. http://10.0.0.5:8000/v1)").classes("w-96")
        api_key = ui.input("API key (write-only; empty keeps the stored one)", password=True).classes("w-80")
    fields = {"definition": base_url, "name": name}

    async def save() -> None:
        definition: dict[str, Any] = {"kind": kind.value}
        if base_url.value:
            definition["base_url"] = base_url.value.strip()
        if api_key.value:
            definition["api_key"] = api_key.value
        done = await attempt(
            lambda: client.admin("PUT", f"/providers/{name.value}", json={"definition": definition}), fields
        )
        if done:
            ui.navigate.to("/admin/models")

    ui.button("Save provider", on_click=save)


def model_form(client: GatewayClient, providers: list[str]) -> None:
    ui.label("Add or replace a model").classes("text-lg mt-2")
    with ui.row().classes("items-start gap-3"):
        name = ui.input("Public model name")
        provider = ui.select(providers, label="Provider").classes("w-40")
        upstream = ui.input("Upstream model (default: the public name)")
        capacity = ui.number("Capacity (concurrent)", min=1, precision=0)
        price_in = ui.number("Input price / M tokens", min=0)
        price_out = ui.number("Output price / M tokens", min=0)
    fields = {"definition": upstream, "name": name}

    async def save() -> None:
        deployment: dict[str, Any] = {"provider": provider.value}
        if upstream.value:
            deployment["model"] = upstream.value.strip()
        if capacity.value:
            deployment["capacity"] = int(capacity.value)
        definition: dict[str, Any] = {"deployments": [deployment]}
        if price_in.value is not None or price_out.value is not None:
            definition["price"] = {"input": float(price_in.value or 0), "output": float(price_out.value or 0)}
        done = await attempt(
            lambda: client.admin("PUT", f"/models/{name.value}", json={"definition": definition}), fields
        )
        if done:
            ui.navigate.to("/admin/models")

    ui.button("Save model", on_click=save)
