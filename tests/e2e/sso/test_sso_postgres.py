"""Single sign-on on PostgreSQL: the same sign-in, re-mapping, one-time state, racing first sign-ins and service
tokens as on SQLite (conditional UPDATEs, unique constraints and the migration behave alike)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sluice.store.db import Database
from tests.e2e.sso import test_service_tokens, test_sso_login
from tests.e2e.sso.conftest import SsoRig, running_rig
from tests.support.services import create_postgres_database, drop_postgres_database

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SsoRig]:
    url = create_postgres_database()

    async def migrate() -> None:
        db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        await db.migrate()
        await db.close()

    asyncio.run(migrate())
    try:
        with running_rig(tmp_path_factory.mktemp("sso-pg"), url) as made:
            yield made
    finally:
        drop_postgres_database(url)


def test_first_sign_in_and_re_mapping(rig: SsoRig) -> None:
    test_sso_login.test_first_sign_in_creates_the_user_in_the_mapped_workspace_and_role(rig)
    test_sso_login.test_a_group_change_re_maps_at_the_next_sign_in(rig)


def test_removal_takes_access_and_keys(rig: SsoRig) -> None:
    test_sso_login.test_removed_from_the_groups_loses_access_and_the_keys_follow(rig)


def test_state_once_and_racing_first_sign_ins(rig: SsoRig) -> None:
    test_sso_login.test_state_is_good_once_and_a_forged_state_is_refused(rig)
    test_sso_login.test_two_first_sign_ins_at_once_make_one_account(rig)


def test_service_token(rig: SsoRig) -> None:
    test_service_tokens.test_a_real_client_credentials_token_is_a_principal_like_any_other(rig)
