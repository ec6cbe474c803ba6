"""worker.py killed with SIGKILL in the middle of cases, then started again.

A killed worker runs no clean-up: its workflow tasks time out on the server
(10 s, Temporal's default) and its email activity attempts time out after the
activity's 60 s start-to-close timeout, and then another worker takes them.
Every case must end as it would have without the kill, with each email
delivered once.
"""

import asyncio
import email
import email.policy
import os
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.case import Actor, Case
from domain.statuses import Role, Status
from starter import client as cases
from tests.activities.test_email import LoopbackController
from tests.faults.processes import WorkerLauncher
from tests.faults.shared import history_events, message_ids, open_pending_case
from tests.helpers import assert_eventually, new_task_queue
from workflows.messages import AddCommentInput, ChangeStatusInput

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CASE_COUNT = 5
KILL_COUNT = 4
# The closure is far enough after the reminder that a reminder delayed by a
# kill (up to one 10 s workflow task timeout and a restart) still comes first.
RANDOM_POLICY = {
    "pending_customer_input_reminder": {"seconds": 6},
    "pending_customer_input_closure": {"seconds": 30},
}


def fault_seed() -> int:
    """Return the seed of the kill schedule: CASEDESK_FAULT_SEED, or a new random one."""
    configured = os.environ.get("CASEDESK_FAULT_SEED")
    return int(configured) if configured else random.randrange(2**32)


async def workflow_task_timeouts(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
    )


async def test_kills_at_random_points(
    dev_env: WorkflowEnvironment, workers: WorkerLauncher, outbox: Path
) -> None:
    seed = fault_seed()
    schedule = random.Random(seed)
    client = dev_env.client
    worker = await workers.start()

    opened: list[tuple[str, WorkflowHandle[Any, Case]]] = []
    for index in range(CASE_COUNT):
        number, handle, _ = await open_pending_case(
            client, workers.task_queue, RANDOM_POLICY, prefix="K"
        )
        opened.append((number, handle))
        # A support comment per case, sent as a signal so it is stored by the
        # server even while no worker runs.
        await cases.add_comment(
            client,
            number,
            AddCommentInput(actor=SUPPORT, body=f"note {index}", internal=True),
            as_signal=True,
        )

    # The kills spread over the seconds in which the cases take their
    # comments and then send their reminders.
    for _ in range(KILL_COUNT):
        await asyncio.sleep(schedule.uniform(0.0, 3.0))
        await worker.kill()
        worker = await workers.start()

    finished: list[Case] = []
    for _, handle in opened:
        finished.append(await asyncio.wait_for(handle.result(), timeout=90))

    timeouts = [await workflow_task_timeouts(handle) for _, handle in opened]
    context = f"seed {seed} (set CASEDESK_FAULT_SEED={seed} to repeat); workflow task timeouts per case: {timeouts}"
    for index, ((number, _), case) in enumerate(zip(opened, finished, strict=True)):
        assert case.status is Status.CLOSED, context
        assert case.closure is not None, context
        assert case.closure.rule == "pending_customer_input_closure", context
        assert case.reminders_sent == 1, context
        assert [c.body for c in case.comments] == [f"note {index}"], context
        assert history_events(case) == [
            "opened",
            "status_changed",
            "reminder_sent",
            "status_changed",
        ], context
        assert len(message_ids(outbox, number, "reminder")) == 1, context
        assert len(message_ids(outbox, number, "closure")) == 1, context


# ---- a kill while the email activity waits for the SMTP server


class StallingHandler:
    """An aiosmtpd handler that delays its reply to the reminder's DATA until ``release`` is set.

    It has the whole message by then, so, like a real mail server whose
    client vanished after the final dot, it keeps the message and replies
    250. Its hooks run on the controller's thread.
    """

    def __init__(self) -> None:
        self.accepted: list[EmailMessage] = []
        self.stalled = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        # Stored first: the server has committed the message before it
        # replies, and aiosmtpd cancels this hook when the client goes away.
        self.accepted.append(parsed)
        if parsed["X-Casedesk-Notice"] == "reminder" and not self.stalled.is_set():
            self.stalled.set()
            await asyncio.to_thread(self.release.wait)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[StallingHandler, int]]:
    handler = StallingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        handler.release.set()
        controller.stop()


async def test_kill_during_email_activity(
    dev_env: WorkflowEnvironment,
    tmp_path: Path,
    smtp_server: tuple[StallingHandler, int],
) -> None:
    handler, port = smtp_server
    workers = WorkerLauncher(
        address=dev_env.client.service_client.config.target_host,
        task_queue=new_task_queue(),
        log_dir=tmp_path / "workers",
        environment={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port)},
    )
    client = dev_env.client
    policy = {
        "pending_customer_input_reminder": {"seconds": 2},
        "pending_customer_input_closure": {"seconds": 3600},
    }
    try:
        worker = await workers.start()
        number, handle, _ = await open_pending_case(
            client, workers.task_queue, policy, prefix="M"
        )

        # The reminder's SMTP session is now waiting for the reply to DATA.
        stalled = await asyncio.to_thread(handler.stalled.wait, 30)
        assert stalled, "the reminder never reached the SMTP server"
        await worker.kill()
        handler.release.set()
        await workers.start()

        async def reminder_recorded() -> Case:
            case = await cases.get_case(client, number)
            assert case.reminders_sent == 1
            return case

        # The killed attempt times out after the activity's 60 s
        # start-to-close timeout; the retry finds the reminder in the ledger.
        await assert_eventually(reminder_recorded, within=timedelta(seconds=90))
        await cases.change_status(
            client,
            number,
            ChangeStatusInput(status=Status.CLOSED, actor=SUPPORT, note="solved"),
        )
        closed = await asyncio.wait_for(handle.result(), timeout=60)
    finally:
        await workers.kill_all()

    kinds = [str(message["X-Casedesk-Notice"]) for message in handler.accepted]
    ids = [str(message["Message-ID"]) for message in handler.accepted]
    # Each notice once: the retry after the kill finds the reminder in the
    # delivery ledger and does not send it again.
    assert sorted(kinds) == [
        "closure",
        "opened",
        "pending_customer_input",
        "reminder",
    ]
    assert len(set(ids)) == len(ids)
    assert closed.reminders_sent == 1
    assert history_events(closed) == [
        "opened",
        "status_changed",
        "reminder_sent",
        "status_changed",
    ]
