"""Tests of the deadline policy and of calendar arithmetic in the institution's zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from domain.deadlines import CalendarPeriod, CasePolicy, DeadlineKind, add_period
from domain.statuses import Status
from starter.config import case_policy

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: str,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """Return a wall-clock time in ``zone``. ``fold=1`` picks a repeated hour's second occurrence."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone), fold=fold)


# ---- add_period: month ends and leap years


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (utc(2025, 1, 31, 10), 1, utc(2025, 2, 28, 10)),
        (utc(2024, 1, 31, 10), 1, utc(2024, 2, 29, 10)),
        (utc(2025, 3, 31, 10), 1, utc(2025, 4, 30, 10)),
        (utc(2025, 8, 31, 10), 3, utc(2025, 11, 30, 10)),
        (utc(2024, 2, 29, 10), 24, utc(2026, 2, 28, 10)),
        (utc(2024, 2, 29, 10), 12, utc(2025, 2, 28, 10)),
        (utc(2024, 2, 29, 10), 48, utc(2028, 2, 29, 10)),
        (utc(2025, 12, 31, 23, 59), 2, utc(2026, 2, 28, 23, 59)),
        (utc(2025, 11, 15, 8), 3, utc(2026, 2, 15, 8)),
    ],
)
def test_add_months_clamps_month_end(
    start: datetime, months: int, expected: datetime
) -> None:
    assert add_period(start, CalendarPeriod(months=months), None) == expected


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (utc(2024, 2, 28, 12), 1, utc(2024, 2, 29, 12)),
        (utc(2025, 2, 28, 12), 1, utc(2025, 3, 1, 12)),
        (utc(2024, 2, 1), 28, utc(2024, 2, 29)),
        (utc(2024, 12, 31, 18), 1, utc(2025, 1, 1, 18)),
        (utc(2024, 1, 1), 366, utc(2025, 1, 1)),
    ],
)
def test_add_days_leap_years(start: datetime, days: int, expected: datetime) -> None:
    assert add_period(start, CalendarPeriod(days=days), None) == expected


def test_add_months_before_days() -> None:
    # 30 January + 1 month is 28 February, and 2 days later is 2 March.
    # Adding the days first would give 1 March + 1 month = 1 April.
    period = CalendarPeriod(months=1, days=2)

    assert add_period(utc(2025, 1, 30, 9), period, None) == utc(2025, 3, 2, 9)


def test_month_end_in_local_zone() -> None:
    # 31 March 23:30 in Berlin is 21:30 UTC, so the month end is Berlin's.
    start = local(BERLIN, 2025, 3, 31, 23, 30)
    result = add_period(start, CalendarPeriod(months=1), BERLIN)

    assert result == local(BERLIN, 2025, 4, 30, 23, 30)
    assert result == utc(2025, 4, 30, 21, 30)


# ---- add_period: daylight-saving time keeps the local wall-clock time


@pytest.mark.parametrize(
    ("zone", "start", "period", "expected_utc"),
    [
        # Berlin moves to CEST on 2025-03-30 and back to CET on 2025-10-26.
        (
            BERLIN,
            local(BERLIN, 2025, 3, 25, 10),
            CalendarPeriod(days=7),
            utc(2025, 4, 1, 8),
        ),
        (
            BERLIN,
            local(BERLIN, 2025, 10, 20, 9),
            CalendarPeriod(days=14),
            utc(2025, 11, 3, 8),
        ),
        (
            BERLIN,
            local(BERLIN, 2025, 3, 15, 12),
            CalendarPeriod(months=1),
            utc(2025, 4, 15, 10),
        ),
        (
            BERLIN,
            local(BERLIN, 2025, 9, 30, 12),
            CalendarPeriod(months=3),
            utc(2025, 12, 30, 11),
        ),
        # New York moves to EDT on 2025-03-09 and back to EST on 2025-11-02.
        (
            NEW_YORK,
            local(NEW_YORK, 2025, 3, 5, 10),
            CalendarPeriod(days=7),
            utc(2025, 3, 12, 14),
        ),
        (
            NEW_YORK,
            local(NEW_YORK, 2025, 10, 30, 10),
            CalendarPeriod(days=7),
            utc(2025, 11, 6, 15),
        ),
        (
            NEW_YORK,
            local(NEW_YORK, 2025, 2, 9, 17),
            CalendarPeriod(months=1),
            utc(2025, 3, 9, 21),
        ),
        (
            NEW_YORK,
            local(NEW_YORK, 2025, 10, 2, 17),
            CalendarPeriod(months=1),
            utc(2025, 11, 2, 22),
        ),
    ],
    ids=[
        "berlin-spring-7d",
        "berlin-autumn-14d",
        "berlin-spring-1mo",
        "berlin-autumn-3mo",
        "new-york-spring-7d",
        "new-york-autumn-7d",
        "new-york-spring-1mo",
        "new-york-autumn-1mo",
    ],
)
def test_add_period_across_dst(
    zone: str, start: datetime, period: CalendarPeriod, expected_utc: datetime
) -> None:
    result = add_period(start, period, zone)
    start_local = start.astimezone(ZoneInfo(zone))
    result_local = result.astimezone(ZoneInfo(zone))

    assert result == expected_utc
    assert result_local.time() == start_local.time()
    assert result_local.utcoffset() != start_local.utcoffset()


def test_berlin_spring_example_offsets() -> None:
    start = local(BERLIN, 2025, 3, 25, 10)
    result = add_period(start, CalendarPeriod(days=7), BERLIN).astimezone(
        ZoneInfo(BERLIN)
    )

    assert start.utcoffset() == timedelta(hours=1)
    assert result.utcoffset() == timedelta(hours=2)
    assert result.replace(tzinfo=None) == datetime(2025, 4, 1, 10)


def test_add_period_start_in_other_zone() -> None:
    # The start is given in Berlin time but the institution is in New York:
    # 2025-03-05 16:00 CET is 10:00 EST, so the result is 10:00 EDT.
    start = local(BERLIN, 2025, 3, 5, 16)

    assert add_period(start, CalendarPeriod(days=7), NEW_YORK) == utc(2025, 3, 12, 14)


@pytest.mark.parametrize(
    ("zone", "start", "expected_utc"),
    [
        # 2025-03-09 02:30 does not exist in New York, so it becomes 03:30 EDT.
        (NEW_YORK, local(NEW_YORK, 2025, 3, 8, 2, 30), utc(2025, 3, 9, 7, 30)),
        # 2025-03-30 02:30 does not exist in Berlin, so it becomes 03:30 CEST.
        (BERLIN, local(BERLIN, 2025, 3, 29, 2, 30), utc(2025, 3, 30, 1, 30)),
    ],
    ids=["new-york", "berlin"],
)
def test_add_days_into_spring_gap(
    zone: str, start: datetime, expected_utc: datetime
) -> None:
    result = add_period(start, CalendarPeriod(days=1), zone)
    result_local = result.astimezone(ZoneInfo(zone)).replace(tzinfo=None)

    assert result == expected_utc
    assert result_local == start.replace(tzinfo=None) + timedelta(days=1, hours=1)


@pytest.mark.parametrize(
    ("zone", "start", "expected_utc"),
    [
        # 2025-11-02 01:30 happens twice in New York: first EDT, then EST.
        (NEW_YORK, local(NEW_YORK, 2025, 11, 1, 1, 30), utc(2025, 11, 2, 5, 30)),
        # 2025-10-26 02:30 happens twice in Berlin: first CEST, then CET.
        (BERLIN, local(BERLIN, 2025, 10, 25, 2, 30), utc(2025, 10, 26, 0, 30)),
    ],
    ids=["new-york", "berlin"],
)
def test_add_days_into_repeated_hour(
    zone: str, start: datetime, expected_utc: datetime
) -> None:
    assert add_period(start, CalendarPeriod(days=1), zone) == expected_utc


def test_add_days_from_repeated_hour() -> None:
    # The second 01:30 on 2025-11-02 (EST, 06:30 UTC) plus one day is
    # 01:30 EST on 2025-11-03, exactly 24 hours later.
    start = local(NEW_YORK, 2025, 11, 2, 1, 30, fold=1)

    assert start.astimezone(UTC) == utc(2025, 11, 2, 6, 30)
    assert add_period(start, CalendarPeriod(days=1), NEW_YORK) == utc(
        2025, 11, 3, 6, 30
    )


def test_add_period_utc_without_zone() -> None:
    start = utc(2025, 3, 25, 10)

    assert add_period(start, CalendarPeriod(days=7), None) == utc(2025, 4, 1, 10)


def test_add_period_returns_utc() -> None:
    result = add_period(local(BERLIN, 2025, 6, 1, 12), CalendarPeriod(days=1), BERLIN)

    assert result.utcoffset() == timedelta(0)
    assert result == utc(2025, 6, 2, 10)


def test_add_period_naive_start_rejected() -> None:
    with pytest.raises(ValueError, match="2025-03-25T10:00:00"):
        add_period(datetime(2025, 3, 25, 10), CalendarPeriod(days=7), BERLIN)


def test_add_seconds_elapsed_across_dst() -> None:
    # One hour of elapsed time from 01:30 EST on the spring-forward day is
    # 03:30 EDT on the wall clock.
    start = local(NEW_YORK, 2025, 3, 9, 1, 30)
    result = add_period(start, CalendarPeriod(seconds=3600), NEW_YORK)

    assert result - start == timedelta(hours=1)
    assert result.astimezone(ZoneInfo(NEW_YORK)).hour == 3


def test_add_seconds_in_repeated_hour() -> None:
    # Seconds are elapsed time even when the start is the second occurrence
    # of a repeated local hour, so the result is never before the start.
    start = local(NEW_YORK, 2025, 11, 2, 1, 30, fold=1)

    for seconds in (0, 1, 90, 3600):
        result = add_period(start, CalendarPeriod(seconds=seconds), NEW_YORK)
        assert result - start == timedelta(seconds=seconds), seconds


def test_add_seconds_after_days() -> None:
    period = CalendarPeriod(days=7, seconds=90)
    start = local(BERLIN, 2025, 3, 25, 10)

    assert add_period(start, period, BERLIN) == utc(2025, 4, 1, 8, 1, 30)


# ---- CalendarPeriod.parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", CalendarPeriod(days=7)),
        ("28d", CalendarPeriod(days=28)),
        ("3mo", CalendarPeriod(months=3)),
        ("24mo", CalendarPeriod(months=24)),
        ("90s", CalendarPeriod(seconds=90)),
        ("2h", CalendarPeriod(seconds=7200)),
        ("15m", CalendarPeriod(seconds=900)),
        ("1mo2d", CalendarPeriod(months=1, days=2)),
        ("1d12h", CalendarPeriod(days=1, seconds=43200)),
        ("1h30m", CalendarPeriod(seconds=5400)),
        (" 14D ", CalendarPeriod(days=14)),
        ("3MO", CalendarPeriod(months=3)),
    ],
)
def test_parse_valid(text: str, expected: CalendarPeriod) -> None:
    assert CalendarPeriod.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "7",
        "d",
        "mo",
        "7x",
        "7 d",
        "-7d",
        "+7d",
        "1.5d",
        "7d!",
        "7d 2h",
        "seven days",
        "7days",
        "P7D",
        "99999d",
        "1201mo",
        "9" * 5000 + "d",
        "\u0667d",
    ],
    ids=lambda text: repr(text[:20]),
)
def test_parse_invalid_names_text(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        CalendarPeriod.parse(text)

    assert repr(text) in str(caught.value)


def test_period_fields_bounded() -> None:
    with pytest.raises(ValueError):
        CalendarPeriod(days=-1)


# ---- CasePolicy.rules_for

EXPECTED_RULES: dict[Status, list[tuple[DeadlineKind, CalendarPeriod]]] = {
    Status.PENDING_CUSTOMER_INPUT: [
        (DeadlineKind.REMINDER, CalendarPeriod(days=7)),
        (DeadlineKind.CLOSURE, CalendarPeriod(days=28)),
    ],
    Status.AWAITING_CUSTOMER_CONFIRMATION: [
        (DeadlineKind.CLOSURE, CalendarPeriod(days=14)),
    ],
    Status.PENDING_CUSTOMER_TESTING: [
        (DeadlineKind.CLOSURE, CalendarPeriod(months=3)),
    ],
    Status.PENDING_WORK_PLAN: [
        (DeadlineKind.REASSESSMENT, CalendarPeriod(months=3)),
        (DeadlineKind.CLOSURE, CalendarPeriod(months=24)),
    ],
}


@pytest.mark.parametrize("status", list(Status), ids=lambda status: status.value)
def test_rules_for_status(status: Status) -> None:
    rules = CasePolicy().rules_for(status)

    assert [(rule.kind, rule.after) for rule in rules] == EXPECTED_RULES.get(status, [])
    for rule in rules:
        assert rule.status is status
        assert rule.name == f"{status.name.lower()}_{rule.kind.value}"


def test_rules_for_custom_policy() -> None:
    policy = CasePolicy(pending_customer_input_closure=CalendarPeriod(days=30))
    rules = policy.rules_for(Status.PENDING_CUSTOMER_INPUT)

    assert rules[0].after == CalendarPeriod(days=7)
    assert rules[1].after == CalendarPeriod(days=30)
    assert rules[1].name == "pending_customer_input_closure"


def test_rule_description_names_period() -> None:
    reminder, closure = CasePolicy().rules_for(Status.PENDING_CUSTOMER_INPUT)

    assert reminder.describe() == "reminder email 7 days after Pending Customer Input"
    assert closure.describe() == "closure 28 days after Pending Customer Input"


# ---- starter.config.case_policy


def test_case_policy_defaults() -> None:
    assert case_policy({}) == CasePolicy()


def test_case_policy_ignores_other_variables() -> None:
    environ = {"PATH": "/usr/bin", "CASE_TASK_QUEUE": "q", "POLICY_X": "1d"}

    assert case_policy(environ) == CasePolicy()


def test_case_policy_override() -> None:
    policy = case_policy({"CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE": "30d"})

    assert policy.pending_customer_input_closure == CalendarPeriod(days=30)
    assert policy.pending_customer_input_reminder == CalendarPeriod(days=7)
    assert policy.awaiting_customer_confirmation_closure == CalendarPeriod(days=14)
    assert policy.pending_customer_testing_closure == CalendarPeriod(months=3)
    assert policy.pending_work_plan_closure == CalendarPeriod(months=24)


def test_case_policy_every_rule() -> None:
    environ = {
        "CASE_POLICY_PENDING_CUSTOMER_INPUT_REMINDER": "4s",
        "CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE": "8s",
        "CASE_POLICY_AWAITING_CUSTOMER_CONFIRMATION_CLOSURE": "2h",
        "CASE_POLICY_PENDING_CUSTOMER_TESTING_CLOSURE": "1mo",
        "CASE_POLICY_PENDING_WORK_PLAN_CLOSURE": "12mo",
    }
    policy = case_policy(environ)

    assert policy.pending_customer_input_reminder == CalendarPeriod(seconds=4)
    assert policy.pending_customer_input_closure == CalendarPeriod(seconds=8)
    assert policy.awaiting_customer_confirmation_closure == CalendarPeriod(seconds=7200)
    assert policy.pending_customer_testing_closure == CalendarPeriod(months=1)
    assert policy.pending_work_plan_closure == CalendarPeriod(months=12)


@pytest.mark.parametrize(
    "key",
    ["CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSUR", "CASE_POLICY_", "CASE_POLICY_MONTHS"],
)
def test_case_policy_unknown_key(key: str) -> None:
    with pytest.raises(ValueError) as caught:
        case_policy({key: "7d"})

    assert key in str(caught.value)
    assert "CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE" in str(caught.value)


@pytest.mark.parametrize("text", ["soon", "", "7 days", "-1d", "99999d"])
def test_case_policy_invalid_period(text: str) -> None:
    key = "CASE_POLICY_PENDING_WORK_PLAN_CLOSURE"
    with pytest.raises(ValueError) as caught:
        case_policy({key: text})

    assert key in str(caught.value)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    "field",
    [
        "pending_customer_input_reminder",
        "pending_customer_input_closure",
        "awaiting_customer_confirmation_closure",
        "pending_customer_testing_closure",
        "pending_work_plan_closure",
    ],
)
def test_policy_rejects_zero_period(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CasePolicy(**{field: CalendarPeriod()})

    assert field in str(caught.value)


def test_policy_rejects_reminder_after_closure() -> None:
    with pytest.raises(ValidationError) as caught:
        CasePolicy(
            pending_customer_input_reminder=CalendarPeriod(days=60),
            pending_customer_input_closure=CalendarPeriod(days=28),
        )

    assert "must be shorter than pending_customer_input_closure" in str(caught.value)


def test_policy_accepts_seconds_for_tests() -> None:
    policy = CasePolicy(
        pending_customer_input_reminder=CalendarPeriod(seconds=2),
        pending_customer_input_closure=CalendarPeriod(seconds=5),
    )

    assert policy.pending_customer_input_closure.seconds == 5
