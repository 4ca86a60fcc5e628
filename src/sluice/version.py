"""The installed package's version (read once, when asked)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version


@cache
def version() -> str:
    try:
        return _distribution_version("sluice")
    except PackageNotFoundError:
        return "0+unknown"
