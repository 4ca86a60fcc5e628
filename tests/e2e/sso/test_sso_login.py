"""People signing in through a real OpenID Connect provider: accounts made just in time in the mapped workspace
and role, re-mapped at every sign-in, access (and keys) lost with the groups, state replay refused, logout."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy import select

from sluice.store.models import SsoLogin
from sluice.store.types import utcnow
from tests.e2e.sso.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PLAIN, PROVIDER, SsoRig, callback_url

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_first_sign_in_creates_the_user_in_the_mapped_workspace_and_role(rig: SsoRig) -> None:
    rig.idp.set_account("alice", ["llm-users", "unrelated"])
    tokens = rig.tokens("alice")
    me = rig.me(tokens["access_token"]).json()
    assert (me["kind"], me["role"], me["workspace_id"]) == ("user", "member", "default")
    assert me["user"]["email"] == "alice@example.com"
    user = rig.user("alice@example.com")
    assert user["status"] == "active" and user["password_login"] is False and user["is_admin"] is False
    assert rig.memberships(user["id"]) == {"default": "member"}
    # The session is Sluice's own: it calls models and refreshes like a password sign-in's.
    chat = httpx.post(f"{rig.url}/v1/chat/completions", json=CHAT, headers=bearer(tokens["access_token"]), timeout=30)
    assert chat.status_code == 200, chat.text
    refreshed = httpx.post(
        f"{rig.url}/admin/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=30
    )
    assert refreshed.status_code == 200
    # The account has no password to sign in with.
    login = httpx.post(
        f"{rig.url}/admin/v1/auth/login", json={"email": "alice@example.com", "password": "whatever-123"}, timeout=30
    )
    assert login.status_code == 401


def test_a_group_change_re_maps_at_the_next_sign_in(rig: SsoRig) -> None:
    rig.idp.set_account("bob", ["llm-users", "research"])
    rig.tokens("bob")
    user = rig.user("bob@example.com")
    assert rig.memberships(user["id"]) == {"default": "member", "research": "viewer"}
    assert user["priority"] == "batch"

    rig.idp.set_account("bob", ["llm-leads"])  # promoted, and out of research
    tokens = rig.tokens("bob")
    user = rig.user("bob@example.com")
    assert rig.memberships(user["id"]) == {"default": "owner"}
    assert user["priority"] == "interactive"
    assert rig.me(tokens["access_token"]).json()["role"] == "owner"

    rig.idp.set_account("bob", ["sluice-admins"])
    tokens = rig.tokens("bob")
    assert rig.user("bob@example.com")["is_admin"] is True
    assert rig.me(tokens["access_token"]).json()["role"] == "admin"
    events = rig.admin.get("/audit", params={"target_id": user["id"]}).json()
    actions = [e["action"] for e in (events["data"] if isinstance(events, dict) else events)]
    assert actions.count("user.sso_remap") >= 2


def test_a_membership_an_admin_made_by_hand_stays(rig: SsoRig) -> None:
    rig.idp.set_account("erin", ["llm-users"])
    rig.tokens("erin")
    user = rig.user("erin@example.com")
    research = next(w["id"] for w in rig.admin.get("/workspaces").json() if w["name"] == "research")
    put = rig.admin.put(f"/workspaces/{research}/members/{user['id']}", json={"role": "member"})
    assert put.status_code == 200, put.text
    rig.tokens("erin")
    assert rig.memberships(user["id"]) == {"default": "member", "research": "member"}


def test_removed_from_the_groups_loses_access_and_the_keys_follow(rig: SsoRig) -> None:
    rig.idp.set_account("carol", ["llm-users"])
    tokens = rig.tokens("carol")
    created = httpx.post(
        f"{rig.url}/admin/v1/keys", json={"name": "carol-key"}, headers=bearer(tokens["access_token"]), timeout=30
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert httpx.post(f"{rig.url}/v1/chat/completions", json=CHAT, headers=bearer(key), timeout=30).status_code == 200

    rig.idp.set_account("carol", ["unrelated"])
    refused = rig.sign_in("carol")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "sso_no_access"
    user = rig.user("carol@example.com")
    assert rig.memberships(user["id"]) == {}
    # The session she had and the key she made stop at once (the change was announced).
    assert rig.me(tokens["access_token"]).status_code == 401
    chat = httpx.post(f"{rig.url}/v1/chat/completions", json=CHAT, headers=bearer(key), timeout=30)
    assert chat.status_code == 401, chat.text


def test_no_account_is_made_for_someone_in_no_mapped_group(rig: SsoRig) -> None:
    rig.idp.set_account("mallory", ["unrelated"])
    refused = rig.sign_in("mallory")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_no_access"
    assert [u for u in rig.admin.get("/users").json() if u["email"] == "mallory@example.com"] == []


def test_an_existing_account_is_linked_only_with_a_verified_email(rig: SsoRig) -> None:
    made = rig.admin.post("/users", json={"email": "dave@example.com", "workspace_id": "default", "role": "viewer"})
    assert made.status_code == 201, made.text
    rig.idp.set_account("dave-unverified", ["llm-users"], email="dave@example.com", verified=False)
    refused = rig.sign_in("dave-unverified")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_email_unverified"
    rig.idp.set_account("dave", ["llm-users"], email="dave@example.com")
    tokens = rig.tokens("dave")
    assert tokens["user_id"] == made.json()["user"]["id"]
    assert rig.memberships(tokens["user_id"]) == {"default": "member"}


def test_state_is_good_once_and_a_forged_state_is_refused(rig: SsoRig) -> None:
    rig.idp.set_account("frank", ["llm-users"])
    with rig.browser_client() as client:
        start = f"{rig.url}/admin/v1/auth/sso/{PROVIDER}/start"
        callback = rig.idp.walk(client, start, "frank", stop_at=callback_url(rig.url))
        assert client.get(callback).status_code == 200
        replayed = client.get(callback)
        assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "sso_invalid_state"
        forged = client.get(callback_url(rig.url), params={"code": "x", "state": "made-up"})
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "sso_invalid_state"


def test_a_code_with_another_sign_ins_state_fails_pkce(rig: SsoRig) -> None:
    rig.idp.set_account("grace", ["llm-users"])
    start = f"{rig.url}/admin/v1/auth/sso/{PROVIDER}/start"
    with rig.browser_client() as first, rig.browser_client() as second:
        one = httpx.URL(rig.idp.walk(first, start, "grace", stop_at=callback_url(rig.url)))
        two = httpx.URL(rig.idp.walk(second, start, "grace", stop_at=callback_url(rig.url)))
        # The attacker's code with the victim's state: the verifier of that state does not match the code.
        mixed = first.get(callback_url(rig.url), params={"code": one.params["code"], "state": two.params["state"]})
        assert mixed.status_code == 401 and mixed.json()["error"]["code"] == "sso_code_refused"


def test_the_provider_saying_no_is_a_clear_refusal(rig: SsoRig) -> None:
    refused = httpx.get(
        callback_url(rig.url), params={"error": "access_denied", "error_description": "User said no"}, timeout=30
    )
    assert refused.status_code == 401
    assert "User said no" in refused.json()["error"]["message"]
    unknown = httpx.get(f"{rig.url}/admin/v1/auth/sso/nope/start", timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "sso_provider_not_found"


def test_logout_ends_the_session_and_offers_the_providers_logout(rig: SsoRig) -> None:
    rig.idp.set_account("heidi", ["llm-users"])
    tokens = rig.tokens("heidi")
    after = f"{rig.url}/ui/login"
    out = httpx.post(
        f"{rig.url}/admin/v1/auth/sso/logout",
        params={"after": after},
        headers=bearer(tokens["access_token"]),
        timeout=30,
    )
    assert out.status_code == 200, out.text
    url = httpx.URL(out.json()["end_session_url"])
    assert str(url).startswith(rig.idp.issuer) and url.params["client_id"] == "sluice"
    assert url.params["post_logout_redirect_uri"] == after
    assert httpx.get(str(url), timeout=30).status_code == 200  # the provider's own logout page answers
    assert rig.me(tokens["access_token"]).status_code == 401
    refresh = httpx.post(
        f"{rig.url}/admin/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=30
    )
    assert refresh.status_code == 401
    # A password user's logout offers no provider page.
    admin = httpx.post(
        f"{rig.url}/admin/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
    ).json()
    out = httpx.post(f"{rig.url}/admin/v1/auth/sso/logout", headers=bearer(admin["access_token"]), timeout=30)
    assert out.status_code == 200 and out.json()["end_session_url"] is None


def test_providers_are_listed_for_the_sign_in_page(rig: SsoRig) -> None:
    listed = httpx.get(f"{rig.url}/admin/v1/auth/sso/providers", timeout=30).json()
    assert listed["password_login"] is True
    assert listed["providers"] == [
        {"name": PROVIDER, "label": "Test IdP", "start_url": f"/admin/v1/auth/sso/{PROVIDER}/start?ui=true"},
        {"name": "down", "label": "Down IdP", "start_url": "/admin/v1/auth/sso/down/start?ui=true"},
        {"name": PLAIN, "label": "Plain IdP", "start_url": f"/admin/v1/auth/sso/{PLAIN}/start?ui=true"},
    ]


def test_a_provider_that_is_down_is_a_clear_503_and_the_others_still_work(rig: SsoRig) -> None:
    down = httpx.get(f"{rig.url}/admin/v1/auth/sso/down/start", timeout=30)
    assert down.status_code == 503 and down.json()["error"]["code"] == "idp_unavailable"
    rig.idp.set_account("ruth", ["llm-users"])
    assert rig.sign_in("ruth").status_code == 200


def test_sign_ins_never_finished_are_cleared_as_new_ones_start(rig: SsoRig) -> None:
    old = utcnow() - timedelta(days=2)

    async def plant() -> None:
        async with rig.server.services.db.session() as session:
            session.add(
                SsoLogin(
                    state_hash="0" * 64,
                    provider=PROVIDER,
                    nonce="n",
                    code_verifier="v",
                    created_at=old,
                    expires_at=old + timedelta(minutes=10),
                )
            )

    async def hashes() -> set[str]:
        async with rig.server.services.db.session() as session:
            return set((await session.execute(select(SsoLogin.state_hash))).scalars())

    rig.server.call(plant())
    assert "0" * 64 in rig.server.call(hashes())
    started = httpx.get(f"{rig.url}/admin/v1/auth/sso/{PROVIDER}/start", timeout=30)
    assert started.status_code == 302 and started.headers["location"].startswith(rig.idp.issuer)
    assert "0" * 64 not in rig.server.call(hashes())


def test_two_first_sign_ins_at_once_make_one_account(rig: SsoRig) -> None:
    rig.idp.set_account("zed", ["llm-users"])
    start = f"{rig.url}/admin/v1/auth/sso/{PROVIDER}/start"
    with rig.browser_client() as first, rig.browser_client() as second:
        callbacks = [rig.idp.walk(c, start, "zed", stop_at=callback_url(rig.url)) for c in (first, second)]
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda pair: pair[0].get(pair[1]), zip((first, second), callbacks, strict=True)))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json()["user_id"] == answers[1].json()["user_id"]
    assert rig.memberships(answers[0].json()["user_id"]) == {"default": "member"}


def test_a_provider_without_mappings_only_authenticates_accounts_admins_made(rig: SsoRig) -> None:
    rig.idp.set_account("pat", ["llm-leads"])  # groups that would mean something to the mapped provider
    refused = rig.sign_in("pat", PLAIN)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_no_account"
    research = next(w["id"] for w in rig.admin.get("/workspaces").json() if w["name"] == "research")
    made = rig.admin.post("/users", json={"email": "pat@example.com", "workspace_id": research, "role": "viewer"})
    assert made.status_code == 201, made.text
    tokens = rig.tokens_from(rig.sign_in("pat", PLAIN))
    me = rig.me(tokens["access_token"]).json()
    assert (me["role"], me["workspace_id"]) == ("viewer", research)
    user_id = made.json()["user"]["id"]
    assert rig.memberships(user_id) == {"research": "viewer"}  # as the admin made it, groups or not
    assert rig.admin.delete(f"/workspaces/{research}/members/{user_id}").status_code in (200, 204)
    refused = rig.sign_in("pat", PLAIN)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "sso_no_access"
