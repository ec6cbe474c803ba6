"""The Temporal server and the worker both restart while cases wait on timers.

The dev server keeps its state in a SQLite file. It is stopped with SIGTERM
and the worker killed with SIGKILL while a case waits in Pending Customer
Input. Both start again, the server on the same file and port. The case's history and
deadlines must be unchanged by the restart, and the reminder and the closure
must come at the times set when the case entered the status.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio

from domain.case import Case
from domain.statuses import Status
from starter import client as cases
from tests.faults.processes import DevServerProcess, WorkerLauncher
from tests.faults.shared import history_events, message_ids, open_pending_case
from tests.helpers import assert_eventually, new_task_queue
from workflows.search_attributes import CASE_STATUS, NEXT_DEADLINE_AT

REMINDER_SECONDS = 14
CLOSURE_SECONDS = 26
POLICY = {
    "pending_customer_input_reminder": {"seconds": REMINDER_SECONDS},
    "pending_customer_input_closure": {"seconds": CLOSURE_SECONDS},
}
# A late timer shows up as a reminder or closure this much after its due time.
# The restart itself takes about 5 s, so a deadline counted again from the
# restart would miss this margin.
LATENESS_MARGIN = timedelta(seconds=3)


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[DevServerProcess]:
    server = DevServerProcess(
        database=tmp_path / "temporal.db", log_path=tmp_path / "server.log"
    )
    try:
        yield server
    finally:
        await server.kill()


async def test_restart_keeps_history_and_deadlines(
    server: DevServerProcess, tmp_path: Path, outbox: Path
) -> None:
    client = await server.start()
    launcher = WorkerLauncher(
        address=server.address,
        task_queue=new_task_queue(),
        log_dir=tmp_path / "workers",
        environment={"CASE_OUTBOX_DIR": str(outbox)},
    )
    try:
        await launcher.start()
        number, handle, pending = await open_pending_case(
            client, launcher.task_queue, POLICY, prefix="R"
        )
        reminder_due = pending.status_since + timedelta(seconds=REMINDER_SECONDS)
        closure_due = pending.status_since + timedelta(seconds=CLOSURE_SECONDS)

        # The case-opened and Pending Customer Input notices go out first, so
        # the history is at rest (only timers pending) when it is compared.
        async def at_rest() -> None:
            description = await handle.describe()
            assert not description.raw_description.pending_activities
            events = [event async for event in handle.fetch_history_events()]
            assert events[-1].HasField("workflow_task_completed_event_attributes")

        await assert_eventually(at_rest, within=timedelta(seconds=10))
        history_before = (await handle.fetch_history()).to_json_dict()
        description_before = await handle.describe()
        case_before = await cases.get_case(client, number)

        # Everything goes down: the worker crashes, the server shuts down.
        await launcher.kill_all()
        assert await server.stop() == 0
        await asyncio.sleep(1)
        assert datetime.now(UTC) < reminder_due, "the restart began too late"

        client = await server.start()
        handle = cases.case_handle(client, number)
        history_after = (await handle.fetch_history()).to_json_dict()
        description_after = await handle.describe()
        # A query needs a worker, so the deadlines are compared once the new
        # worker runs.
        await launcher.start()
        case_after = await cases.get_case(client, number)

        assert history_after == history_before
        assert description_after.status == description_before.status
        attributes = description_after.typed_search_attributes
        assert attributes.get(CASE_STATUS) == Status.PENDING_CUSTOMER_INPUT.value
        assert attributes.get(NEXT_DEADLINE_AT) == reminder_due
        assert case_after.deadlines == case_before.deadlines
        assert [d.due_at for d in case_after.deadlines] == [reminder_due, closure_due]
        assert case_after.history == case_before.history

        async def reminder_sent() -> None:
            assert len(message_ids(outbox, number, "reminder")) == 1

        await assert_eventually(reminder_sent, within=timedelta(seconds=30))
        closed: Case = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        await launcher.kill_all()

    assert len(message_ids(outbox, number, "reminder")) == 1
    assert len(message_ids(outbox, number, "closure")) == 1
    assert closed.reminders_sent == 1
    assert history_events(closed) == [
        "opened",
        "status_changed",
        "reminder_sent",
        "status_changed",
    ]
    reminded_at = closed.history[2].at
    assert reminder_due <= reminded_at < reminder_due + LATENESS_MARGIN
    assert closed.closure is not None
    assert closed.closure.rule == "pending_customer_input_closure"
    assert closure_due <= closed.closure.at < closure_due + LATENESS_MARGIN
