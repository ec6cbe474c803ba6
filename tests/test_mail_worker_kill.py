"""A worker process killed with SIGKILL while it hands a reminder to the mail server.

The SMTP server (aiosmtpd on 127.0.0.1) stores the reminder when it has read
the whole message and then delays its reply to DATA, so the kill lands after
the server has the message and before the worker learns it. A second worker
process retries the activity, finds the Message-ID in the delivery ledger and
sends no second copy. The test runs on the dev server in real time, because
the time-skipping test server strands a run whose worker is replaced.
"""

import asyncio
import json
import threading
from datetime import timedelta
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.testing import WorkflowEnvironment

from activities.mail_ledger import MailLedger
from domain.case import Actor, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from tests.activities.test_email import Delivery, LoopbackController
from tests.helpers import assert_eventually, case_input, new_case_number, new_task_queue
from tests.test_end_to_end import WorkerProcess, start_worker_process
from workflows.messages import ChangeStatusInput

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
REMINDER_AFTER = timedelta(seconds=3)
CLOSURE_AFTER = timedelta(seconds=100)
# The dev server times out the killed attempt after the activity's
# start_to_close_timeout of 60 seconds, then retries it after 5 seconds.
RETRY_WITHIN = timedelta(seconds=90)


class HoldingHandler:
    """Store every message; hold the reply to the first reminder's DATA until released."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        self._held_once = False

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        assert envelope.mail_from is not None
        delivery = Delivery(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.content
        )
        self.deliveries.append(delivery)
        if (
            delivery.message()["X-Casedesk-Notice"] == "reminder"
            and not self._held_once
        ):
            self._held_once = True
            self.holding.set()
            # Bounded, so a failed test cannot leave the server thread waiting.
            for _ in range(1200):
                if self.release.is_set():
                    break
                await asyncio.sleep(0.1)
        return "250 Message accepted for delivery"


async def start_worker(
    address: str, task_queue: str, directory: Path, smtp_port: int, ledger: Path
) -> WorkerProcess:
    """Start ``python worker.py`` that sends by SMTP, and wait until it logs its start."""
    return await start_worker_process(
        address,
        directory,
        directory / "outbox",
        task_queue=task_queue,
        settings={
            "CASE_MAIL_LEDGER": str(ledger),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
        },
    )


def logged_events(worker: WorkerProcess) -> list[str]:
    events = []
    for line in worker.stderr_lines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            events.append(str(entry.get("event")))
    return events


async def test_worker_killed_mid_send_sends_once(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    task_queue = new_task_queue()
    ledger_path = tmp_path / "mail-ledger.sqlite3"
    handler = HoldingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    workers: list[WorkerProcess] = []
    try:
        first = await start_worker(
            address, task_queue, tmp_path / "first", controller.port, ledger_path
        )
        workers.append(first)
        number = new_case_number("K")
        policy = {
            "pending_customer_input_reminder": {
                "seconds": int(REMINDER_AFTER.total_seconds())
            },
            "pending_customer_input_closure": {
                "seconds": int(CLOSURE_AFTER.total_seconds())
            },
        }
        request = CaseInput.model_validate(case_input(number, policy=policy))
        opened = await cases.open_case(client, request, task_queue=task_queue)
        pending = await cases.change_status(
            client,
            number,
            ChangeStatusInput(status=Status.PENDING_CUSTOMER_INPUT, actor=SUPPORT),
        )
        assert pending is not None
        closure_due = pending.status_since + CLOSURE_AFTER

        async def reminder_held() -> None:
            assert handler.holding.is_set()

        await assert_eventually(reminder_held, within=timedelta(seconds=30))
        first.process.kill()
        await first.process.wait()
        handler.release.set()

        second = await start_worker(
            address, task_queue, tmp_path / "second", controller.port, ledger_path
        )
        workers.append(second)

        async def reminder_recorded() -> None:
            case = await cases.get_case(client, number)
            assert case.reminders_sent == 1

        await assert_eventually(reminder_recorded, within=RETRY_WITHIN)
        final = await opened.handle.result()
        assert await second.stop() == 0
    finally:
        for worker in workers:
            await worker.kill()
        handler.release.set()
        controller.stop()

    reminder_id = f"<case-{number}.2.reminder@casedesk.localhost>"
    received_ids = [str(d.message()["Message-ID"]) for d in handler.deliveries]
    assert received_ids.count(reminder_id) == 1
    assert len(received_ids) == len(set(received_ids))
    kinds = sorted(str(d.message()["X-Casedesk-Notice"]) for d in handler.deliveries)
    assert kinds == ["closure", "opened", "pending_customer_input", "reminder"]
    entry = MailLedger(ledger_path).get(reminder_id)
    assert entry is not None
    assert entry.state == "unconfirmed"
    assert entry.attempts == 2
    assert "email.delivery_unconfirmed" in logged_events(second)
    assert final.status is Status.CLOSED
    assert final.reminders_sent == 1
    assert final.email_failures == []
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"
    # The closure timer was armed when the case entered Pending Customer
    # Input; the kill and the retry did not move it.
    assert final.closure.at >= closure_due
    assert final.closure.at - closure_due < timedelta(seconds=15)
