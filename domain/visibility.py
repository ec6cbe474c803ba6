"""Values a case publishes for operators: whom it waits on, and why it closed.

They become search attributes, so they hold codes and never free text.
"""

from enum import StrEnum

from domain.case import Case
from domain.statuses import Status


class WaitingOn(StrEnum):
    CUSTOMER = "customer"
    SUPPORT = "support"
    DEVELOPMENT = "development"
    CONTENT_OPERATIONS = "content_operations"
    THIRD_PARTY = "third_party"
    NONE = "none"


# Product review and work plans are decided by the product and development
# teams, which the floor reports together as "development".
_WAITING_ON: dict[Status, WaitingOn] = {
    Status.NEW: WaitingOn.SUPPORT,
    Status.IN_PROGRESS: WaitingOn.SUPPORT,
    Status.IN_PROGRESS_TIER_1: WaitingOn.SUPPORT,
    Status.IN_PROGRESS_TIER_2: WaitingOn.SUPPORT,
    Status.PENDING_CUSTOMER_INPUT: WaitingOn.CUSTOMER,
    Status.UPDATE_RECEIVED: WaitingOn.SUPPORT,
    Status.PENDING_WORK_PLAN: WaitingOn.DEVELOPMENT,
    Status.PENDING_DEVELOPMENT: WaitingOn.DEVELOPMENT,
    Status.PENDING_RELEASE: WaitingOn.DEVELOPMENT,
    Status.PENDING_CUSTOMER_TESTING: WaitingOn.CUSTOMER,
    Status.PENDING_CONTENT_OPERATIONS: WaitingOn.CONTENT_OPERATIONS,
    Status.PENDING_THIRD_PARTY_PROVIDER: WaitingOn.THIRD_PARTY,
    Status.PENDING_PRODUCT_REVIEW: WaitingOn.DEVELOPMENT,
    Status.AWAITING_CUSTOMER_CONFIRMATION: WaitingOn.CUSTOMER,
    Status.REOPENED: WaitingOn.SUPPORT,
    Status.CLOSED: WaitingOn.NONE,
}


def waiting_on(status: Status) -> WaitingOn:
    """Return the party whose move the case in ``status`` waits for."""
    return _WAITING_ON[status]


IMPORTED_CLOSED = "imported_closed"


def closed_reason_code(case: Case) -> str | None:
    """Return a code for why ``case`` closed, or None while it is open.

    The code is the timer rule that closed it (``pending_customer_input_closure``),
    ``closed_by_<role>`` for a person, or ``imported_closed``. The case's own
    reason text may quote a note, which can contain personal data, so it is
    never used here.
    """
    if not case.is_closed or case.closure is None:
        return None
    if case.imported_closed:
        return IMPORTED_CLOSED
    if case.closure.rule:
        return case.closure.rule
    return f"closed_by_{case.closure.actor_role}"
