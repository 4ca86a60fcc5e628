"""First run without the CLI: on an install with no admin, the web UI offers creating the first admin, guarded by
a one-time setup code that ``sluice serve`` prints in its start-up banner.

The code is derived from the JWT signing secret (an HMAC), so every replica and worker prints and accepts the same
code without storing it, and it changes whenever the secret does. It works once: creating the first admin stores a
marker in ``gateway_settings`` (its primary key makes two concurrent set-ups end with exactly one admin), and from
then on — or as soon as any admin exists, however made — set-up is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from sluice.config import RegistrationMode, Settings
from sluice.errors import InvalidRequest, PermissionDenied
from sluice.identity.accounts import normalise_email
from sluice.identity.audit import Actor, audit
from sluice.identity.images import user_image
from sluice.identity.passwords import hash_password, password_problem
from sluice.identity.runtime_settings import registration_mode
from sluice.identity.user_repository import UserRepository
from sluice.store.db import Database
from sluice.store.models import DEFAULT_WORKSPACE_ID, User
from sluice.store.settings import SettingsRepository

SETUP_DONE = "first_admin_setup"  # the gateway_settings key marking that set-up has been used
_LABEL = b"sluice-first-admin-setup"


def setup_code(secret: str) -> str:
    """The code for this gateway's secret: 80 bits, as four groups of base32 (e.g. ``ABCD-EFGH-IJKL-MNOP``)."""
    digest = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
    text = base64.b32encode(digest[:10]).decode()
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def _same_code(given: str, expected: str) -> bool:
    cleaned = given.strip().upper().replace(" ", "").replace("-", "")
    return hmac.compare_digest(cleaned.encode(), expected.replace("-", "").encode())


def _done() -> PermissionDenied:
    return PermissionDenied("This gateway already has an admin: sign in instead.", code="setup_done")


async def _open(session: AsyncSession) -> bool:
    return not await UserRepository(session).any_admin() and await SettingsRepository(session).get(SETUP_DONE) is None


@dataclass(frozen=True, slots=True)
class SetupState:
    registration: RegistrationMode
    admin_setup: bool  # no admin yet: the first one can be created with the code


class FirstRun:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    async def is_open(self) -> bool:
        """Whether the first-admin set-up is offered: no admin exists and set-up has not been used."""
        async with self.db.session() as session:
            return await _open(session)

    async def state(self) -> SetupState:
        """What a signed-out browser may know: whether sign-up is offered, whether set-up is open."""
        async with self.db.session() as session:
            mode = await registration_mode(SettingsRepository(session), self.settings)
            return SetupState(mode, await _open(session))

    async def create_admin(self, secret: str, code: str, email: str, password: str) -> User:
        """Create the first admin if ``code`` is the set-up code of ``secret`` and set-up is still open."""
        if not _same_code(code, setup_code(secret)):
            raise PermissionDenied("That is not this gateway's setup code.", code="bad_setup_code")
        if not await self.is_open():
            raise _done()
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(problem, param="password")
        email = normalise_email(email)
        if "@" not in email:
            raise InvalidRequest("Enter an email address.", param="email")
        try:
            async with self.db.session() as session:
                if not await _open(session):
                    raise _done()
                # a concurrent set-up fails here (the marker's primary key), or on its own marker's flush
                if not await SettingsRepository(session).put(SETUP_DONE, {"email": email}):
                    raise _done()
                users = UserRepository(session)
                existing = await users.by_email(email)
                before = user_image(existing) if existing else None
                if existing is None:
                    user = await users.add(
                        User(email=email, password_hash=hash_password(password), status="active", is_admin=True)
                    )
                    users.add_membership(user.id, DEFAULT_WORKSPACE_ID, "owner")
                else:
                    user = existing
                    user.is_admin, user.status, user.password_hash = True, "active", hash_password(password)
                audit(
                    session, Actor("setup"), "user.create_admin", "user", user.id, before=before, after=user_image(user)
                )
        except IntegrityError:
            raise _done() from None
        return user
