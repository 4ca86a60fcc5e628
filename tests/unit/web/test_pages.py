"""The UI's pages with NiceGUI's simulated user: forms and the errors they show on their fields, role-based
navigation and redirects, the admin panel's workspace-aware actions, the audit log's filters and paging, the chat's
code blocks and usage line, dark mode kept across pages."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from nicegui import ui
from nicegui.testing.user import User
from nicegui.testing.user_interaction import UserInteraction

from sluice.web import pages_admin_audit
from sluice.web.pages_admin_limits import source_text
from tests.support.server import MASTER_KEY, SluiceServer
from tests.unit.web.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Admin,
    current_path,
    eventually,
    press,
    sign_in,
)

ADMIN_ONLY = ("Overview", "Users", "Invitations", "IP rules", "Limits", "Queues", "Models", "Audit log")


def element(user: User, marker: str) -> Any:
    (found,) = user.find(marker=marker).elements
    return found


def choose(select: Any, value: Any) -> None:
    """Pick an option of a select as a person would (the value change runs the page's handlers)."""
    select.set_value(value)


def clipboard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the page writes to the browser's clipboard, in order."""
    written: list[str] = []
    monkeypatch.setattr(ui.clipboard, "write", written.append)
    return written


# --- signing in and who sees what ------------------------------------------------------------------------------


async def test_signing_in_without_a_password_marks_the_field(user: User) -> None:
    await user.open("/login")
    user.find(marker="email").type("someone@example.com")
    press(user, "Sign in")
    email = element(user, "email")
    await eventually(lambda: email.error == "Enter your email and password.", "the message on the email field")
    assert current_path(user) == "/login"


async def test_a_wrong_password_shows_the_gateways_message(user: User) -> None:
    await user.open("/login")
    user.find(marker="email").type(ADMIN_EMAIL)
    user.find(marker="password").type("not-the-password")
    press(user, "Sign in")
    await user.should_see("Invalid email or password.", retries=100)
    assert current_path(user) == "/login"


async def test_admin_sees_every_admin_page_in_the_navigation(user: User) -> None:
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    with user.scope(marker="navigation"):
        for page in (*ADMIN_ONLY, "API keys", "Usage"):
            await user.should_see(page)


async def test_a_member_sees_no_admin_navigation_and_is_sent_back_from_admin_pages(
    user: User, admin_api: Admin
) -> None:
    admin_api.person("mia@example.com", "mia-Password-01")
    await sign_in(user, "mia@example.com", "mia-Password-01")
    with user.scope(marker="navigation"):
        for page in ADMIN_ONLY:
            await user.should_not_see(page)
        await user.should_see("API keys")  # their own keys and usage
    for page in ("/admin", "/admin/users", "/admin/models", "/admin/audit", "/admin/ip-rules", "/admin/invites"):
        await user.open(page)
        await eventually(lambda: current_path(user) == "/chat", f"the member sent from {page} to the chat")


async def test_signed_out_visitors_are_sent_to_the_sign_in_page(user: User) -> None:
    for page in ("/chat", "/admin/keys", "/account"):
        await user.open(page)
        await eventually(lambda: current_path(user) == "/login", f"{page} to send the visitor to sign in")


async def test_dark_mode_is_kept_across_pages_and_sign_outs(user: User) -> None:
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    (dark,) = user.find(kind=ui.dark_mode).elements
    assert dark.value is False
    user.find(marker="dark-mode").click()
    assert dark.value is True
    await user.open("/admin/keys")
    (dark,) = user.find(kind=ui.dark_mode).elements
    assert dark.value is True
    press(user, "Sign out")
    await eventually(lambda: current_path(user) == "/login", "the sign-in page")
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    (dark,) = user.find(kind=ui.dark_mode).elements
    assert dark.value is True


# --- users, memberships, workspaces ----------------------------------------------------------------------------


async def test_an_owner_manages_the_roles_of_their_own_workspace_only(user: User, admin_api: Admin) -> None:
    team = admin_api("POST", "/workspaces", 201, json={"name": "team-owned"})["id"]
    admin_api.person("olga@example.com", "olga-Password-01", team, role="owner")
    pete = admin_api.person("pete@example.com", "pete-Password-01", team)
    await sign_in(user, "olga@example.com", "olga-Password-01")
    await user.open("/admin/users")
    workspace = element(user, "workspace")
    assert workspace.value == team and not workspace.enabled  # owners cannot pick another workspace
    with user.scope(marker="users"):
        await user.should_see("pete@example.com")
        await user.should_not_see(ADMIN_EMAIL)  # the default workspace's people are not theirs to see
    with user.scope(marker="member-pete@example.com"):
        (role,) = user.find(kind=ui.select).elements
        choose(role, "viewer")
        press(user, "Set role")
    members = await eventually(
        lambda: [m for m in admin_api("GET", f"/workspaces/{team}/members") if m["role"] == "viewer"],
        "the role change",
    )
    assert [m["user_id"] for m in members] == [pete]


async def test_an_admin_sets_roles_and_adds_members_in_any_workspace(user: User, admin_api: Admin) -> None:
    other = admin_api("POST", "/workspaces", 201, json={"name": "team-other"})["id"]
    quinn = admin_api.person("quinn@example.com", "quinn-Password-01", other)
    rosa = admin_api.person("rosa@example.com", "rosa-Password-01")  # in the default workspace only
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/users")
    choose(element(user, "workspace"), other)
    await user.should_see(marker="member-quinn@example.com")
    with user.scope(marker="member-quinn@example.com"):
        (role,) = user.find(kind=ui.select).elements
        choose(role, "owner")
        press(user, "Set role")
    await eventually(
        lambda: (
            {m["user_id"]: m["role"] for m in admin_api("GET", f"/workspaces/{other}/members")}.get(quinn) == "owner"
        ),
        "quinn to be an owner of the chosen workspace",
    )
    choose(element(user, "add-member"), rosa)
    press(user, "Add to workspace")
    await eventually(
        lambda: rosa in {m["user_id"] for m in admin_api("GET", f"/workspaces/{other}/members")},
        "rosa added to the chosen workspace",
    )
    default_roles = {m["user_id"]: m["role"] for m in admin_api("GET", "/workspaces/default/members")}
    assert default_roles[rosa] == "member"  # the admin's own workspace was not touched


async def test_adding_a_member_without_picking_one_marks_the_field(user: User) -> None:
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/users")
    press(user, "Add to workspace")
    picker = element(user, "add-member")
    await eventually(lambda: picker.error == "Pick the user to add.", "the message on the user picker")


async def test_an_admin_edits_a_users_admin_flag_and_priority_class(user: User, admin_api: Admin) -> None:
    sam = admin_api.person("sam@example.com", "sam-Password-01")
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/users")
    with user.scope(marker="user-sam@example.com"):
        press(user, "Edit")
    with user.scope(marker="edit-user"):
        user.find(kind=ui.checkbox).click()
        (priority,) = user.find(kind=ui.select).elements
        choose(priority, "batch")
        press(user, "Save")
    changed = await eventually(
        lambda: (found := admin_api("GET", f"/users/{sam}"))["is_admin"] and found, "the user's new flags"
    )
    assert changed["priority"] == "batch"


async def test_disabling_a_workspace_asks_first_and_editing_renames_it(user: User, admin_api: Admin) -> None:
    ws = admin_api("POST", "/workspaces", 201, json={"name": "to-disable"})["id"]
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/users")
    with user.scope(marker=f"workspace-{ws}"):
        press(user, "Disable")
    with user.scope(marker="confirm"):
        await user.should_see("Disable the workspace to-disable?")
        press(user, "Cancel")
    assert admin_api("GET", f"/workspaces/{ws}")["disabled"] is False  # nothing happens without the yes
    with user.scope(marker=f"workspace-{ws}"):
        press(user, "Disable")
    with user.scope(marker="confirm"):
        user.find(kind=ui.button, content="Disable").click()
    await eventually(lambda: admin_api("GET", f"/workspaces/{ws}")["disabled"], "the workspace disabled")
    await user.open("/admin/users")
    with user.scope(marker=f"workspace-{ws}"):
        press(user, "Edit")
    with user.scope(marker="edit-workspace"):
        (name, _models) = sorted(user.find(kind=ui.input).elements, key=lambda e: e.id)
        name.set_value("renamed-team")
        press(user, "Save")
    await eventually(lambda: admin_api("GET", f"/workspaces/{ws}")["name"] == "renamed-team", "the new name")


# --- keys and IP rules ----------------------------------------------------------------------------------------


async def test_key_form_checks_as_you_type_and_shows_the_gateways_refusal_on_the_field(user: User) -> None:
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/keys")
    expires = next(e for e in user.find(kind=ui.input).elements if e.props.get("label", "").startswith("Expires"))
    networks = next(e for e in user.find(kind=ui.input).elements if e.props.get("label", "").startswith("Allowed net"))
    expires.set_value("next tuesday")
    assert expires.error == "Use the form YYYY-MM-DD"
    networks.set_value("10.0.0.0/8, 300.1.1.1/8")
    assert networks.error == "'300.1.1.1/8' is not a network (e.g. 10.0.0.0/8)"
    networks.set_value("")
    expires.set_value("2001-01-01")  # well formed, but the gateway refuses a past expiry
    assert expires.error is None
    name = next(e for e in user.find(kind=ui.input).elements if e.props.get("label") == "Name")
    name.set_value("past")
    press(user, "Create key")
    await eventually(lambda: expires.error == "expires_at is in the past.", "the gateway's message on the field")


async def test_the_keys_page_shows_spend_and_edits_a_keys_networks(
    user: User, admin_api: Admin, gateway: SluiceServer
) -> None:
    created = admin_api("POST", "/keys", 201, json={"name": "spender", "workspace_id": "default"})
    body = {"model": "plain-1", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 20}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        answered = await http.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {created['key']}"}
        )
    assert answered.status_code == 200
    await eventually(
        lambda: any(r["group"] == created["id"] for r in admin_api("GET", "/usage/series", params={"group_by": "key"})),
        "the call's usage to be shipped",
    )
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/keys")
    with user.scope(marker="key-spender"):
        (spend,) = user.find(marker="spend").elements
        assert re.fullmatch(r"spent \$0\.0*[1-9]\d? in 30 days", spend.text), spend.text  # money, not nothing
        press(user, "Edit")
    await user.should_see(marker="key-network", retries=100)
    with user.scope(marker="edit-key"):
        user.find(marker="key-network").type("10.9.0.0/16")
        press(user, "Add network")
    rules = await eventually(
        lambda: [r for r in admin_api("GET", "/ip-rules") if r["key_id"] == created["id"]], "the key's network"
    )
    assert [r["cidr"] for r in rules] == ["10.9.0.0/16"]
    await user.should_see(marker="network-10.9.0.0/16")
    with user.scope(marker="network-10.9.0.0/16"):
        press(user, "Remove")
    with user.scope(marker="confirm"):
        user.find(kind=ui.button, content="Remove").click()
    await eventually(
        lambda: not [r for r in admin_api("GET", "/ip-rules") if r["key_id"] == created["id"]], "the network removed"
    )


async def test_an_admin_adds_a_workspace_rule_for_another_workspace(user: User, admin_api: Admin) -> None:
    other = admin_api("POST", "/workspaces", 201, json={"name": "team-networks"})["id"]
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/ip-rules")
    user.find(marker="rule-cidr").type("192.168.40.0/24")
    choose(element(user, "rule-scope"), "workspace")
    choose(element(user, "rule-workspace"), other)
    press(user, "Add rule")
    rule = await eventually(
        lambda: next((r for r in admin_api("GET", "/ip-rules") if r["cidr"] == "192.168.40.0/24"), None),
        "the workspace rule",
    )
    assert (rule["scope"], rule["workspace_id"]) == ("workspace", other)
    admin_api("DELETE", f"/ip-rules/{rule['id']}", 204)


async def test_a_key_rule_without_a_key_marks_the_key_field(user: User) -> None:
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/ip-rules")
    user.find(marker="rule-cidr").type("10.0.0.0/8")
    choose(element(user, "rule-scope"), "key")
    press(user, "Add rule")
    key = element(user, "rule-key")
    await eventually(lambda: key.error == "Pick the key this rule confines.", "the message on the key field")
    cidr = element(user, "rule-cidr")
    cidr.set_value("10.0.0.0/33")
    assert cidr.error == "Enter a network such as 10.0.0.0/8"


async def test_an_admin_sets_the_trusted_proxies_and_goes_back_to_the_configuration(
    user: User, admin_api: Admin
) -> None:
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/ip-rules")
    await user.should_see("from the configuration (server.trusted_proxies)")
    proxies = element(user, "trusted-proxies")
    proxies.set_value("127.0.0.1, 10.9.0.0/16, not-a-network")
    press(user, "Save proxies")
    assert proxies.error == "'not-a-network' is not a network (e.g. 10.0.0.0/8)"
    assert admin_api("GET", "/settings")["trusted_proxies_stored"] is False  # nothing was sent
    element(user, "trusted-proxies").set_value("127.0.0.1, 10.9.0.0/16")
    press(user, "Save proxies")
    saved = await eventually(
        lambda: (s := admin_api("GET", "/settings"))["trusted_proxies_stored"] and s["trusted_proxies"], "the save"
    )
    assert saved == ["127.0.0.1/32", "10.9.0.0/16"]
    await user.open("/admin/ip-rules")
    await user.should_see("set here")
    press(user, "Use the configuration's list")
    await eventually(lambda: admin_api("GET", "/settings")["trusted_proxies_stored"] is False, "the reset")


# --- limits ----------------------------------------------------------------------------------------------------


async def test_an_admin_stores_and_clears_a_role_default_and_sees_where_limits_come_from(
    user: User, admin_api: Admin
) -> None:
    key = admin_api("POST", "/keys", 201, json={"name": "limited", "workspace_id": "default"})
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/limits")
    picker = element(user, "limits-id")
    assert picker.options[key["id"]] == f"limited ({key['prefix']}…)"  # keys are picked by name and prefix
    picker.set_value(key["id"])  # choosing loads it
    await eventually(lambda: user.find(marker="limits-source").elements, "the key's limits")
    assert element(user, "limits-of").text == f"The key limited ({key['prefix']}…)"
    assert element(user, "limits-source").text == source_text(admin_api("GET", f"/limits/key/{key['id']}"))
    assert element(user, "limits-spend").text == "Spent $0 this month"

    choose(element(user, "limits-scope"), "role")
    choose(element(user, "limits-role"), "viewer")
    press(user, "Load")
    await eventually(lambda: element(user, "limits-of").text == "The default of the role viewer", "the viewer default")
    assert element(user, "limits-source").text == "No limits apply."
    element(user, "limit-rpm").set_value(42)
    press(user, "Save limits")
    stored = await eventually(
        lambda: (r := admin_api("GET", "/limits/roles/viewer"))["source"] == "stored" and r, "the stored default"
    )
    assert stored["rpm"] == 42 and stored["tpm"] is None
    await eventually(lambda: element(user, "limits-source").text.startswith("Stored here"), "the page reloaded")
    press(user, "Clear stored limits")
    await eventually(lambda: admin_api("GET", "/limits/roles/viewer")["source"] != "stored", "the default cleared")
    await eventually(lambda: element(user, "limits-source").text == "No limits apply.", "the page reloaded again")


# --- the audit log ---------------------------------------------------------------------------------------------


async def test_the_audit_log_filters_by_target_and_shows_before_and_after(user: User, admin_api: Admin) -> None:
    key = admin_api("POST", "/keys", 201, json={"name": "audited", "workspace_id": "default"})
    admin_api("PATCH", f"/keys/{key['id']}", json={"name": "audited-renamed"})
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/audit")
    user.find(marker="audit-target-type").type("key")
    user.find(marker="audit-target-id").type(key["id"])
    press(user, "Filter")
    with user.scope(marker="audit-events"):
        await user.should_see("key.update")
        await user.should_see("key.create")
        await user.should_not_see("invite.create")
        await user.should_see('"name": "audited-renamed"')  # the after image
        await user.should_see('"name": "audited"')  # the before image
        await user.should_not_see("key_hash")


async def test_the_audit_log_pages_through_older_events(
    user: User, admin_api: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_admin_audit, "PAGE", 2)
    key = admin_api("POST", "/keys", 201, json={"name": "paged", "workspace_id": "default"})
    for n in range(4):  # with the creation: five events, pages of 2, 2 and 1
        admin_api("PATCH", f"/keys/{key['id']}", json={"name": f"paged-{n}"})
    events = [e["id"] for e in admin_api("GET", "/audit", params={"target_id": key["id"]})]
    assert len(events) == 5
    # A newer event of another target: the unfiltered first page must not look like the filtered one, or a
    # press on "Older" could land on the unfiltered page while the filtered one is still loading.
    admin_api("POST", "/keys", 201, json={"name": "newer-elsewhere", "workspace_id": "default"})
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    await user.open("/admin/audit")
    user.find(marker="audit-target-id").type(key["id"])
    press(user, "Filter")
    await eventually(lambda: ids_shown(user) == sorted(events[:2]), "the newest page")
    assert not button(user, "Newer").enabled
    press(user, "Older")
    await eventually(lambda: ids_shown(user) == sorted(events[2:4]), "the next page")
    press(user, "Older")
    await eventually(lambda: ids_shown(user) == sorted(events[4:]), "the last page")
    assert not button(user, "Older").enabled  # a short page is the last one
    press(user, "Newer")
    await eventually(lambda: ids_shown(user) == sorted(events[2:4]), "the page before")
    user.find(marker="audit-action").type("key.create")
    press(user, "Filter")  # a new filter starts from the newest again
    await eventually(lambda: ids_shown(user) == [events[4]], "the creation alone")


def button(user: User, text: str) -> Any:
    return min(user.find(kind=ui.button, content=text).elements, key=lambda e: e.id)


async def test_an_owner_naming_another_workspace_in_the_audit_api_gets_nothing(admin_api: Admin) -> None:
    # The owner's page never offers a workspace picker; the API behind it answers an empty list.
    team = admin_api("POST", "/workspaces", 201, json={"name": "audit-owner"})["id"]
    admin_api.person("tess@example.com", "tess-Password-01", team, role="owner")
    tokens = admin_api.http.post(
        "/auth/login", json={"email": "tess@example.com", "password": "tess-Password-01"}
    ).json()
    headers = {"authorization": f"Bearer {tokens['access_token']}"}
    found = admin_api.http.get("/audit", params={"workspace_id": "default"}, headers=headers)
    assert found.status_code == 200 and found.json() == []
    assert MASTER_KEY not in found.text


def events_text(user: User) -> str:
    return " ".join(str(e.props.get("label", "")) for e in user.find(kind=ui.expansion).elements)


def ids_shown(user: User) -> list[int]:
    return sorted(
        int(m.removeprefix("event-"))
        for e in user.find(kind=ui.expansion).elements
        for m in e._markers
        if m.startswith("event-")
    )


# --- chat -------------------------------------------------------------------------------------------------------


async def test_an_answer_has_a_copy_button_per_code_block_and_shows_its_model_and_cost(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = clipboard(monkeypatch)
    await sign_in(user, ADMIN_EMAIL, ADMIN_PASSWORD)
    choose(element(user, "model"), "code-1")
    user.find(marker="prompt").type("show me two ways")
    user.find(marker="send").click()
    await eventually(lambda: len(user.find(marker="copy-code").elements) == 2 or None, "two code blocks")
    await eventually(lambda: "done." in answer_text(user), "the whole answer")
    for button in sorted(user.find(marker="copy-code").elements, key=lambda e: e.id):
        UserInteraction(user, {button}, None).click()
    await eventually(lambda: len(written) == 2, "both blocks copied")
    assert written == ["print('one')", "echo two"]
    line = await eventually(
        lambda: next((t for t in user.find(marker="usage").elements if "$" in t.text), None),
        "the answer's cost from its usage record",
    )
    assert re.fullmatch(r"code-1 · \d+ tokens in, \d+ out · \$0\.\d+", line.text)
    # the cost is kept with the answer: opening the conversation again shows it without asking again
    stored = next(link.props["href"] for link in user.find(kind=ui.link).elements if "c=" in link.props["href"])
    await user.open(stored)
    await eventually(
        lambda: any("$" in t.text for t in user.find(marker="usage").elements), "the stored cost after a reload"
    )


def answer_text(user: User) -> str:
    return " ".join(getattr(e, "content", "") for e in user.find(kind=ui.html).elements if "answer-part" in e.classes)
