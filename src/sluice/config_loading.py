"""Reading the configuration: the YAML file, ``${ENV}`` references, ``SLUICE_*`` variables, the SDKs' own
variables, and validation into :class:`~sluice.config.Settings` with every problem reported by its path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sluice.config import Settings
from sluice.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _expand(value: Any, env: dict[str, str], path: str, problems: list[str]) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(repl, value)
    return value


def _set_path(tree: dict[str, Any], dotted: list[str], value: str) -> None:
    node = tree
    for part in dotted[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[dotted[-1]] = value


_ENV_SHORTCUTS = {
    "SLUICE_HOST": ["server", "host"],
    "SLUICE_PORT": ["server", "port"],
    "SLUICE_DATA_DIR": ["data_dir"],
    "SLUICE_DATABASE_URL": ["database_url"],
    "SLUICE_REDIS_URL": ["redis_url"],
    "SLUICE_MASTER_KEY": ["master_key"],
    "SLUICE_DEV_MODE": ["dev_mode"],
    "SLUICE_LOG_LEVEL": ["logging", "level"],
    "SLUICE_LOG_FORMAT": ["logging", "format"],
    "SLUICE_MAX_BODY_BYTES": ["server", "max_body_bytes"],
    "SLUICE_BUILTIN_MOCK": ["builtin_mock"],
    "SLUICE_UI": ["ui"],
    "SLUICE_UI_SECURE_COOKIE": ["ui_secure_cookie"],
    "SLUICE_JWT_SECRET": ["auth", "jwt_secret"],
    "SLUICE_REGISTRATION": ["auth", "registration"],
    "SLUICE_ADMIN_EMAIL": ["auth", "admin_email"],
    "SLUICE_ADMIN_PASSWORD": ["auth", "admin_password"],
}


def _apply_env(tree: dict[str, Any], env: dict[str, str]) -> None:
    """``SLUICE_SERVER__PORT=8080`` sets ``server.port``; a few short names exist for the common ones."""
    for name, path in _ENV_SHORTCUTS.items():
        if name in env:
            _set_path(tree, path, env[name])
    for name, value in env.items():
        if name.startswith("SLUICE_") and "__" in name:
            _set_path(tree, [p.lower() for p in name[len("SLUICE_") :].split("__")], value)


def _providers_from_env(tree: dict[str, Any], env: dict[str, str]) -> None:
    """The upstreams the official SDKs' own variables describe, each with its models discovered."""
    providers: list[dict[str, Any]] = tree.setdefault("providers", []) or []
    tree["providers"] = providers
    taken = {p.get("name") for p in providers if isinstance(p, dict)}

    def add(name: str, entry: dict[str, Any]) -> None:
        if name not in taken:
            providers.append({"name": name, "discover_models": True, **entry})

    if env.get("OPENAI_API_KEY"):
        add(
            "openai",
            {
                "kind": "openai",
                "base_url": env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
                "api_key": env["OPENAI_API_KEY"],
            },
        )
    if env.get("ANTHROPIC_API_KEY"):
        add(
            "anthropic",
            {
                "kind": "anthropic",
                "base_url": env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
                "api_key": env["ANTHROPIC_API_KEY"],
            },
        )
    if env.get("OLLAMA_HOST"):
        host = env["OLLAMA_HOST"]
        if not host.startswith(("http://", "https://")):
            host = f"http://{host}"
        add("ollama", {"kind": "ollama", "base_url": host})


def _format_validation(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = err["msg"].removeprefix("Value error, ")
        if not path:
            # Cross-field checks report several "path: message" problems joined by "; ".
            problems.extend(message.split("; "))
            continue
        problems.append(f"{path}: {message}")
    return problems


def load_settings(
    config_path: str | Path | None = None,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate the configuration; raise :class:`ConfigError` listing every problem."""
    env = dict(os.environ) if env is None else env
    problems: list[str] = []
    tree: dict[str, Any] = {}
    path = config_path or env.get("SLUICE_CONFIG")
    if path:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: file not found"]) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise ConfigError([f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError([f"{path}: the top level must be a mapping"])
        tree = _expand(raw or {}, env, "", problems)
    _apply_env(tree, env)
    _providers_from_env(tree, env)
    for key, value in (overrides or {}).items():
        _set_path(tree, key.split("."), value)
    if path:
        tree["source"] = str(path)
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        problems.extend(_format_validation(exc))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return settings
