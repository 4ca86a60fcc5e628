"""The single sign-on canary: the client secret, the sign-in's state and code, the UI ticket, the session tokens it
opens and a service token never show up in the debug log, the metrics or any table (the state and the ticket only
as their hashes in ``sso_logins``, the one table that checks them)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx

from tests.e2e.sso.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, PROVIDER, callback_url, sso_config
from tests.e2e.sso.idp import CLIENT_SECRET, TestIdP
from tests.support.processes import SluiceProcess
from tests.support.server import MASTER_KEY

CHAT = {"model": "mock-1", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def test_sso_secrets_never_leak(tmp_path: Path) -> None:
    (tmp_path / "idp").mkdir()
    idp = TestIdP(tmp_path / "idp", [], [])
    config = {
        "data_dir": str(tmp_path / "data"),
        "ui": True,
        "logging": {"level": "debug", "access_log": True, "format": "json"},
        "auth": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "sso": sso_config(idp.issuer),
    }
    gateway = SluiceProcess(tmp_path / "gateway", config)
    idp.redirect_uris = [callback_url(gateway.url)]
    idp.set_account("vera", ["llm-users"])
    secrets: dict[str, str] = {"client secret": CLIENT_SECRET}
    idp.start()
    try:
        gateway.start()
        with httpx.Client(timeout=30, follow_redirects=False) as browser:
            start = f"{gateway.url}/admin/v1/auth/sso/{PROVIDER}/start"
            for via_ui in (False, True):
                url = start + ("?ui=true" if via_ui else "")
                callback = httpx.URL(idp.walk(browser, url, "vera", stop_at=callback_url(gateway.url)))
                secrets[f"state {via_ui}"] = callback.params["state"]
                secrets[f"code {via_ui}"] = callback.params["code"]
                answer = browser.get(str(callback))
                if via_ui:
                    ticket = httpx.URL(answer.headers["location"]).params["ticket"]
                    secrets["ticket"] = ticket
                    tokens = browser.post(f"{gateway.url}/admin/v1/auth/sso/ticket", json={"ticket": ticket}).json()
                else:
                    tokens = answer.json()
                secrets[f"access token {via_ui}"] = tokens["access_token"]
                secrets[f"refresh token {via_ui}"] = tokens["refresh_token"]
                headers = {"authorization": f"Bearer {tokens['access_token']}"}
                assert browser.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
            service = idp.service_token()
            secrets["service token"] = service
            headers = {"authorization": f"Bearer {service}"}
            assert browser.post(f"{gateway.url}/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
            bad = service[:-4] + ("AAAA" if not service.endswith("AAAA") else "BBBB")
            secrets["tampered service token"] = bad
            refused = browser.post(
                f"{gateway.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {bad}"}
            )
            assert refused.status_code == 401
            scraped = browser.get(f"{gateway.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})
            assert scraped.status_code == 200 and "sluice_" in scraped.text
            metrics = scraped.text
    finally:
        gateway.stop()
        idp.stop()

    database = sqlite3.connect(tmp_path / "data" / "sluice.db")
    tables = [r[0] for r in database.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    dumps = {table: repr(database.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables}
    database.close()
    log = gateway.log()
    assert "signed in through single sign-on" in log  # the debug log really covered the sign-ins
    for name, value in secrets.items():
        assert value not in log, f"the canary {name} appears in the log"
        assert value not in metrics, f"the canary {name} appears in the metrics"
        for table, text in dumps.items():
            assert value not in text, f"the canary {name} appears in table {table}"
    digest = hashlib.sha256(secrets["state True"].encode()).hexdigest()
    assert digest in dumps["sso_logins"]  # the check above looked where the state is kept
