"""Schemathesis over the admin API's own OpenAPI document: no 5xx, and every response matches its schema."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from sluice.admin.api import PREFIX
from tests.e2e.identity.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.support.server import SluiceServer

EXAMPLES_PER_OPERATION = 25


def _operations(server: SluiceServer) -> list[Any]:
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    document["paths"] = {p: v for p, v in document["paths"].items() if p.startswith(PREFIX)}
    schema = schemathesis.openapi.from_dict(document)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("who", ["master", "admin-user"])
def test_admin_api_has_no_server_errors_and_matches_its_schema(server: SluiceServer, api: Api, who: str) -> None:
    token = server.master_key if who == "master" else api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    operations = _operations(server)
    assert len(operations) > 30
    session = __import__("requests").Session()
    failures: list[str] = []
    for operation in operations:
        strategy = operation.as_strategy()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=server.url, session=session, headers={"authorization": f"Bearer {token}"})
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance, status_code_conformance]
            )

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    session.close()
    assert failures == [], "\n\n".join(failures)
