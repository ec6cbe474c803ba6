"""Tests of the Case aggregate, driven with explicit ``now`` values."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from domain.case import (
    MAX_COMMENT_CHARACTERS_PER_CASE,
    MAX_COMMENT_LENGTH,
    MAX_HISTORY_ENTRIES,
    Actor,
    Case,
    CaseInput,
)
from domain.deadlines import DeadlineKind
from domain.errors import CaseRuleError
from domain.statuses import Priority, Role, Status
from tests.helpers import case_input

NOW = datetime(2025, 3, 25, 9, 0, tzinfo=UTC)

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CUSTOMER = Actor(role=Role.CUSTOMER, name="Ann Lee")
STAFF_ROLES = [
    Role.SUPPORT,
    Role.DEVELOPMENT,
    Role.CONTENT_OPERATIONS,
    Role.PRODUCT_MANAGEMENT,
]
CUSTOMER_MOVES = [
    (Status.PENDING_CUSTOMER_INPUT, Status.UPDATE_RECEIVED),
    (Status.AWAITING_CUSTOMER_CONFIRMATION, Status.REOPENED),
    (Status.PENDING_CUSTOMER_TESTING, Status.UPDATE_RECEIVED),
]
OPEN_STATUSES = [status for status in Status if status is not Status.CLOSED]


def make_input(**overrides: Any) -> CaseInput:
    # case_input() replaces an empty case_number, so overrides go in afterwards.
    data = case_input()
    data.update(overrides)
    return CaseInput.model_validate(data)


def open_case(now: datetime = NOW, **overrides: Any) -> Case:
    return Case.open(make_input(**overrides), now)


def in_status(status: Status, now: datetime = NOW, **overrides: Any) -> Case:
    """Open a case and let support move it to ``status`` at ``now``."""
    case = open_case(now - timedelta(hours=1), **overrides)
    case.change_status(SUPPORT, status, "", now)
    return case


def due_times(case: Case) -> list[datetime]:
    return [deadline.due_at for deadline in case.deadlines]


def rule_error(excinfo: pytest.ExceptionInfo[CaseRuleError]) -> tuple[str, str]:
    return excinfo.value.code, str(excinfo.value)


# ---- opening


def test_open_defaults_to_new() -> None:
    case = open_case()

    assert case.status is Status.NEW
    assert case.status_since == NOW
    assert case.opened_at == NOW
    assert case.status_entry == 1
    assert case.deadlines == []
    assert case.closure is None
    assert [entry.event for entry in case.history] == ["opened"]
    assert case.history[0].to_status is Status.NEW


def test_import_keeps_status_since() -> None:
    since = NOW - timedelta(days=3)
    case = open_case(status="Pending Customer Input", status_since=since.isoformat())

    assert case.status is Status.PENDING_CUSTOMER_INPUT
    assert case.status_since == since
    assert case.opened_at == NOW
    assert case.history[0].event == "imported"


def test_import_without_since_uses_now() -> None:
    case = open_case(status="Update Received")

    assert case.status is Status.UPDATE_RECEIVED
    assert case.status_since == NOW


def test_import_since_in_future_rejected() -> None:
    since = NOW + timedelta(minutes=1)
    request = make_input(
        status="Pending Customer Input", status_since=since.isoformat()
    )

    with pytest.raises(CaseRuleError) as caught:
        Case.open(request, NOW)

    code, message = rule_error(caught)
    assert code == "status_since_in_future"
    assert since.isoformat() in message


def test_status_since_without_status_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        make_input(status_since=NOW.isoformat())

    assert "status_since" in str(caught.value)
    assert "status is missing" in str(caught.value)


@pytest.mark.parametrize("priority", ["Normal", "Low"])
def test_import_work_plan_allowed(priority: str) -> None:
    case = open_case(status="Pending Work Plan", priority=priority)

    assert case.status is Status.PENDING_WORK_PLAN


@pytest.mark.parametrize("priority", ["High", "Critical"])
def test_import_work_plan_high_rejected(priority: str) -> None:
    request = make_input(status="Pending Work Plan", priority=priority)

    with pytest.raises(CaseRuleError) as caught:
        Case.open(request, NOW)

    code, message = rule_error(caught)
    assert code == "work_plan_priority"
    assert "'Pending Work Plan'" in message
    assert f"'{priority}'" in message
    assert "Normal or Low" in message


def test_import_work_plan_multiple_rejected() -> None:
    request = make_input(status="Pending Work Plan", affects_multiple_institutions=True)

    with pytest.raises(CaseRuleError) as caught:
        Case.open(request, NOW)

    code, message = rule_error(caught)
    assert code == "work_plan_multiple_institutions"
    assert "'Pending Work Plan'" in message
    assert "several institutions" in message


def test_import_product_review_allowed() -> None:
    case = open_case(status="Pending Product Review", priority="Critical")

    assert case.status is Status.PENDING_PRODUCT_REVIEW
    assert case.deadlines == []


def test_import_closed_gives_closure() -> None:
    since = NOW - timedelta(days=40)
    case = open_case(status="Closed", status_since=since.isoformat())

    assert case.is_closed
    assert case.closure is not None
    assert case.closure.at == since
    assert case.closure.actor_role == "system"
    assert case.closed_reason == "imported in status Closed"
    assert case.deadlines == []


@pytest.mark.parametrize(
    "number",
    ["00012345", "SF-2024-001", "a", "Z", "-", "A" * 32, "abc-DEF-123"],
)
def test_case_number_valid(number: str) -> None:
    assert make_input(case_number=number).case_number == number


@pytest.mark.parametrize(
    "number",
    [
        "",
        "A" * 33,
        "C 1",
        "C_1",
        "C.1",
        "C/1",
        "C-1\n",
        "\nC-1",
        "C-1\r\nBcc: x@example.org",
        "Ç-1",
        "\uff11\uff12",
        "<C-1>",
    ],
    ids=repr,
)
def test_case_number_invalid(number: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_input(case_number=number)

    assert "invalid case number" in str(caught.value)


def test_cloned_from_validated() -> None:
    with pytest.raises(ValidationError) as caught:
        make_input(case_number="C-2", cloned_from="C 1")

    assert "invalid case number 'C 1'" in str(caught.value)


def test_clone_of_itself_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        make_input(case_number="C-2", cloned_from="C-2")

    assert "clone of itself" in str(caught.value)


def test_clone_note_in_history() -> None:
    case = open_case(case_number="C-2", cloned_from="C-1")

    assert case.cloned_from == "C-1"
    assert case.history[0].note == "cloned from case C-1"


# The subject goes into the Subject header. The email package rejects a header
# value that str.splitlines() splits, which it does at \n, \r, \x0b, \x0c,
# \x1c, \x85, U+2028 and U+2029. The other entries are control characters.
HEADER_BREAKERS = [
    "\n",
    "\r",
    "\r\nBcc: victim@example.org",
    "\t",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1c",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
]


@pytest.mark.parametrize("breaker", HEADER_BREAKERS, ids=repr)
def test_subject_control_character_rejected(breaker: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_input(subject=f"Login fails{breaker}after update")

    assert "line break or control character" in str(caught.value)


@pytest.mark.parametrize("breaker", ["\n", "\u2028"], ids=repr)
def test_contact_name_control_character_rejected(breaker: str) -> None:
    contact = {"name": f"Ann{breaker}Lee", "email": "ann.lee@example.org"}

    with pytest.raises(ValidationError) as caught:
        make_input(contact=contact)

    assert "contact name" in str(caught.value)


def test_subject_unicode_accepted() -> None:
    subject = "Suche findet keine Zeitschriften \u2013 \u00dcbersicht leer"

    assert make_input(subject=subject).subject == subject


def test_description_may_span_lines() -> None:
    description = "Steps:\n1. Log in\n2. Search"

    assert make_input(description=description).description == description


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus", "", "Europe/Berlin ", "europe/berlin", "../../etc/passwd"],
    ids=repr,
)
def test_unknown_time_zone_rejected(zone: str) -> None:
    institution = {"id": "inst-1", "name": "Example University", "time_zone": zone}

    with pytest.raises(ValidationError) as caught:
        make_input(institution=institution)

    assert f"unknown time zone {zone!r}" in str(caught.value)


def test_localtime_zone_rejected() -> None:
    institution = {"id": "inst-1", "name": "Example", "time_zone": "localtime"}

    with pytest.raises(ValidationError):
        make_input(institution=institution)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "UTC", None])
def test_known_time_zone_accepted(zone: str | None) -> None:
    institution = {"id": "inst-1", "name": "Example University", "time_zone": zone}

    assert make_input(institution=institution).institution.time_zone == zone


def test_contact_email_valid() -> None:
    contact = {"name": "Ann Lee", "email": "ann.lee@example.org"}

    assert make_input(contact=contact).contact.email == "ann.lee@example.org"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "ann.lee",
        "ann.lee@",
        "@example.org",
        "ann lee@example.org",
        "ann@example.org\r\nBcc: victim@example.org",
        "ann@@example.org",
    ],
    ids=repr,
)
def test_contact_email_invalid(address: str) -> None:
    contact = {"name": "Ann Lee", "email": address}

    with pytest.raises(ValidationError) as caught:
        make_input(contact=contact)

    assert "email" in str(caught.value)


# ---- deadlines


def test_deadlines_from_status_since_local() -> None:
    # 2025-03-25 10:00 CET in Berlin. Seven and 28 days later Berlin is on
    # CEST, so 10:00 local is 08:00 UTC.
    since = datetime(2025, 3, 25, 10, tzinfo=ZoneInfo("Europe/Berlin"))
    institution = {"id": "i", "name": "Example", "time_zone": "Europe/Berlin"}
    case = open_case(
        since + timedelta(days=2),
        institution=institution,
        status="Pending Customer Input",
        status_since=since.isoformat(),
    )
    reminder, closure = case.deadlines

    assert reminder.kind is DeadlineKind.REMINDER
    assert reminder.due_at == datetime(2025, 4, 1, 8, tzinfo=UTC)
    assert reminder.rule == "pending_customer_input_reminder"
    assert closure.kind is DeadlineKind.CLOSURE
    assert closure.due_at == datetime(2025, 4, 22, 8, tzinfo=UTC)
    assert closure.rule == "pending_customer_input_closure"
    assert closure.status_entry == 1


def test_imported_work_plan_deadline() -> None:
    since = datetime(2024, 2, 29, 12, tzinfo=UTC)
    case = open_case(status="Pending Work Plan", status_since=since.isoformat())

    assert due_times(case) == [datetime(2026, 2, 28, 12, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            Status.PENDING_CUSTOMER_INPUT,
            [
                (DeadlineKind.REMINDER, datetime(2025, 2, 7, 10, tzinfo=UTC)),
                (DeadlineKind.CLOSURE, datetime(2025, 2, 28, 10, tzinfo=UTC)),
            ],
        ),
        (
            Status.AWAITING_CUSTOMER_CONFIRMATION,
            [(DeadlineKind.CLOSURE, datetime(2025, 2, 14, 10, tzinfo=UTC))],
        ),
        (
            Status.PENDING_CUSTOMER_TESTING,
            [(DeadlineKind.CLOSURE, datetime(2025, 4, 30, 10, tzinfo=UTC))],
        ),
        (Status.IN_PROGRESS, []),
        (Status.UPDATE_RECEIVED, []),
        (Status.PENDING_DEVELOPMENT, []),
    ],
    ids=lambda value: value.value if isinstance(value, Status) else "",
)
def test_entering_status_arms_deadlines(
    status: Status, expected: list[tuple[DeadlineKind, datetime]]
) -> None:
    entered = datetime(2025, 1, 31, 10, tzinfo=UTC)
    case = in_status(status, entered)

    assert [(d.kind, d.due_at) for d in case.deadlines] == expected
    assert all(d.status_entry == case.status_entry for d in case.deadlines)


def test_leaving_status_cancels_deadlines() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)
    assert len(case.deadlines) == 2

    case.change_status(SUPPORT, Status.IN_PROGRESS, "", NOW + timedelta(days=1))

    assert case.deadlines == []


def test_reentering_status_rearms_deadlines() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)
    first_due = due_times(case)
    case.change_status(SUPPORT, Status.IN_PROGRESS, "", NOW + timedelta(days=2))
    reentered = NOW + timedelta(days=5)

    case.change_status(SUPPORT, Status.PENDING_CUSTOMER_INPUT, "", reentered)

    assert due_times(case) == [
        reentered + timedelta(days=7),
        reentered + timedelta(days=28),
    ]
    assert due_times(case) != first_due
    assert case.status_since == reentered
    assert all(d.status_entry == case.status_entry for d in case.deadlines)


def comment_by_support(case: Case, now: datetime) -> None:
    case.add_comment(SUPPORT, "We are looking into it.", False, now)


def internal_comment(case: Case, now: datetime) -> None:
    case.add_comment(SUPPORT, "Probably the index job.", True, now)


def development_comment(case: Case, now: datetime) -> None:
    case.add_comment(Actor(role=Role.DEVELOPMENT), "Fix is in review.", False, now)


def priority_change(case: Case, now: datetime) -> None:
    case.change_priority(SUPPORT, Priority.HIGH, "many users affected", now)


def rejected_signal(case: Case, now: datetime) -> None:
    case.record_rejected_signal(
        "change_status", "not allowed", Status.NEW, "customer", "Ann Lee", now
    )


@pytest.mark.parametrize(
    "edit",
    [
        comment_by_support,
        internal_comment,
        development_comment,
        priority_change,
        rejected_signal,
    ],
    ids=lambda edit: edit.__name__,
)
@pytest.mark.parametrize(
    "status",
    [
        Status.PENDING_CUSTOMER_INPUT,
        Status.AWAITING_CUSTOMER_CONFIRMATION,
        Status.PENDING_CUSTOMER_TESTING,
    ],
    ids=lambda status: status.value,
)
def test_edits_keep_deadlines(
    edit: Callable[[Case, datetime], None], status: Status
) -> None:
    case = in_status(status)
    deadlines_before = list(case.deadlines)
    due_before = due_times(case)
    since_before = case.status_since

    edit(case, NOW + timedelta(days=3))

    assert due_times(case) == due_before
    assert case.deadlines == deadlines_before
    assert case.status_since == since_before
    assert case.status is status


def test_import_deadlines_keep_after_edit() -> None:
    since = NOW - timedelta(days=6)
    case = open_case(status="Pending Customer Input", status_since=since.isoformat())
    due_before = due_times(case)

    case.add_comment(SUPPORT, "Reminder: we need the log file.", False, NOW)
    case.change_priority(SUPPORT, Priority.LOW, "", NOW)

    assert due_times(case) == due_before
    assert due_before[0] == since + timedelta(days=7)


# ---- comments


@pytest.mark.parametrize(("status", "target"), CUSTOMER_MOVES, ids=lambda s: s.value)
def test_customer_comment_moves_status(status: Status, target: Status) -> None:
    case = in_status(status)
    commented = NOW + timedelta(days=1)

    case.add_comment(CUSTOMER, "Here is the log file.", False, commented)

    assert case.status is target
    assert case.status_since == commented
    assert case.history[-1].event == "status_changed"
    assert case.history[-1].from_status is status
    assert case.history[-1].actor_role == "customer"
    assert case.comments[-1].body == "Here is the log file."


@pytest.mark.parametrize(
    "status", [move[0] for move in CUSTOMER_MOVES], ids=lambda s: s.value
)
def test_non_contact_comment_keeps_status(status: Status) -> None:
    case = in_status(status)
    entry_before = case.status_entry
    deadlines_before = list(case.deadlines)

    case.add_comment(
        CUSTOMER, "My colleague is away.", False, NOW + timedelta(days=1), False
    )

    assert case.status is status
    assert case.status_entry == entry_before
    assert case.deadlines == deadlines_before
    assert case.comments[-1].body == "My colleague is away."
    assert case.comments[-1].from_contact is False


@pytest.mark.parametrize("internal", [False, True])
@pytest.mark.parametrize("role", STAFF_ROLES, ids=lambda role: role.value)
@pytest.mark.parametrize(
    "status", [move[0] for move in CUSTOMER_MOVES], ids=lambda s: s.value
)
def test_staff_comment_keeps_status(status: Status, role: Role, internal: bool) -> None:
    case = in_status(status)
    entry_before = case.status_entry

    case.add_comment(Actor(role=role), "Noted.", internal, NOW + timedelta(days=1))

    assert case.status is status
    assert case.status_entry == entry_before
    assert case.comments[-1].actor_role is role
    assert case.comments[-1].internal is internal


@pytest.mark.parametrize(
    "status",
    [s for s in OPEN_STATUSES if s not in {move[0] for move in CUSTOMER_MOVES}],
    ids=lambda s: s.value,
)
def test_customer_comment_keeps_other_status(status: Status) -> None:
    case = open_case(status=status.value)

    case.add_comment(CUSTOMER, "Any news?", False, NOW + timedelta(hours=1))

    assert case.status is status
    assert len(case.comments) == 1


@pytest.mark.parametrize("actor", [SUPPORT, CUSTOMER], ids=lambda a: a.role.value)
def test_comment_on_closed_rejected(actor: Actor) -> None:
    case = in_status(Status.CLOSED)

    with pytest.raises(CaseRuleError) as caught:
        case.add_comment(actor, "It happens again.", False, NOW + timedelta(days=1))

    code, message = rule_error(caught)
    assert code == "case_closed"
    assert "clone" in message
    assert case.comments == []


@pytest.mark.parametrize("body", ["", "   ", "\n\t"], ids=repr)
def test_empty_comment_rejected(body: str) -> None:
    case = open_case()

    with pytest.raises(CaseRuleError) as caught:
        case.add_comment(SUPPORT, body, False, NOW)

    assert caught.value.code == "comment_empty"


def test_too_long_comment_rejected() -> None:
    case = open_case()

    with pytest.raises(CaseRuleError) as caught:
        case.add_comment(SUPPORT, "x" * (MAX_COMMENT_LENGTH + 1), False, NOW)

    code, message = rule_error(caught)
    assert code == "comment_too_long"
    assert str(MAX_COMMENT_LENGTH) in message


def test_longest_comment_accepted() -> None:
    case = open_case()

    case.add_comment(SUPPORT, "x" * MAX_COMMENT_LENGTH, False, NOW)

    assert len(case.comments[0].body) == MAX_COMMENT_LENGTH


def test_comment_storage_full_rejected() -> None:
    case = open_case()
    for _ in range(MAX_COMMENT_CHARACTERS_PER_CASE // MAX_COMMENT_LENGTH):
        case.add_comment(SUPPORT, "x" * MAX_COMMENT_LENGTH, False, NOW)

    with pytest.raises(CaseRuleError) as caught:
        case.add_comment(SUPPORT, "y", False, NOW)

    code, message = rule_error(caught)
    assert code == "case_comment_storage_full"
    assert "clone" in message


def test_customer_internal_comment_rejected() -> None:
    case = open_case()

    with pytest.raises(CaseRuleError) as caught:
        case.add_comment(CUSTOMER, "Secret note", True, NOW)

    code, message = rule_error(caught)
    assert code == "internal_comment_by_customer"
    assert "'customer'" in message
    assert case.comments == []


# ---- due_deadlines


def test_due_reminder_alone() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)

    due = case.due_deadlines(NOW + timedelta(days=7))

    assert [d.kind for d in due] == [DeadlineKind.REMINDER]


def test_due_closure_without_reminder() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)

    due = case.due_deadlines(NOW + timedelta(days=28))

    assert [d.kind for d in due] == [DeadlineKind.CLOSURE]


def test_due_nothing_before_time() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)

    assert case.due_deadlines(NOW) == []
    assert case.due_deadlines(NOW + timedelta(days=7, seconds=-1)) == []


def test_next_deadline_earliest() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)
    deadline = case.next_deadline()

    assert deadline is not None
    assert deadline.kind is DeadlineKind.REMINDER


# ---- closures


def test_close_by_timer_records_system() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)
    closed_at = NOW + timedelta(days=28)
    (deadline,) = case.due_deadlines(closed_at)
    case.take_deadline(deadline)

    case.close_by_timer(deadline, closed_at)

    assert case.status is Status.CLOSED
    assert case.closure is not None
    assert case.closure.actor_role == "system"
    assert case.closure.rule == "pending_customer_input_closure"
    assert case.closure.at == closed_at
    assert "closed automatically" in case.closure.reason
    assert "28 days" in case.closure.reason
    assert case.history[-1].actor_role == "system"
    assert case.history[-1].to_status is Status.CLOSED
    assert case.deadlines == []


@pytest.mark.parametrize("actor", [SUPPORT, CUSTOMER], ids=lambda a: a.role.value)
def test_closure_by_caller_records_role(actor: Actor) -> None:
    case = in_status(Status.IN_PROGRESS)

    case.change_status(actor, Status.CLOSED, "solved by the update", NOW)

    assert case.closure is not None
    assert case.closure.actor_role == actor.role.value
    assert case.closure.actor_name == actor.name
    assert case.closure.rule is None
    assert "solved by the update" in case.closure.reason
    assert case.history[-1].note == "solved by the update"


def test_closed_reason_in_json() -> None:
    case = in_status(Status.IN_PROGRESS)
    assert case.model_dump(mode="json")["closed_reason"] is None

    case.change_status(SUPPORT, Status.CLOSED, "duplicate of C-7", NOW)
    data = case.model_dump(mode="json")

    assert data["closed_reason"] == "closed by support: duplicate of C-7"
    assert data["closure"]["reason"] == data["closed_reason"]


# ---- priority


@pytest.mark.parametrize(
    "role", [r for r in Role if r is not Role.SUPPORT], ids=lambda r: r.value
)
def test_priority_change_only_support(role: Role) -> None:
    case = open_case()

    with pytest.raises(CaseRuleError) as caught:
        case.change_priority(Actor(role=role), Priority.HIGH, "", NOW)

    code, message = rule_error(caught)
    assert code == "priority_change_not_allowed"
    assert f"'{role.value}'" in message
    assert case.priority is Priority.NORMAL


def test_priority_change_by_support() -> None:
    case = open_case()

    case.change_priority(SUPPORT, Priority.CRITICAL, "outage", NOW)

    assert case.priority is Priority.CRITICAL
    assert case.history[-1].event == "priority_changed"
    assert case.history[-1].note == "priority Normal -> Critical: outage"


def test_same_priority_rejected() -> None:
    case = open_case(priority="High")

    with pytest.raises(CaseRuleError) as caught:
        case.change_priority(SUPPORT, Priority.HIGH, "", NOW)

    assert caught.value.code == "priority_unchanged"


@pytest.mark.parametrize("priority", [Priority.HIGH, Priority.CRITICAL])
def test_work_plan_raise_rejected(priority: Priority) -> None:
    case = open_case(status="Pending Work Plan")

    with pytest.raises(CaseRuleError) as caught:
        case.change_priority(SUPPORT, priority, "", NOW)

    assert caught.value.code == "work_plan_priority"
    assert case.priority is Priority.NORMAL


def test_work_plan_lower_allowed() -> None:
    case = open_case(status="Pending Work Plan")

    case.change_priority(SUPPORT, Priority.LOW, "", NOW)

    assert case.priority is Priority.LOW


def test_priority_on_closed_rejected() -> None:
    case = in_status(Status.CLOSED)

    with pytest.raises(CaseRuleError) as caught:
        case.change_priority(SUPPORT, Priority.HIGH, "", NOW)

    code, message = rule_error(caught)
    assert code == "case_closed"
    assert "clone" in message


# ---- history


def test_rejected_signal_marked() -> None:
    case = open_case()

    case.record_rejected_signal(
        "change_status",
        "not allowed",
        Status.PENDING_RELEASE,
        "customer",
        "Ann Lee",
        NOW,
    )
    entry = case.model_dump(mode="json")["history"][-1]

    assert entry["rejected"] is True
    assert entry["actor_role"] == "customer"
    assert entry["actor_name"] == "Ann Lee"
    assert entry["event"] == "signal_rejected"
    assert entry["to_status"] == "Pending Release"
    assert "not allowed" in entry["note"]
    assert case.model_dump(mode="json")["history"][0]["rejected"] is False


def test_history_capped() -> None:
    case = open_case()
    for index in range(MAX_HISTORY_ENTRIES + 5):
        case.record_rejected_signal(
            f"signal-{index}", "unknown signal", None, "unknown", "", NOW
        )

    assert len(case.history) == MAX_HISTORY_ENTRIES
    assert case.history_entries_dropped == 6
    assert case.history[0].event == "signal_rejected"
    assert "signal-5'" in case.history[0].note
    assert f"signal-{MAX_HISTORY_ENTRIES + 4}'" in case.history[-1].note


# ---- JSON


def collect_times(data: dict[str, Any]) -> list[str]:
    times = [data["opened_at"], data["status_since"]]
    times += [entry["at"] for entry in data["history"]]
    times += [comment["at"] for comment in data["comments"]]
    times += [deadline["due_at"] for deadline in data["deadlines"]]
    if data["closure"]:
        times.append(data["closure"]["at"])
    return times


def test_json_times_have_offset() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)
    case.add_comment(SUPPORT, "Please send the log.", False, NOW)
    open_times = collect_times(case.model_dump(mode="json"))
    case.change_status(CUSTOMER, Status.CLOSED, "", NOW + timedelta(days=1))
    closed_times = collect_times(case.model_dump(mode="json"))

    assert len(open_times) == 7
    assert len(closed_times) == 7
    for value in open_times + closed_times:
        assert value.endswith("+00:00"), value
        assert datetime.fromisoformat(value).tzinfo is not None, value


def test_json_keeps_local_offset() -> None:
    berlin_now = datetime(2025, 1, 10, 12, tzinfo=ZoneInfo("Europe/Berlin"))
    case = open_case(berlin_now, status="Pending Customer Input")
    data = case.model_dump(mode="json")

    assert data["opened_at"] == "2025-01-10T12:00:00+01:00"
    assert data["deadlines"][0]["due_at"] == "2025-01-17T11:00:00+00:00"


def test_json_round_trip() -> None:
    case = in_status(Status.PENDING_CUSTOMER_INPUT)
    case.add_comment(CUSTOMER, "Log attached.", False, NOW + timedelta(hours=2))

    restored = Case.model_validate(case.model_dump(mode="json"))

    assert restored == case


# ---- effective time of a status change


def test_effective_time_dates_deadlines() -> None:
    case = open_case(NOW - timedelta(days=3))
    effective = NOW - timedelta(days=1)

    case.change_status(SUPPORT, Status.PENDING_CUSTOMER_INPUT, "", NOW, effective)

    assert case.status_since == effective
    assert case.history[-1].at == effective
    assert due_times(case) == [
        effective + timedelta(days=7),
        effective + timedelta(days=28),
    ]


def test_effective_time_absent_means_now() -> None:
    case = open_case(NOW - timedelta(days=3))

    case.change_status(SUPPORT, Status.IN_PROGRESS, "", NOW)

    assert case.status_since == NOW


def test_effective_time_in_future_rejected() -> None:
    case = open_case(NOW - timedelta(days=3))
    later = NOW + timedelta(seconds=1)

    with pytest.raises(CaseRuleError) as caught:
        case.change_status(SUPPORT, Status.IN_PROGRESS, "", NOW, later)

    assert caught.value.code == "effective_at_in_future"
    assert later.isoformat() in str(caught.value)
    assert case.status is Status.NEW


def test_effective_time_before_last_change_rejected() -> None:
    case = in_status(Status.IN_PROGRESS, NOW - timedelta(hours=2))
    earlier = NOW - timedelta(hours=3)

    with pytest.raises(CaseRuleError) as caught:
        case.change_status(SUPPORT, Status.PENDING_DEVELOPMENT, "", NOW, earlier)

    assert caught.value.code == "effective_at_before_last_change"
    assert "send changes in the order they happened" in str(caught.value)
    assert case.status is Status.IN_PROGRESS


def test_effective_time_may_precede_import() -> None:
    # An imported case's opening entry is the import time; its status counts
    # from status_since, so a later change may be dated between the two.
    since = NOW - timedelta(days=5)
    case = open_case(NOW, status="In Progress", status_since=since.isoformat())
    between = NOW - timedelta(days=2)

    case.change_status(SUPPORT, Status.PENDING_DEVELOPMENT, "", NOW, between)

    assert case.status_since == between


def test_transition_checked_before_effective_time() -> None:
    case = in_status(Status.CLOSED, NOW - timedelta(hours=2))

    with pytest.raises(CaseRuleError) as caught:
        case.change_status(
            SUPPORT, Status.IN_PROGRESS, "", NOW, NOW - timedelta(hours=3)
        )

    assert caught.value.code != "effective_at_before_last_change"
