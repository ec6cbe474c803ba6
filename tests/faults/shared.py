"""Case helpers shared by the fault tests."""

from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from domain.case import Actor, Case, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from tests.helpers import case_input, new_case_number, notices
from workflows.messages import ChangeStatusInput

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")


async def open_pending_case(
    client: Client, task_queue: str, policy: dict[str, Any], prefix: str = "F"
) -> tuple[str, WorkflowHandle[Any, Case], Case]:
    """Open a case and move it to Pending Customer Input; return number, handle and state."""
    number = new_case_number(prefix)
    request = CaseInput.model_validate(case_input(number, policy=policy))
    opened = await cases.open_case(client, request, task_queue=task_queue)
    pending = await cases.change_status(
        client,
        number,
        ChangeStatusInput(status=Status.PENDING_CUSTOMER_INPUT, actor=SUPPORT),
    )
    assert pending is not None
    return number, opened.handle, pending


def message_ids(outbox: Path, number: str, kind: str) -> list[str]:
    return [str(message["Message-ID"]) for message in notices(outbox, number, kind)]


def history_events(case: Case) -> list[str]:
    return [entry.event for entry in case.history]
