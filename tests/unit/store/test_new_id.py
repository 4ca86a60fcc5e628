"""Ids never start with a dash, which a command line would read as an option."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluice.store import types


def test_an_id_starting_with_a_dash_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: Iterator[str] = iter(["-iStartsWithADash00000", "_fineAsItIs0000000000a"])
    monkeypatch.setattr(types.secrets, "token_urlsafe", lambda _n: next(draws))
    assert types.new_id() == "_fineAsItIs0000000000a"


def test_ids_are_22_url_safe_characters_and_never_start_with_a_dash() -> None:
    ids = [types.new_id() for _ in range(5000)]  # about 78 of them would start with '-' without the redraw
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
