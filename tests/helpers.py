"""Helpers shared by the test suite: case inputs, outbox reading and polling."""

import asyncio
import calendar
import email
import email.policy
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.case import Actor, Case, HistoryEntry
from domain.deadlines import CasePolicy
from domain.statuses import Role, Status
from workflows.messages import ChangeStatusInput
from workflows.support_case import SupportCase

T = TypeVar("T")


def new_task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


def new_case_number(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def case_input(case_number: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Return a valid case as the JSON object a support system sends."""
    data: dict[str, Any] = {
        "case_number": case_number or new_case_number(),
        "subject": "Search returns no results for journal titles",
        "description": "Since this morning the discovery search finds no journals.",
        "priority": "Normal",
        "institution": {
            "id": "inst-0042",
            "name": "Example University",
            "time_zone": None,
        },
        "contact": {"name": "Ann Lee", "email": "ann.lee@example.org"},
        "product": "Discovery",
        "installation_type": "Direct",
        "affects_multiple_institutions": False,
    }
    data.update(overrides)
    return data


def default_policy() -> dict[str, Any]:
    return CasePolicy().model_dump()


def read_outbox(folder: Path) -> list[EmailMessage]:
    """Parse every message in the Maildir ``folder`` (new/ and cur/)."""
    messages = []
    for sub in ("new", "cur"):
        path = folder / sub
        if not path.exists():
            continue
        for file in sorted(path.iterdir()):
            parsed = email.message_from_bytes(
                file.read_bytes(), policy=email.policy.default
            )
            assert isinstance(parsed, EmailMessage)
            messages.append(parsed)
    return messages


def text_body(message: EmailMessage) -> str:
    """Return the text/plain part of a multipart/alternative notice."""
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage), "the message has no text/plain part"
    return str(part.get_content())


def notices(folder: Path, case_number: str, kind: str) -> list[EmailMessage]:
    return [
        message
        for message in read_outbox(folder)
        if message["X-Casedesk-Case"] == case_number
        and message["X-Casedesk-Notice"] == kind
    ]


async def assert_eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: timedelta = timedelta(seconds=15),
    interval: timedelta = timedelta(milliseconds=100),
) -> T:
    """Call ``check`` until it returns without an AssertionError, then return its value."""
    deadline = asyncio.get_running_loop().time() + within.total_seconds()
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(interval.total_seconds())


def iso(value: datetime) -> str:
    return value.isoformat()


# ---- cases on the time-skipping test server

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CUSTOMER = Actor(role=Role.CUSTOMER, name="Ann Lee")


def set_status(
    status: Status, actor: Actor = SUPPORT, note: str = ""
) -> ChangeStatusInput:
    return ChangeStatusInput(status=status, actor=actor, note=note)


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Advance the time-skipping server's clock to ``moment``, firing the timers due before it."""
    now = await env.get_current_time()
    if moment <= now:
        raise ValueError(
            f"cannot sleep until {moment.isoformat()}: the server clock is already at "
            f"{now.isoformat()} and only moves forward"
        )
    await env.sleep(moment - now)


async def final_case(
    env: WorkflowEnvironment, handle: WorkflowHandle[SupportCase, Case]
) -> Case:
    """Wait for a closed case's run to end and return its Case, keeping the clock locked.

    On the Java test server, ``handle.result()`` unlocks time skipping while it
    waits, so the server jumps to its next timer. That timer can be another
    case's deadline, or the 24-hour schedule-to-close timeout of an email
    activity that has already completed (measured with temporal-test-server 1.40).
    """
    with env.auto_time_skipping_disabled():
        return await handle.result()


async def read_case(
    env: WorkflowEnvironment, handle: WorkflowHandle[SupportCase, Case]
) -> Case:
    """Return the case's state, waiting for the run to end once the case is Closed.

    It queries instead of calling ``handle.describe()``: the Java test server
    keeps an unset search attribute as a null payload, and temporalio 1.35
    raises TypeError decoding it, so describe fails once a case has had a
    deadline and then none.
    """
    case = await handle.query(SupportCase.get_case)
    if case.is_closed:
        return await final_case(env, handle)
    return case


@dataclass
class TimeSkippingCases:
    """Cases started on one task queue of the time-skipping server.

    The Java test server loses a pending timer when a second worker picks up
    the workflow. A timer that fires while no worker polls its task queue
    stops time skipping for the whole server, so every later sleep hangs. Run
    one worker from before the first case starts until ``close_open_cases``
    has ended every run.
    """

    env: WorkflowEnvironment
    task_queue: str
    outbox: Path
    handles: dict[str, WorkflowHandle[SupportCase, Case]] = field(default_factory=dict)

    async def start(
        self, case_number: str | None = None, **overrides: Any
    ) -> tuple[str, WorkflowHandle[SupportCase, Case]]:
        """Start a case from ``case_input(case_number, **overrides)``."""
        number = case_number or new_case_number()
        handle = await self.env.client.start_workflow(
            SupportCase.run,
            case_input(number, **overrides),
            id=f"case-{number}",
            task_queue=self.task_queue,
        )
        self.handles[number] = handle
        return number, handle

    async def close_open_cases(self) -> list[Case]:
        """Close every case still open as support and return the final Case of every run."""
        finished = []
        for handle in self.handles.values():
            case = await handle.query(SupportCase.get_case)
            if not case.is_closed:
                await handle.execute_update(
                    SupportCase.change_status,
                    set_status(Status.CLOSED, note="test finished"),
                )
            finished.append(await final_case(self.env, handle))
        return finished


def add_calendar_months(moment: datetime, months: int) -> datetime:
    """Return the same time of day ``months`` calendar months later, in ``moment``'s zone.

    A day missing from the target month becomes its last day. Tests compare
    ``domain.deadlines.add_period`` with it, so it does not use dateutil.
    """
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


CaseHandle = WorkflowHandle[SupportCase, Case]
ONE_SECOND = timedelta(seconds=1)


def events(case: Case, event: str) -> list[HistoryEntry]:
    return [entry for entry in case.history if entry.event == event]


def assert_within_second_after(actual: datetime, expected: datetime) -> None:
    assert expected <= actual < expected + ONE_SECOND, (
        f"{actual.isoformat()} is not within one second after {expected.isoformat()}"
    )


def open_args(number: str, *extra: str) -> list[str]:
    """Return the arguments of a valid `casedesk open` for case ``number``."""
    return [
        "open",
        "--case-number",
        number,
        "--subject",
        "Login fails",
        "--institution-id",
        "inst-1",
        "--institution-name",
        "Example University",
        "--time-zone",
        "Europe/Berlin",
        "--contact-name",
        "Ann Lee",
        "--contact-email",
        "ann@example.org",
        *extra,
    ]
