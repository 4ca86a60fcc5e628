"""Issue 16 item 14, SECURITY.md case 44: names with line breaks or control characters are refused wherever they
enter (admin API, CLI; the configuration file in tests/unit/test_naming.py), in the caller's error shape, so no
call can ever reach one and fail with a 500."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from typer.testing import CliRunner

from sluice.cli import cli as sluice_cli
from tests.support.server import MASTER_KEY, SluiceServer, make_settings

BAD_NAMES = ["bad\nname", "bad\r\nname", "esc\x1bname", "line\u2028sep"]


def admin(server: SluiceServer, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    return httpx.request(method, f"{server.url}/admin/v1{path}", headers=headers, timeout=30, **kw)


def refused(response: httpx.Response) -> bool:
    return (response.status_code in (400, 422) and "error" in response.json()) or "detail" in response.json()


def test_the_admin_api_refuses_such_names_for_models_providers_workspaces_and_keys(tmp_path: Path) -> None:
    with SluiceServer(make_settings(tmp_path / "data")) as server:
        for name in BAD_NAMES:
            model = admin(
                server,
                "PUT",
                f"/models/{quote(name, safe='')}",
                json={"definition": {"deployments": [{"provider": "mock"}]}},
            )
            assert model.status_code == 400 and "control characters" in model.json()["error"]["message"], model.text
            alias = {"deployments": [{"provider": "mock", "model": name}], "aliases": ["fine"]}
            assert admin(server, "PUT", "/models/fine-model", json={"definition": alias}).status_code == 400
            provider = admin(
                server,
                "PUT",
                f"/providers/{quote(name, safe='')}",
                json={"definition": {"kind": "openai", "base_url": "http://127.0.0.1:9"}},
            )
            assert provider.status_code == 400, provider.text
            workspace = admin(server, "POST", "/workspaces", json={"name": name})
            assert workspace.status_code == 400 and workspace.json()["error"]["param"] == "name", workspace.text
            key = admin(server, "POST", "/keys", json={"name": name, "workspace_id": "default"})
            assert key.status_code == 400 and key.json()["error"]["param"] == "name", key.text
        ws = admin(server, "POST", "/workspaces", json={"name": "fine"}).json()["id"]
        assert admin(server, "PATCH", f"/workspaces/{ws}", json={"name": "a\nb"}).status_code == 400
        key = admin(server, "POST", "/keys", json={"name": "fine", "workspace_id": "default"}).json()["id"]
        assert admin(server, "PATCH", f"/keys/{key}", json={"name": "a\tb"}).status_code == 400
        # Nothing was stored, so a call naming it is an ordinary unknown model, in the caller's shape.
        call = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "bad\nname", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert call.status_code == 404 and call.json()["error"]["code"] == "model_not_found", call.text
        assert "bad\nname" not in {m["name"] for m in admin(server, "GET", "/models").json()}


def test_the_cli_refuses_such_names_with_the_reason(tmp_path: Path) -> None:
    unset = {k: None for k in os.environ if k.startswith("SLUICE_")}
    base = ["--data-dir", str(tmp_path / "data")]
    for name in BAD_NAMES:
        result = CliRunner().invoke(sluice_cli, ["keys", "create", "--name", name, *base], env=unset)
        assert result.exit_code == 1, result.output
        assert "control characters" in result.stderr
    assert CliRunner().invoke(sluice_cli, ["keys", "create", "--name", "fine", *base], env=unset).exit_code == 0
