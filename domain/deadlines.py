"""Deadline policy and the calendar arithmetic behind it.

A deadline runs from the moment a case entered its status. Days and months
are counted on the institution's wall clock, so a reminder due "7 days after
10:00" is due at 10:00 local time even when daylight-saving time changed in
between. ``seconds`` are added as elapsed time after that, which lets tests and
benchmarks use short policies.
"""

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from dateutil.tz import resolve_imaginary
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.statuses import Status


class DeadlineKind(StrEnum):
    REMINDER = "reminder"
    CLOSURE = "closure"
    # A reminder to support to reassess a Pending Work Plan case; it repeats.
    REASSESSMENT = "reassessment"


class CalendarPeriod(BaseModel):
    """A length of time on the calendar: months, then days, then elapsed seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    months: int = Field(default=0, ge=0, le=1200)
    days: int = Field(default=0, ge=0, le=36600)
    seconds: int = Field(default=0, ge=0, le=100 * 366 * 86400)

    @classmethod
    def parse(cls, text: str) -> "CalendarPeriod":
        """Parse ``"7d"``, ``"3mo"``, ``"24mo"``, ``"90s"``, ``"2h"`` or ``"1mo2d"``."""
        units = {
            "mo": "months",
            "d": "days",
            "h": "hours",
            "m": "minutes",
            "s": "seconds",
        }
        # ASCII digits only, and at most 12 of them, so int() never receives a
        # Unicode digit or a number too long to convert.
        pattern = re.compile(r"([0-9]{1,12})(mo|d|h|m|s)")
        position = 0
        values = {"months": 0, "days": 0, "seconds": 0}
        cleaned = text.strip().lower()
        for match in pattern.finditer(cleaned):
            if match.start() != position:
                break
            amount, unit = int(match.group(1)), units[match.group(2)]
            if unit == "hours":
                values["seconds"] += amount * 3600
            elif unit == "minutes":
                values["seconds"] += amount * 60
            else:
                values[unit] += amount
            position = match.end()
        if not cleaned or position != len(cleaned):
            raise ValueError(
                f"invalid period {text!r}: write a number and a unit, such as "
                "'7d', '28d', '3mo', '24mo', '2h' or '90s'"
            )
        try:
            return cls(**values)
        except ValidationError as err:
            limits = "; ".join(
                f"{error['loc'][0]}: {error['msg']}" for error in err.errors()
            )
            raise ValueError(f"invalid period {text!r}: {limits}") from None

    def times(self, factor: int) -> "CalendarPeriod":
        """Return this period repeated ``factor`` times; raise ValueError past the limits."""
        try:
            return CalendarPeriod(
                months=self.months * factor,
                days=self.days * factor,
                seconds=self.seconds * factor,
            )
        except ValidationError as err:
            raise ValueError(
                f"period {self.describe()} x {factor} is too long"
            ) from err

    def describe(self) -> str:
        parts = []
        if self.months:
            parts.append(f"{self.months} month" + ("s" if self.months != 1 else ""))
        if self.days:
            parts.append(f"{self.days} day" + ("s" if self.days != 1 else ""))
        if self.seconds or not parts:
            parts.append(f"{self.seconds} second" + ("s" if self.seconds != 1 else ""))
        return " ".join(parts)


def add_period(
    start: datetime, period: CalendarPeriod, time_zone: str | None
) -> datetime:
    """Return ``start`` plus ``period`` on the wall clock of ``time_zone`` (UTC when None).

    A day that does not exist in the target month becomes that month's last
    day (31 January plus one month is 28 or 29 February). A local time that
    falls into a daylight-saving gap moves forward by the gap's length. A
    repeated local time takes its first occurrence. The result is in UTC.
    """
    if start.tzinfo is None:
        raise ValueError(f"start time {start.isoformat()} has no UTC offset")
    if not period.months and not period.days:
        # A period of seconds only is elapsed time. A trip through the wall
        # clock would move a start in the second occurrence of a repeated
        # local hour back to the first one, an hour earlier.
        return start.astimezone(UTC) + timedelta(seconds=period.seconds)
    zone = ZoneInfo(time_zone) if time_zone else UTC
    local = start.astimezone(zone).replace(tzinfo=None)
    shifted = local + relativedelta(months=period.months, days=period.days)
    aware = resolve_imaginary(shifted.replace(tzinfo=zone, fold=0))
    return aware.astimezone(UTC) + timedelta(seconds=period.seconds)


class StatusDeadlineRule(BaseModel):
    """One timed action that a status brings with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Status
    kind: DeadlineKind
    after: CalendarPeriod

    @property
    def name(self) -> str:
        """A stable identifier such as ``pending_customer_input_closure``."""
        return f"{self.status.name.lower()}_{self.kind.value}"

    def describe(self) -> str:
        if self.kind is DeadlineKind.REMINDER:
            return f"reminder email {self.after.describe()} after {self.status.value}"
        if self.kind is DeadlineKind.REASSESSMENT:
            return f"reassessment reminder to support every {self.after.describe()} in {self.status.value}"
        return f"closure {self.after.describe()} after {self.status.value}"


class CasePolicy(BaseModel):
    """The deadline rules a case was opened with.

    Each case stores its own copy, so changing the configuration changes new
    cases only and never what a running case does.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pending_customer_input_reminder: CalendarPeriod = CalendarPeriod(days=7)
    pending_customer_input_closure: CalendarPeriod = CalendarPeriod(days=28)
    awaiting_customer_confirmation_closure: CalendarPeriod = CalendarPeriod(days=14)
    pending_customer_testing_closure: CalendarPeriod = CalendarPeriod(months=3)
    pending_work_plan_closure: CalendarPeriod = CalendarPeriod(months=24)
    # Applies only to cases whose workflow sends the support notices.
    pending_work_plan_reassessment: CalendarPeriod = CalendarPeriod(months=3)
    # How long a notice is retried through transient SMTP failures before it
    # is recorded on the case as failed.
    email_delivery_window: CalendarPeriod = CalendarPeriod(days=1)

    @model_validator(mode="after")
    def _periods_make_sense(self) -> "CasePolicy":
        for name in type(self).model_fields:
            if getattr(self, name) == CalendarPeriod():
                raise ValueError(
                    f"{name} is zero, which would act the moment a case enters the status; "
                    "give a positive period such as '7d'"
                )
        reference = datetime(2001, 1, 1, tzinfo=UTC)
        reminder = add_period(reference, self.pending_customer_input_reminder, None)
        closure = add_period(reference, self.pending_customer_input_closure, None)
        if reminder >= closure:
            raise ValueError(
                "pending_customer_input_reminder "
                f"({self.pending_customer_input_reminder.describe()}) must be shorter than "
                f"pending_customer_input_closure ({self.pending_customer_input_closure.describe()}), "
                "or the reminder would never be sent"
            )
        return self

    def rules_for(self, status: Status) -> list[StatusDeadlineRule]:
        """Return the timed actions of ``status``, earliest kind first."""
        by_status: dict[Status, list[tuple[DeadlineKind, CalendarPeriod]]] = {
            Status.PENDING_CUSTOMER_INPUT: [
                (DeadlineKind.REMINDER, self.pending_customer_input_reminder),
                (DeadlineKind.CLOSURE, self.pending_customer_input_closure),
            ],
            Status.AWAITING_CUSTOMER_CONFIRMATION: [
                (DeadlineKind.CLOSURE, self.awaiting_customer_confirmation_closure)
            ],
            Status.PENDING_CUSTOMER_TESTING: [
                (DeadlineKind.CLOSURE, self.pending_customer_testing_closure)
            ],
            Status.PENDING_WORK_PLAN: [
                (DeadlineKind.REASSESSMENT, self.pending_work_plan_reassessment),
                (DeadlineKind.CLOSURE, self.pending_work_plan_closure),
            ],
        }
        return [
            StatusDeadlineRule(status=status, kind=kind, after=after)
            for kind, after in by_status.get(status, [])
        ]
