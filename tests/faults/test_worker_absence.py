"""Deadlines that come due while no worker runs, on the dev server in real time.

Each test starts and stops its worker itself. The time-skipping test server
loses track of a pending timer when one worker stops and another starts, so
these tests use the dev server with deadlines of a few seconds.
"""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Actor, Case, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from tests.helpers import (
    assert_eventually,
    case_input,
    new_case_number,
    new_task_queue,
    notices,
)
from worker import build_worker
from workflows.messages import AddCommentInput, ChangeStatusInput

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CUSTOMER = Actor(role=Role.CUSTOMER, name="Ann Lee")


async def open_case_in(
    client: Client, task_queue: str, status: Status, policy: dict[str, Any]
) -> tuple[str, WorkflowHandle[Any, Case], Case]:
    """Open a case and move it to ``status``; return its number, handle and state."""
    number = new_case_number("W")
    request = CaseInput.model_validate(case_input(number, policy=policy))
    opened = await cases.open_case(client, request, task_queue=task_queue)
    case = await cases.change_status(
        client, number, ChangeStatusInput(status=status, actor=SUPPORT)
    )
    assert case is not None
    return number, opened.handle, case


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def timer_fired(handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    fired = [
        event
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    ]
    assert fired


async def signal_and_fired_timer_in_one_task(handle: WorkflowHandle[Any, Any]) -> bool:
    """Return whether a signal arrived after the timer fired but before a worker took the task."""
    types = [event.event_type for event in (await handle.fetch_history()).events]
    fired = types.index(EventType.EVENT_TYPE_TIMER_FIRED)
    started = types.index(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, fired)
    return EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in types[fired:started]


async def test_overdue_reminder_sent_once_after_restart(
    dev_env: WorkflowEnvironment, outbox: Path
) -> None:
    client = dev_env.client
    task_queue = new_task_queue()
    settings = EmailSettings(outbox_dir=outbox)
    policy = {
        "pending_customer_input_reminder": {"seconds": 8},
        "pending_customer_input_closure": {"seconds": 25},
    }

    async with build_worker(client, task_queue=task_queue, email_settings=settings):
        number, handle, pending = await open_case_in(
            client, task_queue, Status.PENDING_CUSTOMER_INPUT, policy
        )
    entered = pending.status_since
    reminder_due = entered + timedelta(seconds=8)
    closure_due = entered + timedelta(seconds=25)
    # The worker must be gone before the reminder comes due, or this test
    # shows nothing about a missing worker.
    assert datetime.now(UTC) < reminder_due

    await sleep_until(entered + timedelta(seconds=12))
    await assert_eventually(lambda: timer_fired(handle))
    assert notices(outbox, number, "reminder") == []
    restarted_at = datetime.now(UTC)

    async with build_worker(client, task_queue=task_queue, email_settings=settings):

        async def one_reminder() -> None:
            assert len(notices(outbox, number, "reminder")) == 1

        await assert_eventually(one_reminder)
        closed = await handle.result()

    assert len(notices(outbox, number, "reminder")) == 1
    assert len(notices(outbox, number, "closure")) == 1
    assert closed.reminders_sent == 1
    reminded = [entry for entry in closed.history if entry.event == "reminder_sent"]
    assert len(reminded) == 1
    assert reminded[0].at >= restarted_at

    assert closed.closure is not None
    assert closed.closure.rule == "pending_customer_input_closure"
    assert closed.closure.at >= closure_due
    # The closure keeps its time, counted from entering the status. Counted
    # from the restart or the late reminder, it would come at least 4 s later.
    assert closed.closure.at - closure_due < timedelta(seconds=3)
    assert closed.closure.at < reminded[0].at + timedelta(seconds=25)


async def test_comment_beats_closure_in_same_task(
    dev_env: WorkflowEnvironment, outbox: Path
) -> None:
    client = dev_env.client
    task_queue = new_task_queue()
    settings = EmailSettings(outbox_dir=outbox)
    policy = {"awaiting_customer_confirmation_closure": {"seconds": 6}}

    async with build_worker(client, task_queue=task_queue, email_settings=settings):
        number, handle, awaiting = await open_case_in(
            client, task_queue, Status.AWAITING_CUSTOMER_CONFIRMATION, policy
        )
    closure_due = awaiting.status_since + timedelta(seconds=6)
    assert datetime.now(UTC) < closure_due

    # The closure timer fires with no worker to act on it, so the signal
    # below lands in the same workflow task as the fired timer.
    await sleep_until(closure_due + timedelta(seconds=1))
    await assert_eventually(lambda: timer_fired(handle))
    await cases.add_comment(
        client,
        number,
        AddCommentInput(actor=CUSTOMER, body="The fix did not work for us"),
        as_signal=True,
    )

    async with build_worker(client, task_queue=task_queue, email_settings=settings):

        async def reopened() -> Case:
            case = await cases.get_case(client, number)
            assert case.status is Status.REOPENED
            return case

        case = await assert_eventually(reopened)
        description = await handle.describe()

    assert await signal_and_fired_timer_in_one_task(handle)
    assert [c.body for c in case.comments] == ["The fix did not work for us"]
    assert case.closure is None
    assert case.deadlines == []
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert notices(outbox, number, "closure") == []
