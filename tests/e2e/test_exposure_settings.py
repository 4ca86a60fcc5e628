"""Issue 16.12: ``observability.metrics`` is open, token or off, and ``server.docs`` turns ``/docs`` and
``/openapi.json`` off (the production profile in docs/operations.md). Before, /metrics had only open-or-token and
the API description could not be turned off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from sluice.config import ObservabilityConfig
from tests.support.server import SluiceServer, make_settings

TOKEN = "metrics-token-0123456789abcdef"


def statuses(tmp_path: Path, config: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, int]:
    with SluiceServer(make_settings(tmp_path, config)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        return {path: http.get(path, headers=headers).status_code for path in ("/metrics", "/docs", "/openapi.json")}


def test_the_defaults_serve_metrics_and_docs(tmp_path: Path) -> None:
    assert statuses(tmp_path, {}) == {"/metrics": 200, "/docs": 200, "/openapi.json": 200}


def test_the_production_profile_closes_docs_and_asks_for_the_metrics_token(tmp_path: Path) -> None:
    config = {"server": {"docs": False}, "observability": {"metrics": "token", "metrics_token": TOKEN}}
    with SluiceServer(make_settings(tmp_path, config)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/docs").status_code == 404
        assert http.get("/openapi.json").status_code == 404
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
        reply = http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 200 and "sluice_" in reply.text
        assert http.get("/health/live").status_code == 200  # health is not part of what the profile closes


def test_metrics_off_answers_404(tmp_path: Path) -> None:
    assert statuses(tmp_path, {"observability": {"metrics": "off"}})["/metrics"] == 404


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ({}, "open"),
        ({"metrics": True}, "open"),
        ({"metrics": False}, "off"),
        ({"metrics_token": TOKEN}, "token"),  # a token that is set is never ignored
        ({"metrics": True, "metrics_token": TOKEN}, "token"),
        ({"metrics": "off", "metrics_token": TOKEN}, "off"),
    ],
)
def test_the_metrics_setting_reads_old_and_new_spellings(given: dict[str, Any], mode: str) -> None:
    assert ObservabilityConfig.model_validate(given).metrics == mode


@pytest.mark.parametrize("token", [None, ""])
def test_token_mode_without_a_token_is_a_configuration_error(token: str | None) -> None:
    """An empty token (an unset variable) would let "Authorization: Bearer " in."""
    with pytest.raises(ValidationError, match="metrics_token is not set"):
        ObservabilityConfig.model_validate({"metrics": "token", "metrics_token": token})
