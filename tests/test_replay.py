"""The incident log replay, checked against figures computed independently from the CSV.

The expectations here come from a small simulation written straight from the
rules (status mapping, 7-day reminder and 28-day closure in Pending Customer
Input, 14-day closure in Awaiting Customer Confirmation), not from casedesk's
code, so a bug in the domain, the workflow or the replay shows up as a
mismatch.
"""

import csv
import io
import zipfile
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.deadlines import CalendarPeriod, CasePolicy
from starter.replay import TIMER_GUARD, plan_batch, replay_log, shortest_period

INCIDENTS = 300

MAPPING = {
    "New": "New",
    "Active": "In Progress",
    "Awaiting User Info": "Pending Customer Input",
    "Awaiting Evidence": "Pending Customer Input",
    "Awaiting Vendor": "Pending Third Party Provider",
    "Awaiting Problem": "Pending Development",
    "Resolved": "Awaiting Customer Confirmation",
    "Closed": "Closed",
}
TIMERS = {
    "Pending Customer Input": [
        ("reminder", timedelta(days=7)),
        ("closure", timedelta(days=28)),
    ],
    "Awaiting Customer Confirmation": [("closure", timedelta(days=14))],
}


def expected_summary(path: Path, limit: int) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        text = archive.read("incident_event_log.csv").decode("utf-8")
    rows_by_incident: dict[str, list[dict[str, str]]] = defaultdict(list)
    order: list[str] = []
    for row in csv.DictReader(io.StringIO(text)):
        number = row["number"]
        if number not in rows_by_incident:
            if len(order) == limit:
                continue
            order.append(number)
        rows_by_incident[number].append(row)

    def when(row: dict[str, str]) -> tuple[datetime, int]:
        moment = datetime.strptime(row["sys_updated_at"], "%d/%m/%Y %H:%M").replace(
            tzinfo=UTC
        )
        return moment, int(row["sys_mod_count"])

    totals: Counter[str] = Counter()
    auto_closed: Counter[str] = Counter()
    final: Counter[str] = Counter()
    for number in order:
        status: str | None = None
        pending: list[tuple[datetime, str]] = []

        def fire_until(moment: datetime | None) -> None:
            nonlocal status, pending
            while pending and (moment is None or pending[0][0] <= moment):
                _, kind = pending.pop(0)
                if kind == "reminder":
                    totals["reminders_sent"] += 1
                else:
                    assert status is not None
                    auto_closed[status] += 1
                    status = "Closed"
                    pending = []

        def enter(new_status: str, moment: datetime) -> None:
            nonlocal status, pending
            status = new_status
            pending = sorted(
                (moment + after, kind) for kind, after in TIMERS.get(new_status, [])
            )

        for row in sorted(rows_by_incident[number], key=when):
            totals["rows_read"] += 1
            mapped = MAPPING.get(row["incident_state"])
            if mapped is None:
                totals["rows_skipped_unknown_status"] += 1
                continue
            moment, _ = when(row)
            fire_until(moment)
            if status is None:
                totals["incidents"] += 1
                enter(mapped, moment)
            elif status == "Closed":
                key = (
                    "rows_no_change"
                    if mapped == "Closed"
                    else "rows_rejected_case_closed"
                )
                totals[key] += 1
            elif mapped == status:
                totals["rows_no_change"] += 1
            else:
                totals["status_changes_applied"] += 1
                enter(mapped, moment)
        fire_until(None)
        if status is not None:
            final[status] += 1

    keys = (
        "rows_read",
        "rows_skipped_unknown_status",
        "incidents",
        "status_changes_applied",
        "rows_no_change",
        "rows_rejected_case_closed",
        "reminders_sent",
    )
    summary: dict[str, Any] = {key: totals[key] for key in keys}
    summary["auto_closed"] = dict(sorted(auto_closed.items()))
    summary["final"] = dict(sorted(final.items()))
    return summary


async def test_replay_matches_independent_figures(
    incident_log: Path, tmp_path: Path
) -> None:
    expected = expected_summary(incident_log, INCIDENTS)
    outbox = tmp_path / "outbox"

    # Three parts, each on its own test server, so the summary also checks
    # how the parts' figures are added up.
    summary = await replay_log(
        incident_log, limit=INCIDENTS, outbox=outbox, part_size=INCIDENTS // 3
    )

    for key, value in expected.items():
        assert summary[key] == value, (
            f"{key}: replay {summary[key]!r}, expected {value!r}"
        )
    assert summary["reminder_emails_in_outbox"] == expected["reminders_sent"]
    assert "rows_rejected_other" not in summary


async def test_replay_sample_exercises_every_rule(incident_log: Path) -> None:
    """The first incidents hold reminders and both closure rules, so the check above can fail."""
    expected = expected_summary(incident_log, INCIDENTS)

    assert expected["reminders_sent"] > 0
    assert expected["auto_closed"].get("Pending Customer Input", 0) > 0
    assert expected["auto_closed"].get("Awaiting Customer Confirmation", 0) > 0
    assert expected["rows_rejected_case_closed"] > 0
    assert expected["rows_no_change"] > 0


def test_shortest_period_is_lower_bound() -> None:
    default = CasePolicy()
    short = CasePolicy(
        pending_customer_input_reminder=CalendarPeriod(seconds=90),
        pending_customer_input_closure=CalendarPeriod(days=1),
        pending_customer_testing_closure=CalendarPeriod(months=1),
    )

    # Seven days with the 23-hour day of a daylight saving change.
    assert shortest_period(default) == timedelta(hours=7 * 23)
    assert shortest_period(short) == timedelta(seconds=90)


T0 = datetime(2016, 3, 1, 9, 0, tzinfo=UTC)


def minutes(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(minutes=offset) for offset in offsets]


def rows_by_instant(**rows: list[int]) -> dict[datetime, list[str]]:
    """Map each instant to the cases that have a row at it, given as case=[minute, ...]."""
    instants: dict[datetime, list[str]] = defaultdict(list)
    for case, offsets in rows.items():
        for at in minutes(*offsets):
            instants[at].append(case)
    return instants


def plan(
    rows: dict[datetime, list[str]],
    deadlines: list[tuple[int, str]],
    max_span: timedelta = timedelta(days=1),
) -> tuple[list[datetime], list[tuple[datetime, str]]]:
    """Return the instants and the deadlines of the first batch."""
    instants = sorted(rows)
    pending = sorted((T0 + timedelta(minutes=m), case) for m, case in deadlines)
    end, fired = plan_batch(instants, 0, rows.__getitem__, pending, max_span)
    return instants[:end], pending[:fired]


def test_batch_fires_other_case_deadline() -> None:
    rows = rows_by_instant(A=[0, 10, 20])

    instants, fired = plan(rows, [(15, "B")])

    assert instants == minutes(0, 10, 20)
    assert fired == [(minutes(15)[0], "B")]


def test_batch_ends_before_own_deadline() -> None:
    # B's row at minute 10 may cancel its deadline at minute 15, so the clock
    # must not pass minute 15 before that row is applied.
    rows = rows_by_instant(A=[0, 20], B=[10, 30])

    instants, fired = plan(rows, [(15, "B")])

    assert instants == minutes(0, 10)
    assert fired == []


def test_deadline_fires_before_same_instant_row() -> None:
    rows = rows_by_instant(A=[0], B=[15, 30])

    instants, fired = plan(rows, [(15, "B")])

    assert instants == minutes(0, 15, 30)
    assert fired == [(minutes(15)[0], "B")]


def test_deadline_within_guard_fires() -> None:
    # The server's clock runs on while rows are applied, so a timer due within
    # the guard after the batch's last instant is fired, not left to race.
    rows = rows_by_instant(A=[0])
    due = T0 + TIMER_GUARD - timedelta(seconds=1)
    instants = sorted(rows)

    end, fired = plan_batch(
        instants, 0, rows.__getitem__, [(due, "B")], timedelta(days=1)
    )

    assert (end, fired) == (1, 1)


def test_batch_spans_less_than_max_span() -> None:
    rows = rows_by_instant(A=[0, 30, 60, 90])

    instants, _ = plan(rows, [], max_span=timedelta(minutes=60))

    assert instants == minutes(0, 30)


def test_batch_keeps_first_instant() -> None:
    rows = rows_by_instant(B=[0, 10])

    instants, fired = plan(rows, [(5, "B")])

    assert instants == minutes(0)
    assert fired == []


async def test_replay_rejects_empty_parts(incident_log: Path) -> None:
    with pytest.raises(ValueError, match="invalid part size 0"):
        await replay_log(incident_log, limit=1, part_size=0)
