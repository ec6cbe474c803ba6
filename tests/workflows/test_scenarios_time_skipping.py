"""Whole-life scenarios of support cases on the time-skipping test server.

Each scenario keeps one worker running for the whole life of its cases (see
``TimeSkippingCases``) and moves the shared server clock forward with
``sleep_until``, computing every time from the server's current time.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.case import HistoryEntry
from domain.statuses import Role, Status
from tests.helpers import (
    CUSTOMER,
    ONE_SECOND,
    CaseHandle,
    TimeSkippingCases,
    add_calendar_months,
    assert_eventually,
    assert_within_second_after,
    events,
    final_case,
    notices,
    read_case,
    set_status,
    sleep_until,
    text_body,
)
from workflows.messages import AddCommentInput
from workflows.support_case import SupportCase

BERLIN = ZoneInfo("Europe/Berlin")
BERLIN_INSTITUTION = {
    "id": "inst-berlin",
    "name": "Berlin State Library",
    "time_zone": "Europe/Berlin",
}


async def test_leaving_status_cancels_timers(cases: TimeSkippingCases) -> None:
    now = await cases.env.get_current_time()
    day_0 = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    number, handle = await cases.start()

    await sleep_until(cases.env, day_0)
    case = await handle.execute_update(
        SupportCase.change_status, set_status(Status.PENDING_CUSTOMER_INPUT)
    )
    assert len(case.deadlines) == 2

    await sleep_until(cases.env, day_0 + timedelta(days=2, hours=1))
    case = await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput(actor=CUSTOMER, body="The error is back since Monday."),
    )
    assert case.status is Status.UPDATE_RECEIVED
    assert case.deadlines == []

    await sleep_until(cases.env, day_0 + timedelta(days=2, hours=2))
    case = await handle.execute_update(
        SupportCase.change_status, set_status(Status.IN_PROGRESS_TIER_1)
    )
    assert case.deadlines == []

    await sleep_until(cases.env, day_0 + timedelta(days=60))
    case = await handle.query(SupportCase.get_case)
    assert case.status is Status.IN_PROGRESS_TIER_1
    assert case.reminders_sent == 0
    assert case.closure is None
    assert [entry for entry in case.history if entry.actor_role == "system"] == []
    assert notices(cases.outbox, number, "reminder") == []
    assert notices(cases.outbox, number, "closure") == []


async def test_imported_case_arms_timers(cases: TimeSkippingCases) -> None:
    since = await cases.env.get_current_time() - timedelta(hours=3)
    number, handle = await cases.start(
        status=Status.PENDING_CUSTOMER_INPUT.value, status_since=since.isoformat()
    )
    reminder = since + timedelta(days=7)
    closure = since + timedelta(days=28)

    case = await handle.query(SupportCase.get_case)
    assert [entry.event for entry in case.history] == ["imported"]
    assert [(d.rule, d.due_at) for d in case.deadlines] == [
        ("pending_customer_input_reminder", reminder),
        ("pending_customer_input_closure", closure),
    ]

    await sleep_until(cases.env, reminder - ONE_SECOND)
    assert notices(cases.outbox, number, "reminder") == []
    await sleep_until(cases.env, reminder + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 1
    assert_within_second_after(events(case, "reminder_sent")[0].at, reminder)
    assert len(notices(cases.outbox, number, "reminder")) == 1

    await sleep_until(cases.env, closure - ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.status is Status.PENDING_CUSTOMER_INPUT
    await sleep_until(cases.env, closure + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"
    assert_within_second_after(final.closure.at, closure)
    assert len(notices(cases.outbox, number, "closure")) == 1


async def test_only_closure_statuses_close_themselves(
    cases: TimeSkippingCases,
) -> None:
    since = await cases.env.get_current_time()
    handles: dict[Status, CaseHandle] = {}
    for status in Status:
        if status is Status.CLOSED:
            continue
        _, handles[status] = await cases.start(
            status=status.value, status_since=since.isoformat()
        )
    closing_after = {
        Status.PENDING_CUSTOMER_INPUT: since + timedelta(days=28),
        Status.AWAITING_CUSTOMER_CONFIRMATION: since + timedelta(days=14),
        Status.PENDING_CUSTOMER_TESTING: add_calendar_months(since, 3),
        Status.PENDING_WORK_PLAN: add_calendar_months(since, 24),
    }

    async def check_closed(elapsed: str, closed: set[Status]) -> None:
        for status, handle in handles.items():
            case = await read_case(cases.env, handle)
            if status in closed:
                assert case.status is Status.CLOSED, f"{status} should have closed"
                assert case.closure is not None
                assert case.closure.rule == f"{status.name.lower()}_closure"
                assert_within_second_after(case.closure.at, closing_after[status])
            else:
                assert case.status is status, f"{status} changed after {elapsed}"

    await sleep_until(cases.env, since + timedelta(days=40))
    await check_closed(
        "40 days",
        {Status.PENDING_CUSTOMER_INPUT, Status.AWAITING_CUSTOMER_CONFIRMATION},
    )

    await sleep_until(cases.env, add_calendar_months(since, 25))
    await check_closed("25 months", set(closing_after))

    finished = {case.case_number: case for case in await cases.close_open_cases()}
    for status, handle in handles.items():
        closure = finished[handle.id.removeprefix("case-")].closure
        assert closure is not None
        expected_role = "system" if status in closing_after else Role.SUPPORT.value
        assert closure.actor_role == expected_role, f"{status}: {closure}"


def spring_entry(now: datetime) -> datetime:
    """Return 10:00 CET on the first 25 March after ``now`` that is still in winter time."""
    year = now.year
    while True:
        entry = datetime(year, 3, 25, 10, tzinfo=BERLIN)
        # In years where 25 March is the last Sunday, 10:00 is already CEST.
        if entry > now + timedelta(minutes=1) and entry.utcoffset() == timedelta(
            hours=1
        ):
            return entry
        year += 1


async def test_reminder_across_spring_dst_change(cases: TimeSkippingCases) -> None:
    entry = spring_entry(await cases.env.get_current_time())
    year = entry.year
    expected_reminder = datetime(year, 4, 1, 8, 0, tzinfo=UTC)
    expected_closure = datetime(year, 4, 22, 8, 0, tzinfo=UTC)
    assert expected_reminder.astimezone(BERLIN).hour == 10
    assert expected_reminder.astimezone(BERLIN).utcoffset() == timedelta(hours=2)
    number, handle = await cases.start(institution=BERLIN_INSTITUTION)

    await sleep_until(cases.env, entry)
    case = await handle.execute_update(
        SupportCase.change_status, set_status(Status.PENDING_CUSTOMER_INPUT)
    )
    assert_within_second_after(case.status_since, entry)
    reminder, closure = case.deadlines
    assert reminder.rule == "pending_customer_input_reminder"
    # The case entered Pending Customer Input up to a second after 10:00 CET,
    # and the due times keep that offset.
    assert_within_second_after(reminder.due_at, expected_reminder)
    assert_within_second_after(closure.due_at, expected_closure)
    # Seven calendar days contain one hour less because the clocks go forward.
    assert reminder.due_at - case.status_since == timedelta(days=7, hours=-1)

    await sleep_until(cases.env, reminder.due_at - ONE_SECOND)
    assert notices(cases.outbox, number, "reminder") == []
    await sleep_until(cases.env, reminder.due_at + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 1
    assert_within_second_after(events(case, "reminder_sent")[0].at, reminder.due_at)
    emails = notices(cases.outbox, number, "reminder")
    assert len(emails) == 1
    closes_on = f"{year}-04-22 10:00 CEST"
    assert f"the case will be closed on {closes_on}" in text_body(emails[0])


async def test_closure_across_autumn_dst_change(cases: TimeSkippingCases) -> None:
    now = await cases.env.get_current_time()
    year = now.year
    if datetime(year, 10, 20, 9, tzinfo=BERLIN) <= now + timedelta(minutes=1):
        year += 1
    entry = datetime(year, 10, 20, 9, tzinfo=BERLIN)
    expected_closure = datetime(year, 11, 3, 8, 0, tzinfo=UTC)
    # The last Sunday of October always lies between 20 October and 3 November.
    assert entry.utcoffset() == timedelta(hours=2)
    assert expected_closure.astimezone(BERLIN).hour == 9
    assert expected_closure.astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    number, handle = await cases.start(institution=BERLIN_INSTITUTION)

    await sleep_until(cases.env, entry)
    case = await handle.execute_update(
        SupportCase.change_status,
        set_status(Status.AWAITING_CUSTOMER_CONFIRMATION),
    )
    assert_within_second_after(case.status_since, entry)
    (closure,) = case.deadlines
    assert_within_second_after(closure.due_at, expected_closure)
    # Fourteen calendar days contain one hour more because the clocks go back.
    assert closure.due_at - case.status_since == timedelta(days=14, hours=1)

    await sleep_until(cases.env, closure.due_at - ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.status is Status.AWAITING_CUSTOMER_CONFIRMATION
    await sleep_until(cases.env, closure.due_at + ONE_SECOND)
    final = await final_case(cases.env, handle)
    assert final.closure is not None
    assert final.closure.rule == "awaiting_customer_confirmation_closure"
    assert_within_second_after(final.closure.at, closure.due_at)
    assert len(notices(cases.outbox, number, "closure")) == 1


# Each malformed signal, and a fragment of the reason the case must record for it.
MALFORMED_SIGNALS: list[tuple[str, list[Any], str]] = [
    (
        "add_comment",
        [{"actor": {"role": "support"}, "body": ["not", "text"], "internal": "maybe"}],
        "body: Input should be a valid string",
    ),
    (
        "change_status",
        [{"status": "Pending Customer Input"}],
        "actor: Field required",
    ),
    (
        "change_status",
        [{"status": "Waiting For Godot", "actor": {"role": "support"}}],
        "status: Input should be",
    ),
    (
        "change_status",
        [
            {"status": "Pending Customer Input", "actor": {"role": "support"}},
            "urgent",
        ],
        "expected exactly one argument, got 2",
    ),
    (
        "change_priority",
        [{"priority": "High", "actor": {"role": "support"}, "escalate": True}],
        "escalate: Extra inputs are not permitted",
    ),
    ("change_priority", ["High"], "Input should be a valid dictionary"),
    (
        "escalate_case",
        [{"status": "Closed", "actor": {"role": "support"}}],
        "unknown signal name 'escalate_case'",
    ),
]


async def test_malformed_signals_recorded_as_rejected(
    cases: TimeSkippingCases,
) -> None:
    number, handle = await cases.start()
    for name, args, _ in MALFORMED_SIGNALS:
        await handle.signal(name, args=args)

    async def all_rejected() -> list[HistoryEntry]:
        case = await handle.query(SupportCase.get_case)
        rejected = events(case, "signal_rejected")
        assert len(rejected) == len(MALFORMED_SIGNALS)
        return rejected

    rejected = await assert_eventually(all_rejected)
    for entry, (name, _, reason) in zip(rejected, MALFORMED_SIGNALS, strict=True):
        assert entry.rejected is True
        assert entry.note.startswith(f"signal {name!r} rejected: "), entry.note
        assert reason in entry.note, entry.note

    case = await handle.query(SupportCase.get_case)
    assert case.status is Status.NEW
    assert case.priority.value == "Normal"
    assert case.comments == []

    case = await handle.execute_update(
        SupportCase.change_status, set_status(Status.PENDING_CUSTOMER_INPUT)
    )
    assert case.status is Status.PENDING_CUSTOMER_INPUT
    reminder = case.deadlines[0]
    await sleep_until(cases.env, reminder.due_at + ONE_SECOND)
    case = await handle.query(SupportCase.get_case)
    assert case.reminders_sent == 1
    assert len(notices(cases.outbox, number, "reminder")) == 1
