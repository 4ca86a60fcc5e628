"""One rule for the names that enter Sluice: models (and their aliases and upstream names), providers, workspaces
and keys, whether from the configuration file, the admin API, the UI or the CLI.

A name is not blank and holds no control characters: no line breaks (``\\n``, ``\\r``, U+2028, U+2029), tabs, NUL,
escape sequences or invisible format characters (bidirectional overrides, zero-width characters). Such names
used to be accepted and then broke what they flowed into (headers, logs, metrics labels, the UI): a model named
with a line break made every call to it end in a 500 and a dropped connection. Each entry point turns a refusal
into its own error shape: a configuration error naming the field, a 400/422 on the admin API, exit status 1 with
the reason on the CLI.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

from sluice.errors import InvalidRequest

# Cc: C0/C1 controls (line feed, tab, escape...), Cf: format (bidi overrides, zero-width), Zl/Zp: line and
# paragraph separators, Cs: lone surrogates.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def name_problem(name: str) -> str | None:
    """Why ``name`` is not acceptable, or None."""
    if not name.strip():
        return "a name must not be empty or blank"
    for char in name:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return f"a name must not contain line breaks or control characters (found U+{ord(char):04X})"
    return None


def check_name(name: str) -> str:
    """``name`` if acceptable; ValueError with the reason otherwise (pydantic turns it into a field error)."""
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def require_name(name: str, param: str = "name") -> str:
    """``name`` if acceptable; the caller's 400 (:class:`~sluice.errors.InvalidRequest`) naming ``param`` otherwise."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidRequest(f"Invalid {param}: {problem}.", param=param)
    return name


def check_prefix(prefix: str) -> str:
    """A name's prefix: empty, or a name by the same rule."""
    return check_name(prefix) if prefix else prefix


SafeName = Annotated[str, AfterValidator(check_name)]
"""A ``str`` field holding a name that follows :func:`name_problem`'s rule."""
SafePrefix = Annotated[str, AfterValidator(check_prefix)]
