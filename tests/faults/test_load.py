"""Many cases whose reminders come due at the same instant, on the time-skipping server.

Every case is imported in Pending Customer Input with the same
``status_since``, so all reminders are due at one instant of server time.
The test checks that each case ran its email activity exactly once and that
the outbox contains one reminder per case, and reports the spread of the send
times: the server-time stamps of the activities' completion events.

The suite runs 5,000 cases; ``CASEDESK_LOAD_CASES`` sets another count for a
quicker local run. docs/load.md records the measured figures.
"""

import asyncio
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Case
from tests.conftest import BIN
from tests.helpers import assert_eventually, case_input, new_task_queue, read_outbox
from worker import build_worker, ensure_search_attributes
from workflows.support_case import SupportCase

CASE_COUNT = int(os.environ.get("CASEDESK_LOAD_CASES", "5000"))
# Requests in flight at once while starting cases, reading their histories and ending them.
CONCURRENCY = 50
REMINDER_AFTER = timedelta(days=7)
# Wall-clock time allowed for sending the reminders once they are due: about
# 15 per second, half the rate measured on a busy 2-core machine (docs/load.md).
SEND_TIMEOUT = timedelta(seconds=30 + CASE_COUNT / 15)


@pytest_asyncio.fixture
async def load_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of its own, so the load does not slow other tests' timers."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    async with env:
        await ensure_search_attributes(env.client)
        yield env


async def skip_time(env: WorkflowEnvironment, duration: timedelta) -> None:
    """Advance the server clock like ``env.sleep``, with a timeout that scales with the load.

    The server does not skip time while the workflow tasks and activities
    that due timers started are outstanding, so with thousands of them the
    call lasts longer than the client's default RPC timeout.
    """
    request = SleepRequest()
    request.duration.FromTimedelta(duration)
    await env.client.test_service.unlock_time_skipping_with_sleep(
        request, timeout=SEND_TIMEOUT
    )


def email_events(history: WorkflowHistory, event_type: int) -> list[HistoryEvent]:
    """Return the events of ``event_type`` that belong to the email activity.

    A completed event names its activity only through the scheduled event it
    refers to, so both are matched by the scheduled event's id.
    """
    email_ids = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name
        == "send_case_email"
    }
    if event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return [event for event in history.events if event.event_id in email_ids]
    return [
        event
        for event in history.events
        if event.event_type == event_type
        and event.activity_task_completed_event_attributes.scheduled_event_id
        in email_ids
    ]


def failed_task_types(history: WorkflowHistory) -> list[str]:
    """Return the failure type of each failed workflow task in ``history``."""
    return [
        event.workflow_task_failed_event_attributes.failure.application_failure_info.type
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def outbox_holds(outbox: Path, count: int) -> None:
    written = list((outbox / "new").iterdir()) if (outbox / "new").exists() else []
    assert len(written) >= count, f"{len(written)} of {count} reminders written"


async def gather_limited(calls: list[Any]) -> list[Any]:
    """Await the coroutines in ``calls`` with at most CONCURRENCY in flight."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def limited(call: Any) -> Any:
        async with limit:
            return await call

    return await asyncio.gather(*(limited(call) for call in calls))


# The suite's 300 s limit per test, and more for a larger load.
@pytest.mark.timeout(300 + CASE_COUNT // 2)
async def test_simultaneous_reminders_sent_once(
    load_env: WorkflowEnvironment, outbox: Path
) -> None:
    client = load_env.client
    task_queue = new_task_queue()
    run = uuid.uuid4().hex[:8]
    entered = (await load_env.get_current_time()).replace(microsecond=0)
    reminder_due = entered + REMINDER_AFTER
    worker = build_worker(
        client, task_queue=task_queue, email_settings=EmailSettings(outbox_dir=outbox)
    )
    async with worker:
        handles: list[WorkflowHandle[SupportCase, Case]] = await gather_limited(
            [
                client.start_workflow(
                    SupportCase.run,
                    case_input(
                        f"LD-{run}-{index}",
                        status="Pending Customer Input",
                        status_since=entered.isoformat(),
                    ),
                    id=f"case-LD-{run}-{index}",
                    task_queue=task_queue,
                )
                for index in range(CASE_COUNT)
            ]
        )

        # Past the reminders, well before the closures 28 days in.
        await skip_time(load_env, reminder_due - await load_env.get_current_time())
        await skip_time(load_env, timedelta(hours=1))
        await assert_eventually(
            lambda: outbox_holds(outbox, CASE_COUNT), within=SEND_TIMEOUT
        )
        histories = await gather_limited([handle.fetch_history() for handle in handles])
        await gather_limited(
            [handle.terminate("load test finished") for handle in handles]
        )

    reminders = read_outbox(outbox)
    message_ids = [str(message["Message-ID"]) for message in reminders]
    assert len(message_ids) == CASE_COUNT
    assert len(set(message_ids)) == CASE_COUNT
    assert {str(m["X-Casedesk-Notice"]) for m in reminders} == {"reminder"}
    sent_at = []
    failure_types: list[str] = []
    for handle, history in zip(handles, histories, strict=True):
        scheduled = email_events(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        completed = email_events(history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        assert len(scheduled) == 1, handle.id
        assert len(completed) == 1, handle.id
        sent_at.append(completed[0].event_time.ToDatetime(tzinfo=UTC))
        assert sent_at[-1] >= reminder_due
        failure_types += failed_task_types(history)

    # The figures go to standard error, so `pytest -s` shows them.
    spread = max(sent_at) - min(sent_at)
    lateness = max(sent_at) - reminder_due
    print(
        f"\n{CASE_COUNT} reminders due at {reminder_due.isoformat()}: sent between "
        f"{min(sent_at) - reminder_due} and {lateness} after it (server time), "
        f"spread {spread}; failed workflow tasks: {Counter(failure_types)}",
        file=sys.stderr,
    )
    # On a starved CPU a workflow task can run past the SDK's 2 s deadlock
    # detection, which fails it, and the server then retries it. Any other
    # failure is a bug.
    assert set(failure_types) <= {"_DeadlockError"}
