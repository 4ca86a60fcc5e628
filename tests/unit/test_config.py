"""Configuration loading: file + environment, env references, and problems reported with their paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.config import normalise_database_url
from sluice.config_loading import load_settings
from sluice.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sluice.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(env={})
    assert settings.server.host == "127.0.0.1" and settings.server.port == 4000
    assert settings.builtin_mock and settings.providers == [] and settings.models == []
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")


def test_env_references_are_resolved(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
providers:
  - name: up
    kind: openai
    base_url: ${UP_URL:-http://127.0.0.1:9000/v1}
    api_key: ${UP_KEY}
models:
  - name: m
    deployments: [{provider: up, model: real-m}]
""",
    )
    settings = load_settings(path, env={"UP_KEY": "secret-value"})
    provider = settings.providers[0]
    assert provider.base_url == "http://127.0.0.1:9000/v1"
    assert provider.api_key is not None and provider.api_key.get_secret_value() == "secret-value"
    assert "secret-value" not in repr(settings)


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {port: 99999}
providers:
  - {name: up, kind: openai, base_url: "ftp://nope", api_key: "${MISSING}"}
  - {name: bad, kind: wizard}
models:
  - name: m
    deployments: [{provider: ghost}]
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    problems = caught.value.problems
    joined = "\n".join(problems)
    assert "providers[0].api_key: environment variable MISSING is not set" in joined
    assert any(p.startswith("server.port:") for p in problems)
    assert any(p.startswith("providers[0].base_url:") for p in problems)
    assert any(p.startswith("providers[1].kind:") for p in problems)


def test_unknown_provider_reference_names_the_deployment(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  - name: m\n    deployments: [{provider: ghost}]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.problems == ["models[0].deployments[0].provider: unknown provider 'ghost' (known: mock)"]


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "sever: {port: 1}\n"), env={})
    assert caught.value.problems[0].startswith("sever:")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "models: [\n  - x: 1\n"), env={})
    assert "line" in caught.value.problems[0]


def test_missing_file_is_a_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.yaml", env={})
    assert caught.value.problems == [f"{tmp_path / 'absent.yaml'}: file not found"]


def test_sluice_environment_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {port: 5000}\n")
    settings = load_settings(path, env={"SLUICE_PORT": "6000", "SLUICE_LOGGING__LEVEL": "debug"})
    assert settings.server.port == 6000
    assert settings.logging.level == "debug"


def test_sdk_environment_variables_add_providers_with_discovery() -> None:
    env = {
        "OPENAI_API_KEY": "sk-a",
        "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1",
        "ANTHROPIC_API_KEY": "sk-b",
        "OLLAMA_HOST": "127.0.0.1:11434",
    }
    settings = load_settings(env=env)
    by_name = {p.name: p for p in settings.providers}
    assert by_name["openai"].base_url == "http://127.0.0.1:8000/v1"
    assert by_name["anthropic"].kind == "anthropic"
    assert by_name["ollama"].base_url == "http://127.0.0.1:11434"
    assert all(p.discover_models for p in settings.providers)


def test_database_urls_pick_async_drivers() -> None:
    assert normalise_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_database_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalise_database_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalise_database_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
