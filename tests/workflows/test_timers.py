"""Deadline timers of the SupportCase workflow on the time-skipping test server.

Every test runs one worker for the whole life of its cases (see
``TimeSkippingCases``) and moves the server clock with ``sleep_until``. The
clock is shared by the whole session, so every time is computed from the
server's current time. Institutions are in UTC unless a test sets a zone.
"""

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from domain.case import Actor, Case, Deadline
from domain.deadlines import DeadlineKind
from domain.statuses import DEPRECATED_STATUSES, Priority, Role, Status
from tests.helpers import (
    CUSTOMER,
    ONE_SECOND,
    SUPPORT,
    CaseHandle,
    TimeSkippingCases,
    add_calendar_months,
    assert_eventually,
    assert_within_second_after,
    events,
    final_case,
    notices,
    set_status,
    sleep_until,
    text_body,
)
from workflows.messages import AddCommentInput, ChangePriorityInput
from workflows.support_case import SupportCase

DEVELOPER = Actor(role=Role.DEVELOPMENT, name="Dana Dev")


async def enter_status(
    cases: TimeSkippingCases, status: Status, **overrides: Any
) -> tuple[str, CaseHandle, Case]:
    """Start a case in ``status``: support sets it, or an import for a deprecated status."""
    if status in DEPRECATED_STATUSES:
        since = await cases.env.get_current_time()
        number, handle = await cases.start(
            status=status.value, status_since=since.isoformat(), **overrides
        )
        return number, handle, await handle.query(SupportCase.get_case)
    number, handle = await cases.start(**overrides)
    case = await handle.execute_update(SupportCase.change_status, set_status(status))
    return number, handle, case


def deadline(case: Case, rule: str) -> Deadline:
    matching = [d for d in case.deadlines if d.rule == rule]
    assert len(matching) == 1, f"expected one {rule} deadline, got {case.deadlines}"
    return matching[0]


async def current_status(handle: CaseHandle) -> Status:
    case = await handle.query(SupportCase.get_case)
    return case.status


# ---- each timer fires at its time, and only in its status


async def test_pending_customer_input_reminder_at_seven_days(
    cases: TimeSkippingCases,
) -> None:
    number, handle, case = await enter_status(cases, Status.PENDING_CUSTOMER_INPUT)
    since = case.status_since
    reminder = deadline(case, "pending_customer_input_reminder")
    closure = deadline(case, "pending_customer_input_closure")
    assert reminder.due_at == since + timedelta(days=7)
    assert closure.due_at == since + timedelta(days=28)

    await sleep_until(cases.env, reminder.due_at - ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 0
    assert events(case, "reminder_sent") == []
    assert notices(cases.outbox, number, "reminder") == []

    await sleep_until(cases.env, reminder.due_at + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 1
    sent = events(case, "reminder_sent")
    assert len(sent) == 1
    assert sent[0].actor_role == "system"
    assert_within_second_after(sent[0].at, reminder.due_at)
    assert case.status is Status.PENDING_CUSTOMER_INPUT
    assert case.deadlines == [closure]

    emails = notices(cases.outbox, number, "reminder")
    assert len(emails) == 1
    assert emails[0]["Message-ID"] == (
        f"<case-{number}.{case.status_entry}.reminder@casedesk.localhost>"
    )
    closes_on = closure.due_at.strftime("%Y-%m-%d %H:%M UTC")
    assert f"the case will be closed on {closes_on}" in text_body(emails[0])


async def test_pending_customer_input_closure_at_28_days(
    cases: TimeSkippingCases,
) -> None:
    number, handle, case = await enter_status(cases, Status.PENDING_CUSTOMER_INPUT)
    closure = deadline(case, "pending_customer_input_closure")

    await sleep_until(cases.env, closure.due_at - ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.status is Status.PENDING_CUSTOMER_INPUT
    assert case.closure is None
    assert notices(cases.outbox, number, "closure") == []

    await sleep_until(cases.env, closure.due_at + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.status is Status.CLOSED
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"
    assert final.closure.actor_role == "system"
    assert_within_second_after(final.closure.at, closure.due_at)
    assert final.deadlines == []
    assert final.reminders_sent == 1
    assert len(notices(cases.outbox, number, "reminder")) == 1
    assert len(notices(cases.outbox, number, "closure")) == 1


@pytest.mark.parametrize(
    ("status", "months", "days"),
    [
        (Status.AWAITING_CUSTOMER_CONFIRMATION, 0, 14),
        (Status.PENDING_CUSTOMER_TESTING, 3, 0),
        (Status.PENDING_WORK_PLAN, 24, 0),
    ],
    ids=["awaiting-confirmation-14-days", "testing-3-months", "work-plan-24-months"],
)
async def test_closure_timer_fires_at_due_time(
    cases: TimeSkippingCases, status: Status, months: int, days: int
) -> None:
    number, handle, case = await enter_status(cases, status)
    expected_due = add_calendar_months(case.status_since, months) + timedelta(days=days)
    rule = f"{status.name.lower()}_closure"
    closures = [d for d in case.deadlines if d.kind is DeadlineKind.CLOSURE]
    assert [d.rule for d in closures] == [rule]
    assert closures[0].due_at == expected_due

    await sleep_until(cases.env, expected_due - ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.status is status
    assert notices(cases.outbox, number, "closure") == []

    await sleep_until(cases.env, expected_due + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closure.rule == rule
    assert final.closure.actor_role == "system"
    assert_within_second_after(final.closure.at, expected_due)
    assert len(notices(cases.outbox, number, "closure")) == 1
    # Only Pending Customer Input sends reminders.
    assert notices(cases.outbox, number, "reminder") == []
    assert final.reminders_sent == 0


async def test_testing_closure_counts_calendar_months(
    cases: TimeSkippingCases,
) -> None:
    # From many start days, 3 calendar months are exactly 90 days. Step back
    # to a start where they are not, so a closure after 90 days would fail.
    since = await cases.env.get_current_time()
    while add_calendar_months(since, 3) - since == timedelta(days=90):
        since -= timedelta(days=1)
    expected_due = add_calendar_months(since, 3)
    number, handle = await cases.start(
        status=Status.PENDING_CUSTOMER_TESTING.value, status_since=since.isoformat()
    )
    case = await handle.query(SupportCase.get_case)
    assert [d.due_at for d in case.deadlines] == [expected_due]

    await sleep_until(cases.env, expected_due - ONE_SECOND)
    assert await current_status(handle) is Status.PENDING_CUSTOMER_TESTING
    await sleep_until(cases.env, expected_due + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_testing_closure"
    assert_within_second_after(final.closure.at, expected_due)
    assert len(notices(cases.outbox, number, "closure")) == 1


# ---- leaving, re-entering and editing


async def leave_by_support(handle: CaseHandle) -> Case:
    return await handle.execute_update(
        SupportCase.change_status, set_status(Status.IN_PROGRESS)
    )


async def leave_by_customer_comment(handle: CaseHandle) -> Case:
    return await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput(actor=CUSTOMER, body="Here are the log files you asked for."),
    )


async def leave_by_development(handle: CaseHandle) -> Case:
    return await handle.execute_update(
        SupportCase.change_status,
        set_status(Status.PENDING_DEVELOPMENT, actor=DEVELOPER),
    )


@pytest.mark.parametrize(
    ("status", "leave", "left_to"),
    [
        (Status.PENDING_CUSTOMER_INPUT, leave_by_support, Status.IN_PROGRESS),
        (
            Status.PENDING_CUSTOMER_INPUT,
            leave_by_customer_comment,
            Status.UPDATE_RECEIVED,
        ),
        (
            Status.AWAITING_CUSTOMER_CONFIRMATION,
            leave_by_customer_comment,
            Status.REOPENED,
        ),
        (
            Status.PENDING_CUSTOMER_TESTING,
            leave_by_customer_comment,
            Status.UPDATE_RECEIVED,
        ),
        (Status.PENDING_WORK_PLAN, leave_by_development, Status.PENDING_DEVELOPMENT),
    ],
    ids=[
        "customer-input-by-support",
        "customer-input-by-customer-comment",
        "awaiting-confirmation-by-customer-comment",
        "testing-by-customer-comment",
        "work-plan-by-development",
    ],
)
async def test_leaving_status_cancels_deadlines(
    cases: TimeSkippingCases, status: Status, leave: Any, left_to: Status
) -> None:
    number, handle, case = await enter_status(cases, status)
    latest_due = max(d.due_at for d in case.deadlines)

    await sleep_until(cases.env, case.status_since + timedelta(days=1))
    left: Case = await leave(handle)
    assert left.status is left_to
    assert left.deadlines == []

    await sleep_until(cases.env, latest_due + timedelta(days=1))
    case = await handle.query(SupportCase.get_case)
    assert case.status is left_to
    assert case.closure is None
    assert case.reminders_sent == 0
    assert [entry for entry in case.history if entry.actor_role == "system"] == []
    assert notices(cases.outbox, number, "reminder") == []
    assert notices(cases.outbox, number, "closure") == []


async def test_reentering_status_restarts_deadlines(cases: TimeSkippingCases) -> None:
    number, handle, case = await enter_status(cases, Status.PENDING_CUSTOMER_INPUT)
    first_since = case.status_since
    first_closure = deadline(case, "pending_customer_input_closure").due_at

    await sleep_until(cases.env, first_since + timedelta(days=7, seconds=1))
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 1

    await sleep_until(cases.env, first_since + timedelta(days=8))
    case = await leave_by_customer_comment(handle)
    assert case.status is Status.UPDATE_RECEIVED
    await sleep_until(cases.env, first_since + timedelta(days=8, hours=1))
    case = await handle.execute_update(
        SupportCase.change_status, set_status(Status.PENDING_CUSTOMER_INPUT)
    )
    second_since = case.status_since
    second_reminder = deadline(case, "pending_customer_input_reminder").due_at
    second_closure = deadline(case, "pending_customer_input_closure").due_at
    assert second_since >= first_since + timedelta(days=8, hours=1)
    assert second_reminder == second_since + timedelta(days=7)
    assert second_closure == second_since + timedelta(days=28)

    await sleep_until(cases.env, second_reminder - ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 1

    await sleep_until(cases.env, second_reminder + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 2
    assert_within_second_after(events(case, "reminder_sent")[-1].at, second_reminder)
    message_ids = {m["Message-ID"] for m in notices(cases.outbox, number, "reminder")}
    assert len(message_ids) == 2

    # The first stay's closure time passes without effect.
    await sleep_until(cases.env, first_closure + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.status is Status.PENDING_CUSTOMER_INPUT

    await sleep_until(cases.env, second_closure - ONE_SECOND)
    assert await current_status(handle) is Status.PENDING_CUSTOMER_INPUT
    await sleep_until(cases.env, second_closure + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"
    assert_within_second_after(final.closure.at, second_closure)


async def test_comments_and_priority_keep_deadlines(cases: TimeSkippingCases) -> None:
    number, handle, case = await enter_status(cases, Status.PENDING_CUSTOMER_INPUT)
    original = case.deadlines
    since = case.status_since
    reminder = deadline(case, "pending_customer_input_reminder").due_at
    closure = deadline(case, "pending_customer_input_closure").due_at

    await sleep_until(cases.env, since + timedelta(days=1))
    edits: list[tuple[str, Any, BaseModel]] = [
        (
            "support comment",
            SupportCase.add_comment,
            AddCommentInput(actor=SUPPORT, body="We are still waiting for the logs."),
        ),
        (
            "internal support comment",
            SupportCase.add_comment,
            AddCommentInput(
                actor=SUPPORT, body="Customer was called twice.", internal=True
            ),
        ),
        (
            "internal development comment",
            SupportCase.add_comment,
            AddCommentInput(
                actor=DEVELOPER, body="Index looks fine on our side.", internal=True
            ),
        ),
        (
            "priority change",
            SupportCase.change_priority,
            ChangePriorityInput(priority=Priority.HIGH, actor=SUPPORT),
        ),
    ]
    for label, update, request in edits:
        case = await handle.execute_update(update, request)
        assert case.deadlines == original, f"the {label} moved the deadlines"
        assert case.status_since == since

    await sleep_until(cases.env, since + timedelta(days=2))
    case = await handle.execute_update(
        SupportCase.change_priority,
        ChangePriorityInput(priority=Priority.CRITICAL, actor=SUPPORT),
    )
    assert case.deadlines == original
    assert len(case.comments) == 3

    await sleep_until(cases.env, reminder + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert_within_second_after(events(case, "reminder_sent")[0].at, reminder)

    await sleep_until(cases.env, closure - ONE_SECOND)
    assert await current_status(handle) is Status.PENDING_CUSTOMER_INPUT
    await sleep_until(cases.env, closure + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert_within_second_after(final.closure.at, closure)
    assert len(notices(cases.outbox, number, "closure")) == 1


# ---- imported cases whose deadlines have passed


async def test_import_past_reminder_sends_at_once(cases: TimeSkippingCases) -> None:
    since = await cases.env.get_current_time() - timedelta(days=10)
    number, handle = await cases.start(
        status=Status.PENDING_CUSTOMER_INPUT.value, status_since=since.isoformat()
    )

    async def reminder_sent() -> Case:
        case = await handle.query(SupportCase.get_case)
        assert case.reminders_sent == 1
        return case

    case = await assert_eventually(reminder_sent)
    assert len(notices(cases.outbox, number, "reminder")) == 1
    assert_within_second_after(events(case, "reminder_sent")[0].at, case.opened_at)
    assert case.status is Status.PENDING_CUSTOMER_INPUT
    assert case.status_since == since
    closure = since + timedelta(days=28)
    assert [(d.rule, d.due_at) for d in case.deadlines] == [
        ("pending_customer_input_closure", closure)
    ]

    await sleep_until(cases.env, closure - ONE_SECOND)
    assert await current_status(handle) is Status.PENDING_CUSTOMER_INPUT
    await sleep_until(cases.env, closure + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"
    assert_within_second_after(final.closure.at, closure)
    assert len(notices(cases.outbox, number, "reminder")) == 1


@pytest.mark.parametrize(
    ("status", "age"),
    [
        (Status.PENDING_CUSTOMER_INPUT, timedelta(days=30)),
        (Status.AWAITING_CUSTOMER_CONFIRMATION, timedelta(days=20)),
        (Status.PENDING_CUSTOMER_TESTING, timedelta(days=100)),
        (Status.PENDING_WORK_PLAN, timedelta(days=800)),
    ],
    ids=["customer-input", "awaiting-confirmation", "testing", "work-plan"],
)
async def test_import_past_closure_closes_at_once(
    cases: TimeSkippingCases, status: Status, age: timedelta
) -> None:
    since = await cases.env.get_current_time() - age
    number, handle = await cases.start(
        status=status.value, status_since=since.isoformat()
    )

    final = await final_case(cases.env, handle)
    assert final.status is Status.CLOSED
    assert final.closure is not None
    assert final.closure.rule == f"{status.name.lower()}_closure"
    assert final.closure.actor_role == "system"
    assert_within_second_after(final.closure.at, final.opened_at)
    assert final.reminders_sent == 0
    assert notices(cases.outbox, number, "reminder") == []
    assert len(notices(cases.outbox, number, "closure")) == 1


# ---- the closure email


async def close_by_timer(cases: TimeSkippingCases, handle: CaseHandle) -> str:
    case = await handle.execute_update(
        SupportCase.change_status,
        set_status(Status.AWAITING_CUSTOMER_CONFIRMATION),
    )
    await sleep_until(cases.env, case.deadlines[0].due_at + ONE_SECOND)
    return "closure 14 days after Awaiting Customer Confirmation"


async def close_by_support(cases: TimeSkippingCases, handle: CaseHandle) -> str:
    note = "Fixed by rebuilding the search index."
    await handle.execute_update(
        SupportCase.change_status, set_status(Status.CLOSED, note=note)
    )
    return note


async def close_by_customer(cases: TimeSkippingCases, handle: CaseHandle) -> str:
    note = "Search works again, thank you."
    await handle.execute_update(
        SupportCase.change_status,
        set_status(Status.CLOSED, actor=CUSTOMER, note=note),
    )
    return note


async def close_by_signal(cases: TimeSkippingCases, handle: CaseHandle) -> str:
    note = "Duplicate of another case."
    await handle.signal("change_status", set_status(Status.CLOSED, note=note))
    return note


@pytest.mark.parametrize(
    "close", [close_by_timer, close_by_support, close_by_customer, close_by_signal]
)
async def test_closure_email_sent_once(cases: TimeSkippingCases, close: Any) -> None:
    number, handle = await cases.start()
    reason_text: str = await close(cases, handle)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closed_reason is not None
    assert reason_text in final.closed_reason

    # The run has ended, so nothing can send a second notice later.
    await sleep_until(cases.env, final.closure.at + timedelta(days=30))
    emails = notices(cases.outbox, number, "closure")
    assert len(emails) == 1
    assert emails[0]["Message-ID"] == (
        f"<case-{number}.{final.status_entry}.closure@casedesk.localhost>"
    )
    body = text_body(emails[0])
    assert f"Reason: {final.closed_reason}" in body
    assert reason_text in body
    assert "clone the case" in body
    assert f"choose Clone Case on case {number}" in body


# ---- serialised times

ISO_8601_WITH_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
)


def case_times(dumped: dict[str, Any]) -> list[str]:
    times = [dumped["opened_at"], dumped["status_since"]]
    times += [entry["due_at"] for entry in dumped["deadlines"]]
    times += [entry["at"] for entry in dumped["history"]]
    return times


async def test_get_case_times_are_iso_8601(cases: TimeSkippingCases) -> None:
    number, handle, case = await enter_status(
        cases,
        Status.PENDING_CUSTOMER_INPUT,
        institution={
            "id": "inst-7",
            "name": "Berlin Library",
            "time_zone": "Europe/Berlin",
        },
    )
    assert len(case.deadlines) == 2

    dumped = (await handle.query(SupportCase.get_case)).model_dump(mode="json")
    # The payload as the workflow wrote it, before the client parses it into a Case.
    raw: dict[str, Any] = await handle.query("get_case", result_type=dict)

    for source, data in (("model_dump", dumped), ("query payload", raw)):
        times = case_times(data)
        assert len(times) == 6, f"{source}: {times}"
        for value in times:
            assert isinstance(value, str), f"{source}: {value!r} is not a string"
            assert ISO_8601_WITH_OFFSET.match(value), (
                f"{source}: {value!r} is not ISO 8601 with an offset"
            )
            assert datetime.fromisoformat(value).utcoffset() is not None
