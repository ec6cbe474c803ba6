"""How updates and signals with malformed or forbidden arguments are rejected."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Case
from tests.helpers import assert_eventually, case_input, new_task_queue
from worker import build_worker
from workflows.support_case import SupportCase


@pytest_asyncio.fixture
async def open_case(
    ts_env: WorkflowEnvironment, outbox: Path
) -> AsyncIterator[WorkflowHandle[SupportCase, Case]]:
    queue = new_task_queue()
    data = case_input()
    settings = EmailSettings(outbox_dir=outbox)
    async with build_worker(ts_env.client, task_queue=queue, email_settings=settings):
        handle = await ts_env.client.start_workflow(
            SupportCase.run, data, id=f"case-{data['case_number']}", task_queue=queue
        )
        yield handle
        await handle.execute_update(
            "change_status", {"status": "Closed", "actor": {"role": "support"}}
        )
        with ts_env.auto_time_skipping_disabled():
            await handle.result()


@pytest.mark.parametrize(
    ("update", "argument", "expected"),
    [
        (
            "change_status",
            {"status": "Waiting", "actor": {"role": "support"}},
            "status",
        ),
        (
            "change_status",
            {"status": "Closed", "actor": {"role": "system"}},
            "actor.role",
        ),
        ("change_status", "Closed", "ChangeStatusInput"),
        ("add_comment", {"actor": {"role": "customer"}}, "body"),
        (
            "change_priority",
            {"priority": "Urgent", "actor": {"role": "support"}},
            "priority",
        ),
    ],
)
async def test_malformed_update_rejected_clearly(
    open_case: WorkflowHandle[SupportCase, Case],
    update: str,
    argument: Any,
    expected: str,
) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await open_case.execute_update(update, argument)

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "invalid_argument"
    assert cause.non_retryable
    assert expected in cause.message
    case = await open_case.query(SupportCase.get_case)
    assert case.status.value == "New"
    assert [entry.event for entry in case.history] == ["opened"]


async def test_rule_rejection_not_retryable(
    open_case: WorkflowHandle[SupportCase, Case],
) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await open_case.execute_update(
            "change_status",
            {"status": "Pending Release", "actor": {"role": "customer"}},
        )

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "transition_not_allowed"
    assert cause.non_retryable


async def test_rejected_signal_keeps_claimed_sender(
    open_case: WorkflowHandle[SupportCase, Case],
) -> None:
    await open_case.signal(
        "change_status",
        {"status": "In Progress", "actor": {"role": "customer", "name": "Ann Lee"}},
    )
    await open_case.signal("escalate", {"actor": {"role": "support", "name": "Bob"}})
    await open_case.signal(
        "change_status", {"status": "In Progress", "actor": "nobody"}
    )

    async def three_rejected() -> list[Any]:
        case = await open_case.query(SupportCase.get_case)
        rejected = [entry for entry in case.history if entry.rejected]
        assert len(rejected) == 3
        return rejected

    forbidden, unknown_name, malformed = await assert_eventually(three_rejected)
    assert (forbidden.actor_role, forbidden.actor_name) == ("customer", "Ann Lee")
    assert (unknown_name.actor_role, unknown_name.actor_name) == ("support", "Bob")
    assert (malformed.actor_role, malformed.actor_name) == ("unknown", "")
    assert "transition_not_allowed" not in forbidden.note
    assert "'customer' may not move" in forbidden.note


async def test_future_effective_time_rejected(
    open_case: WorkflowHandle[SupportCase, Case],
) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await open_case.execute_update(
            "change_status",
            {
                "status": "In Progress",
                "actor": {"role": "support"},
                "effective_at": "2999-01-01T00:00:00+00:00",
            },
        )

    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "effective_at_in_future"
    assert cause.non_retryable
    assert "2999-01-01T00:00:00+00:00" in cause.message
    case = await open_case.query(SupportCase.get_case)
    assert case.status.value == "New"


async def test_past_effective_time_dates_change(
    open_case: WorkflowHandle[SupportCase, Case],
) -> None:
    opened = await open_case.query(SupportCase.get_case)
    effective = opened.status_since

    case = await open_case.execute_update(
        "change_status",
        {
            "status": "Pending Customer Input",
            "actor": {"role": "support"},
            "effective_at": effective.isoformat(),
        },
        result_type=Case,
    )

    assert case.status_since == effective
    assert case.history[-1].at == effective
