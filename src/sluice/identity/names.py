"""Display names for ids: users by email, keys by name and visible prefix, workspaces by name.

Other rooms store identity's ids (a usage record names its user, key and workspace by id); API answers that show
such records ask :meth:`sluice.identity.subjects.Subjects.display_names` for the names, one query per kind for a
whole page of records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KeyName:
    name: str
    prefix: str


@dataclass(slots=True)
class DisplayNames:
    users: dict[str, str] = field(default_factory=dict)  # id → email
    keys: dict[str, KeyName] = field(default_factory=dict)
    workspaces: dict[str, str] = field(default_factory=dict)  # id → name


def distinct_ids(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})
