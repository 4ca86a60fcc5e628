"""``/admin/v1/setup``: what a signed-out browser needs to know about this gateway, and the first run.

``GET`` tells whether sign-up is offered (the registration mode) and whether the first-admin set-up is open (no
admin yet). ``POST`` creates the first admin with the one-time setup code ``sluice serve`` prints in its start-up
banner (see :mod:`sluice.identity.first_run`); once any admin exists it is refused.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from sluice.admin.policy import public
from sluice.admin.routes_auth import user_out
from sluice.admin.schemas import Body, UserOut
from sluice.config import RegistrationMode
from sluice.services import Services

router = APIRouter(tags=["setup"])

Public = Annotated[Services, Depends(public)]


class SetupState(BaseModel):
    registration: RegistrationMode = Field(description="closed: no sign-up form; invite; approval.")
    admin_setup: bool = Field(description="No admin exists yet: the first one can be created with the setup code.")


class FirstAdmin(Body):
    code: str = Field(min_length=1, max_length=64, description="The setup code `sluice serve` printed.")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


@router.get("/setup", response_model=SetupState)
async def setup_state(services: Public) -> SetupState:
    state = await services.identity.first_run.state()
    return SetupState(registration=state.registration, admin_setup=state.admin_setup)


@router.post("/setup", status_code=201, response_model=UserOut)
async def first_admin(body: FirstAdmin, services: Public) -> UserOut:
    first_run = services.identity.first_run
    user = await first_run.create_admin(services.accounts.codec.secret, body.code, body.email, body.password)
    return user_out(user)
