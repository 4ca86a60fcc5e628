"""``/admin/v1/auth/sso/…``: single sign-on through OpenID Connect providers.

``GET /auth/sso/providers`` lists the providers (the UI's "Sign in with …" buttons). A browser opens
``/auth/sso/<provider>/start`` (``?ui=true`` from the web UI) and is sent to the provider; the provider sends it
back to ``/auth/sso/<provider>/callback``, which answers Sluice's token pair as JSON, or, for the web UI, sends the
browser to ``/ui/sso?ticket=…`` whose page redeems the single-use ticket (``POST /auth/sso/ticket``) server-side.
``POST /auth/sso/logout`` ends the session and offers the provider's end-session URL.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from sluice.admin.policy import Caller, public, requires
from sluice.admin.routes_auth import access_claims, tokens_out
from sluice.admin.schemas import SsoLogout, SsoProviderOut, SsoProviders, SsoTicket, Tokens
from sluice.errors import AuthenticationFailed, SluiceError
from sluice.services import Services

router = APIRouter(tags=["auth"])

Public = Annotated[Services, Depends(public)]
UI_LANDING = "/ui/sso"
UI_LOGIN = "/ui/login"
PREFIX = "/admin/v1"


def _base(request: Request, services: Services) -> str:
    configured = services.settings.sso.public_url
    return (configured or str(request.base_url)).rstrip("/")


def _callback_url(request: Request, services: Services, provider: str) -> str:
    return f"{_base(request, services)}{PREFIX}/auth/sso/{provider}/callback"


def _wants_page(request: Request, services: Services) -> bool:
    """A browser navigating (not an API client): errors become the UI's sign-in page with the message."""
    return services.settings.ui and "text/html" in request.headers.get("accept", "")


@router.get("/auth/sso/providers", response_model=SsoProviders)
async def sso_providers(services: Public) -> SsoProviders:
    return SsoProviders(
        providers=[
            SsoProviderOut(name=p.name, label=p.label, start_url=f"{PREFIX}/auth/sso/{p.name}/start?ui=true")
            for p in services.sso.providers()
        ],
        password_login=services.settings.sso.password_login,
    )


@router.get("/auth/sso/{provider}/start", status_code=302, response_class=RedirectResponse)
async def sso_start(
    provider: str, request: Request, services: Public, ui: Annotated[bool, Query()] = False
) -> Response:
    """Send the browser to the provider's sign-in page (authorization code flow with PKCE, state and nonce)."""
    try:
        for_ui = ui and services.settings.ui
        url = await services.sso.start(provider, _callback_url(request, services, provider), for_ui)
    except SluiceError as exc:
        if ui and _wants_page(request, services):
            return RedirectResponse(f"{UI_LOGIN}?sso_error={quote(exc.message)}", status_code=303)
        raise
    return RedirectResponse(url, status_code=302)


@router.get("/auth/sso/{provider}/callback", response_model=Tokens)
async def sso_callback(
    provider: str,
    request: Request,
    services: Public,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response | Tokens:
    """Where the provider sends the browser back: tokens (JSON), or the UI's landing page with a ticket."""
    try:
        if error is not None:
            raise AuthenticationFailed(
                f"The identity provider refused the sign-in: {error_description or error}", code="sso_refused"
            )
        if not code or not state:
            raise AuthenticationFailed("The sign-in came back without a code and state.", code="sso_invalid_state")
        finished = await services.sso.finish(provider, code, state, _callback_url(request, services, provider))
    except SluiceError as exc:
        if _wants_page(request, services):
            return RedirectResponse(f"{UI_LOGIN}?sso_error={quote(exc.message)}", status_code=303)
        raise
    if finished.ticket is not None:
        return RedirectResponse(f"{UI_LANDING}?ticket={quote(finished.ticket)}", status_code=303)
    assert finished.tokens is not None
    return tokens_out(finished.tokens)


@router.post("/auth/sso/ticket", response_model=Tokens)
async def sso_ticket(body: SsoTicket, services: Public) -> Tokens:
    """Redeem the single-use ticket a UI sign-in ended with (the UI does this server-side)."""
    return tokens_out(await services.sso.redeem_ticket(body.ticket))


@router.post("/auth/sso/logout", response_model=SsoLogout)
async def sso_logout(
    request: Request,
    caller: Annotated[Caller, Depends(requires("viewer"))],
    after: Annotated[str | None, Query(max_length=2000)] = None,
) -> SsoLogout:
    """End this session; offer the identity provider's logout page (``after``: where it sends the browser then)."""
    services = caller.services
    claims = access_claims(request, services)
    await services.accounts.logout(claims)
    return SsoLogout(end_session_url=await services.sso.logout_url(claims.user_id, after))
