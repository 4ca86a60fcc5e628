"""Checks a form runs as you type, before anything is sent: each returns the message to show, or None.

They only spare a round trip: the gateway validates everything again and its answer (shown on the field it names)
is the one that counts.
"""

from __future__ import annotations

import ipaddress
from datetime import date


def cidr_problem(value: str | None) -> str | None:
    """A network such as 10.0.0.0/8 or a single address; empty passes (the field may be optional)."""
    if not value or not value.strip():
        return None
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return "Enter a network such as 10.0.0.0/8"
    return None


def cidrs_problem(value: str | None) -> str | None:
    """A comma-separated list of networks."""
    for part in (value or "").split(","):
        problem = cidr_problem(part)
        if problem is not None:
            return f"{part.strip()!r} is not a network (e.g. 10.0.0.0/8)"
    return None


def date_problem(value: str | None) -> str | None:
    """A day written YYYY-MM-DD; empty passes."""
    if not value or not value.strip():
        return None
    try:
        date.fromisoformat(value.strip())
    except ValueError:
        return "Use the form YYYY-MM-DD"
    return None
