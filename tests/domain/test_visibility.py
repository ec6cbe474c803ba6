from datetime import UTC, datetime
from typing import Any

import pytest

from domain.case import Actor, Case, CaseInput
from domain.deadlines import CasePolicy, DeadlineKind
from domain.statuses import Role, Status
from domain.visibility import WaitingOn, closed_reason_code, waiting_on
from tests.helpers import case_input


def test_waiting_on_covers_every_status() -> None:
    for status in Status:
        assert isinstance(waiting_on(status), WaitingOn), status


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.NEW, WaitingOn.SUPPORT),
        (Status.IN_PROGRESS_TIER_2, WaitingOn.SUPPORT),
        (Status.UPDATE_RECEIVED, WaitingOn.SUPPORT),
        (Status.REOPENED, WaitingOn.SUPPORT),
        (Status.PENDING_CUSTOMER_INPUT, WaitingOn.CUSTOMER),
        (Status.PENDING_CUSTOMER_TESTING, WaitingOn.CUSTOMER),
        (Status.AWAITING_CUSTOMER_CONFIRMATION, WaitingOn.CUSTOMER),
        (Status.PENDING_DEVELOPMENT, WaitingOn.DEVELOPMENT),
        (Status.PENDING_RELEASE, WaitingOn.DEVELOPMENT),
        (Status.PENDING_WORK_PLAN, WaitingOn.DEVELOPMENT),
        (Status.PENDING_PRODUCT_REVIEW, WaitingOn.DEVELOPMENT),
        (Status.PENDING_CONTENT_OPERATIONS, WaitingOn.CONTENT_OPERATIONS),
        (Status.PENDING_THIRD_PARTY_PROVIDER, WaitingOn.THIRD_PARTY),
        (Status.CLOSED, WaitingOn.NONE),
    ],
)
def test_waiting_on_status(status: Status, expected: WaitingOn) -> None:
    assert waiting_on(status) is expected


def test_waiting_on_values_are_the_search_attribute_values() -> None:
    assert {party.value for party in WaitingOn} == {
        "customer",
        "support",
        "development",
        "content_operations",
        "third_party",
        "none",
    }


NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")


def open_case(**overrides: Any) -> Case:
    request = CaseInput.model_validate(
        {**case_input(), "policy": CasePolicy().model_dump(), **overrides}
    )
    return Case.open(request, NOW)


def test_closed_reason_none_while_open() -> None:
    assert closed_reason_code(open_case()) is None


def test_closed_reason_names_timer_rule() -> None:
    case = open_case()
    case.change_status(SUPPORT, Status.PENDING_CUSTOMER_INPUT, "", NOW)
    closure = next(d for d in case.deadlines if d.kind is DeadlineKind.CLOSURE)

    case.close_by_timer(closure, closure.due_at)

    assert closed_reason_code(case) == "pending_customer_input_closure"


def test_closed_reason_omits_the_note() -> None:
    case = open_case()

    case.change_status(SUPPORT, Status.CLOSED, "Ann Lee said thanks", NOW)

    assert closed_reason_code(case) == "closed_by_support"


def test_closed_reason_of_imported_case() -> None:
    case = open_case(status="Closed", status_since="2025-01-01T00:00:00+00:00")

    assert closed_reason_code(case) == "imported_closed"
