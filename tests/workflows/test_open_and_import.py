"""Opening a case with invalid input, and importing a case that is already Closed."""

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from tests.helpers import case_input, new_case_number, new_task_queue, read_outbox
from worker import build_worker
from workflows.support_case import SupportCase


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"case_number": "bad number!"}, "case_number"),
        ({"contact": {"name": "Ann", "email": "not-an-address"}}, "contact.email"),
        (
            {"institution": {"id": "i", "name": "n", "time_zone": "Mars/Olympus"}},
            "Mars/Olympus",
        ),
        (
            {
                "status": "Pending Work Plan",
                "priority": "Critical",
                "status_since": None,
            },
            "Normal or Low",
        ),
        ({"subject": "Hello\r\nBcc: everyone@example.org"}, "subject"),
    ],
)
async def test_invalid_input_fails_with_reason(
    ts_env: WorkflowEnvironment, outbox: Path, payload: dict[str, Any], expected: str
) -> None:
    queue = new_task_queue()
    data = case_input(**payload)
    async with build_worker(
        ts_env.client, task_queue=queue, email_settings=EmailSettings(outbox_dir=outbox)
    ):
        handle = await ts_env.client.start_workflow(
            "SupportCase", data, id=f"case-{new_case_number()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidCaseInput"
    assert expected in cause.message
    assert read_outbox(outbox) == []


async def test_input_not_an_object_fails(
    ts_env: WorkflowEnvironment, outbox: Path
) -> None:
    queue = new_task_queue()
    async with build_worker(
        ts_env.client, task_queue=queue, email_settings=EmailSettings(outbox_dir=outbox)
    ):
        handle = await ts_env.client.start_workflow(
            "SupportCase",
            "case 42 please",
            id=f"case-{new_case_number()}",
            task_queue=queue,
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert "must be a JSON object" in cause.message


async def test_import_closed_sends_no_email(
    ts_env: WorkflowEnvironment, outbox: Path
) -> None:
    queue = new_task_queue()
    since = (await ts_env.get_current_time()).isoformat()
    data = case_input(status="Closed", status_since=since)
    async with build_worker(
        ts_env.client, task_queue=queue, email_settings=EmailSettings(outbox_dir=outbox)
    ):
        handle = await ts_env.client.start_workflow(
            SupportCase.run, data, id=f"case-{data['case_number']}", task_queue=queue
        )
        case = await handle.result()

    assert case.status.value == "Closed"
    assert case.closed_reason == "imported in status Closed"
    assert read_outbox(outbox) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "not nothing"),
        ([42], "not int"),
        ([["a", "list"]], "not list"),
        ([{"case_number": "X-1"}, {"second": True}], "got 2"),
    ],
)
async def test_input_arity_and_type_fail(
    ts_env: WorkflowEnvironment, outbox: Path, args: list[Any], expected: str
) -> None:
    queue = new_task_queue()
    async with build_worker(
        ts_env.client, task_queue=queue, email_settings=EmailSettings(outbox_dir=outbox)
    ):
        handle = await ts_env.client.start_workflow(
            "SupportCase", args=args, id=f"case-{new_case_number()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidCaseInput"
    assert expected in cause.message
