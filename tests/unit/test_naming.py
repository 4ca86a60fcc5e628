"""One name rule (issue 16 item 14, SECURITY.md case 44): no blank names, no line breaks or control characters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sluice.config import ProviderConfig
from sluice.config_loading import load_settings
from sluice.errors import ConfigError, InvalidRequest
from sluice.naming import name_problem, require_name
from sluice.providers.registry import build_provider
from sluice.routing.catalog import ModelCatalog

BAD = ["", "   ", "bad\nname", "bad\rname", "tab\tbed", "nul\x00", "esc\x1b[31m", "line\u2028sep", "rtl\u202eoverride"]
GOOD = ["gpt-4o", "ollama/llama3:8b", "Claude 3.5 Sonnet", "modèle-été", "名前"]


@pytest.mark.parametrize("name", BAD)
def test_blank_and_control_character_names_are_refused(name: str) -> None:
    assert name_problem(name) is not None
    with pytest.raises(InvalidRequest) as refused:
        require_name(name)
    assert refused.value.param == "name"


@pytest.mark.parametrize("name", GOOD)
def test_ordinary_names_pass(name: str) -> None:
    assert name_problem(name) is None


def _load(tmp_path: Path, tree: dict[str, object]) -> None:
    path = tmp_path / "sluice.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    load_settings(path, env={})


@pytest.mark.parametrize(
    "model",
    [
        {"name": "bad\nname", "deployments": [{"provider": "mock"}]},
        {"name": "ok", "aliases": ["alias\r\n"], "deployments": [{"provider": "mock"}]},
        {"name": "ok", "deployments": [{"provider": "mock", "model": "upstream\nname"}]},
        {"name": "ok", "deployments": [{"provider": "mock"}], "fallbacks": [{"model": "x\u2029y"}]},
    ],
)
def test_the_configuration_file_refuses_such_names_naming_the_field(tmp_path: Path, model: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, {"data_dir": str(tmp_path), "models": [model]})
    assert "line breaks or control characters" in str(refused.value)


def test_discovered_models_with_such_names_are_skipped(tmp_path: Path) -> None:
    provider = build_provider(ProviderConfig(name="up", kind="openai", base_url="http://127.0.0.1:9"))
    catalog = ModelCatalog({"up": provider})
    assert catalog.add_discovered(provider, ["fine-model", "evil\nmodel", "zero\u200bwidth"]) == 1
    assert catalog.has("fine-model") and not catalog.has("evil\nmodel")
