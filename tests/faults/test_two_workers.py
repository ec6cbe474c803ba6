"""Two worker.py processes on one task queue, one of them stopped mid-run.

Both workers write to the same Maildir outbox. While cases take updates and
send reminders, one worker is stopped with SIGTERM. The other one carries on:
no update is applied twice, no history entry appears twice and every email
is delivered once.
"""

import asyncio
import json
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.case import Actor, Case
from domain.statuses import Priority, Role, Status
from starter import client as cases
from tests.faults.processes import WorkerLauncher
from tests.faults.shared import history_events, message_ids, open_pending_case
from tests.test_end_to_end import WorkerProcess
from workflows.messages import AddCommentInput, ChangePriorityInput

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CASE_COUNT = 8
POLICY = {
    "pending_customer_input_reminder": {"seconds": 4},
    "pending_customer_input_closure": {"seconds": 20},
}


def logged_events(worker: WorkerProcess, event: str) -> int:
    """Count the JSON log lines of ``worker`` for ``event``; replayed tasks log none."""
    return sum(
        1 for line in worker.stderr_lines() if json.loads(line).get("event") == event
    )


# The notices each case sends on its way through Pending Customer Input to
# closure by its timer.
NOTICE_KINDS = ("opened", "pending_customer_input", "reminder", "closure")


async def test_stopped_worker_leaves_nothing_twice(
    dev_env: WorkflowEnvironment, workers: WorkerLauncher, outbox: Path
) -> None:
    client = dev_env.client
    # The first worker alone opens the cases, so all of them are in its
    # workflow cache when the second one joins and when it is stopped.
    first = await workers.start()
    opened: list[tuple[str, WorkflowHandle[Any, Case]]] = []
    for _ in range(CASE_COUNT):
        number, handle, _ = await open_pending_case(
            client, workers.task_queue, POLICY, prefix="D"
        )
        opened.append((number, handle))
    second = await workers.start()

    async def act_twice(number: str) -> None:
        # The same update id twice: the second call returns the first result.
        for _ in range(2):
            await cases.add_comment(
                client,
                number,
                AddCommentInput(actor=SUPPORT, body="checked the logs", internal=True),
                update_id=f"{number}-comment",
            )
        await cases.change_priority(
            client,
            number,
            ChangePriorityInput(priority=Priority.HIGH, actor=SUPPORT),
            update_id=f"{number}-priority",
        )

    updates = asyncio.gather(*(act_twice(number) for number, _ in opened))
    # The stop lands while the updates run and before the reminders are due.
    await asyncio.sleep(0.3)
    assert await first.stop() == 0
    await updates

    finished = [
        await asyncio.wait_for(handle.result(), timeout=90) for _, handle in opened
    ]

    for (number, _), case in zip(opened, finished, strict=True):
        assert case.status is Status.CLOSED
        assert case.closure is not None
        assert case.closure.rule == "pending_customer_input_closure"
        assert [c.body for c in case.comments] == ["checked the logs"]
        assert case.reminders_sent == 1
        assert history_events(case) == [
            "opened",
            "status_changed",
            "priority_changed",
            "reminder_sent",
            "status_changed",
        ]
        for kind in NOTICE_KINDS:
            assert len(message_ids(outbox, number, kind)) == 1, kind

    # Each comment and each email was handled once across both workers.
    both = (first, second)
    assert sum(logged_events(w, "case.comment_added") for w in both) == CASE_COUNT
    assert sum(logged_events(w, "email.sent") for w in both) == len(NOTICE_KINDS) * len(
        opened
    )
