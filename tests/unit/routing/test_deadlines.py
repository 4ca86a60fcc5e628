"""A request's own timeouts: read from headers, applied field by field, never longer than the deployment's."""

from __future__ import annotations

import pytest

from sluice.config import Timeouts
from sluice.errors import InvalidRequest
from sluice.routing.deadlines import RequestTimeouts, request_timeouts
from tests.unit.routing.test_routing_logic import dep

DEPLOYMENT = Timeouts(connect=5, first_byte=20, idle=10, total=100)


def test_no_timeout_headers_mean_no_request_timeouts() -> None:
    assert request_timeouts({b"authorization": b"Bearer x"}.get) is None


def test_every_header_sets_its_own_field() -> None:
    headers = {
        b"x-sluice-timeout": b"30",
        b"x-sluice-timeout-connect": b"1.5",
        b"x-sluice-timeout-first-byte": b" 4 ",
        b"x-sluice-timeout-idle": b"2",
    }
    assert request_timeouts(headers.get) == RequestTimeouts(connect=1.5, first_byte=4, idle=2, total=30)


@pytest.mark.parametrize("value", [b"", b"soon", b"0", b"-3", b"nan", b"inf", b"1e400"])
def test_a_value_that_is_not_a_positive_finite_number_is_refused_naming_the_header(value: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        request_timeouts({b"x-sluice-timeout-idle": value}.get)
    assert refused.value.param == "x-sluice-timeout-idle" and refused.value.status == 400


def test_the_field_wise_minimum_applies() -> None:
    narrowed = RequestTimeouts(connect=1, first_byte=60, total=50).narrow(DEPLOYMENT)
    assert narrowed == Timeouts(connect=1, first_byte=20, idle=10, total=50)


def test_values_no_shorter_than_the_deployments_leave_it_as_it_is() -> None:
    assert RequestTimeouts(connect=9, idle=10).narrow(DEPLOYMENT) is DEPLOYMENT
    deployment = dep("a")
    assert RequestTimeouts(total=10_000).applied_to(deployment) is deployment


def test_the_attempt_sees_the_same_deployment_with_shorter_deadlines() -> None:
    deployment = dep("a")
    seen = RequestTimeouts(first_byte=0.5).applied_to(deployment)
    assert seen.id == deployment.id and seen.provider is deployment.provider
    assert seen.target.model == deployment.target.model and seen.target.timeouts.first_byte == 0.5
    assert deployment.target.timeouts.first_byte == Timeouts().first_byte  # the deployment itself is unchanged
