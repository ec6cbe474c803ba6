"""SupportCase on the Temporal CLI dev server: visibility, messages and continue-as-new.

The dev server runs in real time, so the deadlines that matter here are a few
seconds long. Visibility is eventually consistent, so list and count queries
are polled with ``assert_eventually``.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Actor, Case, CaseInput
from domain.statuses import Priority, Role, Status
from starter import client as cases
from tests.conftest import BIN, DEV_SERVER_ARGS
from tests.helpers import (
    assert_eventually,
    case_input,
    new_case_number,
    new_task_queue,
    notices,
)
from worker import build_worker
from workflows.messages import AddCommentInput, ChangePriorityInput, ChangeStatusInput
from workflows.search_attributes import (
    ALL_SEARCH_ATTRIBUTES,
    CASE_PRIORITY,
    CASE_STATUS,
    NEXT_DEADLINE_AT,
)

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CUSTOMER = Actor(role=Role.CUSTOMER, name="Ann Lee")

# The second dev server suggests continue-as-new after this many history
# events, so a run continues as new after a few updates.
SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS = 30


@dataclass
class Desk:
    """A worker on its own task queue and outbox, and the client to reach it."""

    client: Client
    task_queue: str
    outbox: Path


@pytest_asyncio.fixture
async def desk(dev_env: WorkflowEnvironment, outbox: Path) -> AsyncIterator[Desk]:
    task_queue = new_task_queue()
    settings = EmailSettings(outbox_dir=outbox)
    async with build_worker(
        dev_env.client, task_queue=task_queue, email_settings=settings
    ):
        yield Desk(dev_env.client, task_queue, outbox)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def low_history_env() -> AsyncIterator[WorkflowEnvironment]:
    """A second dev server that suggests continue-as-new after 30 history events."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_extra_args=[
            *DEV_SERVER_ARGS,
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AFTER_EVENTS}",
        ],
    )
    async with env:
        yield env


@pytest_asyncio.fixture
async def low_history_desk(
    low_history_env: WorkflowEnvironment, outbox: Path
) -> AsyncIterator[Desk]:
    task_queue = new_task_queue()
    settings = EmailSettings(outbox_dir=outbox)
    async with build_worker(
        low_history_env.client, task_queue=task_queue, email_settings=settings
    ):
        yield Desk(low_history_env.client, task_queue, outbox)


async def open_case(
    desk: Desk, case_number: str | None = None, **overrides: Any
) -> tuple[str, WorkflowHandle[Any, Case]]:
    number = case_number or new_case_number("D")
    request = CaseInput.model_validate(case_input(number, **overrides))
    opened = await cases.open_case(desk.client, request, task_queue=desk.task_queue)
    return number, opened.handle


async def set_status(
    desk: Desk, case_number: str, status: Status, actor: Actor = SUPPORT
) -> Case:
    case = await cases.change_status(
        desk.client, case_number, ChangeStatusInput(status=status, actor=actor)
    )
    assert case is not None
    return case


async def comment(
    desk: Desk,
    case_number: str,
    body: str,
    actor: Actor = SUPPORT,
    *,
    internal: bool = False,
    update_id: str | None = None,
) -> Case:
    case = await cases.add_comment(
        desk.client,
        case_number,
        AddCommentInput(actor=actor, body=body, internal=internal),
        update_id=update_id,
    )
    assert case is not None
    return case


async def count_workflows(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """Return the workflow's current details, which the Web UI shows.

    In temporalio 1.35, ``describe()`` returns only the static summary and
    details. The current details come from the SDK's built-in
    ``__temporal_workflow_metadata`` query.
    """
    metadata = await handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata.current_details


def search_attribute_texts(description: Any) -> dict[str, str]:
    """Return each search attribute of a described workflow as its raw payload text."""
    fields = description.raw_description.workflow_execution_info.search_attributes
    return {
        name: payload.data.decode("utf-8", errors="replace")
        for name, payload in fields.indexed_fields.items()
    }


def short_policy(**seconds: int) -> dict[str, dict[str, int]]:
    """Return a CasePolicy JSON object whose named rules last ``seconds`` each."""
    return {rule: {"seconds": value} for rule, value in seconds.items()}


def update_accepted_ids(history_events: Any) -> list[str]:
    return [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for event in history_events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


# ---- case numbers are used once


async def test_open_case_twice_raises_exists(desk: Desk) -> None:
    number, handle = await open_case(desk)

    with pytest.raises(cases.CaseExistsError) as raised:
        await open_case(desk, number)

    assert raised.value.case_number == number
    assert raised.value.run_id == handle.result_run_id
    assert number in str(raised.value)

    async def one_workflow() -> None:
        query = f'WorkflowId = "case-{number}"'
        assert await count_workflows(desk.client, query) == 1

    await assert_eventually(one_workflow)


async def test_open_case_after_close_raises_exists(desk: Desk) -> None:
    number, handle = await open_case(desk)
    await set_status(desk, number, Status.CLOSED, CUSTOMER)
    closed = await handle.result()
    assert closed.status is Status.CLOSED

    with pytest.raises(cases.CaseExistsError):
        await open_case(desk, number)

    async def one_completed_workflow() -> None:
        executions = [
            execution
            async for execution in desk.client.list_workflows(
                f'WorkflowId = "case-{number}"'
            )
        ]
        assert len(executions) == 1
        assert executions[0].status == WorkflowExecutionStatus.COMPLETED

    await assert_eventually(one_completed_workflow)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


# ---- search attributes and list queries


async def test_search_attributes_follow_case(desk: Desk) -> None:
    number, handle = await open_case(desk)

    async def opened_attributes() -> None:
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(CASE_STATUS) == Status.NEW.value
        assert attributes.get(CASE_PRIORITY) == Priority.NORMAL.value
        assert attributes.get(NEXT_DEADLINE_AT) is None

    await assert_eventually(opened_attributes)

    pending = await set_status(desk, number, Status.PENDING_CUSTOMER_INPUT)
    next_deadline = pending.next_deadline()
    assert next_deadline is not None
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_STATUS) == Status.PENDING_CUSTOMER_INPUT.value
    assert attributes.get(NEXT_DEADLINE_AT) == next_deadline.due_at

    raised = await cases.change_priority(
        desk.client,
        number,
        ChangePriorityInput(priority=Priority.HIGH, actor=SUPPORT),
    )
    assert raised is not None
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_PRIORITY) == Priority.HIGH.value
    # A priority change moves no deadline.
    assert attributes.get(NEXT_DEADLINE_AT) == next_deadline.due_at

    async def listed_as_pending() -> cases.CaseRow:
        rows = await cases.list_cases(
            desk.client,
            cases.visibility_query(status=Status.PENDING_CUSTOMER_INPUT.value),
        )
        matching = [row for row in rows if row.case_number == number]
        assert len(matching) == 1
        row = matching[0]
        assert row.priority == Priority.HIGH.value
        return row

    row = await assert_eventually(listed_as_pending)
    assert row.status == Status.PENDING_CUSTOMER_INPUT.value
    assert row.next_deadline_at == next_deadline.due_at
    assert row.workflow_status == "RUNNING"

    by_id = f'WorkflowId = "case-{number}"'
    after = (next_deadline.due_at + timedelta(seconds=1)).isoformat()
    before = (next_deadline.due_at - timedelta(seconds=1)).isoformat()

    async def found_by_deadline() -> None:
        query = f'{by_id} AND NextDeadlineAt < "{after}"'
        assert await count_workflows(desk.client, query) == 1

    await assert_eventually(found_by_deadline)
    earlier_query = f'{by_id} AND NextDeadlineAt < "{before}"'
    assert await count_workflows(desk.client, earlier_query) == 0

    await set_status(desk, number, Status.IN_PROGRESS)
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_STATUS) == Status.IN_PROGRESS.value
    assert attributes.get(NEXT_DEADLINE_AT) is None

    async def deadline_unset_in_visibility() -> None:
        query = f"{by_id} AND NextDeadlineAt IS NULL"
        assert await count_workflows(desk.client, query) == 1

    await assert_eventually(deadline_unset_in_visibility)


async def test_search_attributes_hold_no_personal_data(desk: Desk) -> None:
    request = case_input(
        new_case_number("D"),
        subject="Proxy login loops for Zebulon Quartermaine",
        contact={"name": "Zebulon Quartermaine", "email": "zq.private@example.org"},
    )
    number, handle = await open_case(desk, **request)
    await set_status(desk, number, Status.PENDING_CUSTOMER_INPUT)
    await comment(desk, number, "Here are the logs", CUSTOMER)

    texts = search_attribute_texts(await handle.describe())

    assert {"CaseStatus", "CasePriority"} <= set(texts)
    for name, text in texts.items():
        assert "Zebulon" not in text, name
        assert "Quartermaine" not in text, name
        assert "zq.private" not in text, name
        assert "Proxy login" not in text, name


# ---- what the Web UI shows


async def test_current_details_show_status_and_deadline(desk: Desk) -> None:
    number, handle = await open_case(desk)
    details = await current_details(handle)
    assert Status.NEW.value in details

    pending = await set_status(desk, number, Status.PENDING_CUSTOMER_INPUT)
    next_deadline = pending.next_deadline()
    assert next_deadline is not None
    details = await current_details(handle)

    assert Status.PENDING_CUSTOMER_INPUT.value in details
    assert next_deadline.description in details
    assert next_deadline.due_at.strftime("%Y-%m-%d %H:%M") in details

    await set_status(desk, number, Status.IN_PROGRESS)
    details = await current_details(handle)
    assert Status.IN_PROGRESS.value in details
    assert next_deadline.description not in details


async def test_static_summary_holds_case_number(desk: Desk) -> None:
    number, handle = await open_case(desk)

    summary = await (await handle.describe()).static_summary()

    assert summary is not None
    assert number in summary


# ---- malformed signals


async def test_malformed_signals_recorded_as_rejected(desk: Desk) -> None:
    number, handle = await open_case(desk)
    valid = {"actor": {"role": "customer", "name": "Ann"}, "body": "still broken"}
    malformed: list[tuple[str, list[Any], str]] = [
        ("not a JSON object", ["please call me"], "valid dictionary"),
        (
            "wrong types",
            [{"actor": {"role": "customer"}, "body": 42, "internal": "maybe"}],
            "body: Input should be a valid string",
        ),
        (
            "system role",
            [{"actor": {"role": "system"}, "body": "closing this"}],
            "actor.role",
        ),
        ("extra argument", [valid, valid], "expected exactly one argument, got 2"),
    ]
    for _label, args, _reason in malformed:
        await handle.signal("add_comment", args=args)

    async def all_recorded() -> Case:
        case = await cases.get_case(desk.client, number)
        rejected = [entry for entry in case.history if entry.rejected]
        assert len(rejected) == len(malformed)
        return case

    case = await assert_eventually(all_recorded)

    rejected = [entry for entry in case.history if entry.rejected]
    for entry, (label, _args, reason) in zip(rejected, malformed, strict=True):
        assert entry.event == "signal_rejected", label
        assert "'add_comment' rejected" in entry.note, label
        assert reason in entry.note, label
    assert case.comments == []
    assert case.status is Status.NEW

    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    after = await comment(desk, number, "A valid comment still works")
    assert [c.body for c in after.comments] == ["A valid comment still works"]


# ---- update ids and rejected updates


async def test_update_same_id_applied_once(desk: Desk) -> None:
    number, handle = await open_case(desk)
    await set_status(desk, number, Status.PENDING_CUSTOMER_INPUT)

    first = await comment(desk, number, "Logs attached", CUSTOMER, update_id="u-1")
    second = await comment(desk, number, "Logs attached", CUSTOMER, update_id="u-1")

    assert len(first.comments) == 1
    assert len(second.comments) == 1
    case = await cases.get_case(desk.client, number)
    assert len(case.comments) == 1
    assert case.status is Status.UPDATE_RECEIVED
    moved = [e for e in case.history if e.to_status is Status.UPDATE_RECEIVED]
    assert len(moved) == 1

    history = await handle.fetch_history()
    assert update_accepted_ids(history.events).count("u-1") == 1


async def test_rejected_update_leaves_no_trace(desk: Desk) -> None:
    number, handle = await open_case(desk)
    # A successful update first, so no workflow task is still pending.
    await set_status(desk, number, Status.IN_PROGRESS)

    async def opened_notice_sent() -> None:
        events = (await handle.fetch_history()).events
        types = [event.event_type for event in events]
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED in types
        assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED

    # The case-opened notice adds events when its activity completes.
    await assert_eventually(opened_notice_sent)
    case_before = await cases.get_case(desk.client, number)
    events_before = len((await handle.fetch_history()).events)

    with pytest.raises(cases.ActionRejectedError) as raised:
        await set_status(desk, number, Status.NEW, CUSTOMER)

    assert raised.value.code == "transition_not_allowed"
    case_after = await cases.get_case(desk.client, number)
    assert case_after.history == case_before.history
    assert case_after.status is Status.IN_PROGRESS
    events_after = len((await handle.fetch_history()).events)
    assert events_after == events_before


# ---- closed cases


async def test_comment_on_closed_case_raises_closed(desk: Desk) -> None:
    number, handle = await open_case(desk)
    await set_status(desk, number, Status.CLOSED)
    await handle.result()

    with pytest.raises(cases.CaseClosedError) as raised:
        await comment(desk, number, "It broke again", CUSTOMER)
    assert "clone" in str(raised.value)

    with pytest.raises(cases.CaseClosedError) as raised_signal:
        await cases.add_comment(
            desk.client,
            number,
            AddCommentInput(actor=CUSTOMER, body="It broke again"),
            as_signal=True,
        )
    assert "clone" in str(raised_signal.value)


async def test_clone_case_links_closed_case(desk: Desk) -> None:
    number, handle = await open_case(desk)
    await set_status(desk, number, Status.CLOSED)
    await handle.result()
    clone_number = new_case_number("D")

    opened = await cases.clone_case(
        desk.client, number, clone_number, task_queue=desk.task_queue
    )

    clone = await cases.get_case(desk.client, clone_number)
    assert opened.case_number == clone_number
    assert clone.cloned_from == number
    assert clone.status is Status.NEW
    assert clone.history[0].note == f"cloned from case {number}"


# ---- continue-as-new


async def test_continue_as_new_keeps_state_and_deadline(
    low_history_desk: Desk,
) -> None:
    desk = low_history_desk
    policy = short_policy(
        pending_customer_input_reminder=4, pending_customer_input_closure=30
    )
    number, handle = await open_case(desk, policy=policy)
    first_run_id = (await handle.describe()).run_id
    await comment(desk, number, "before continue-as-new", update_id="before")
    pending = await set_status(desk, number, Status.PENDING_CUSTOMER_INPUT)

    async def reminder_sent() -> Case:
        case = await cases.get_case(desk.client, number)
        assert case.reminders_sent == 1
        return case

    reminded = await assert_eventually(reminder_sent)
    assert len(reminded.deadlines) == 1
    closure_deadline = reminded.deadlines[0]
    assert closure_deadline.rule == "pending_customer_input_closure"
    assert closure_deadline.due_at == pending.status_since + timedelta(seconds=30)

    # Internal comments and priority changes leave the status, and so the
    # deadlines, as they are, while each one adds history events.
    priorities = [Priority.HIGH, Priority.NORMAL] * 3
    for index, priority in enumerate(priorities):
        await comment(desk, number, f"internal note {index}", internal=True)
        await cases.change_priority(
            desk.client, number, ChangePriorityInput(priority=priority, actor=SUPPORT)
        )

    async def new_run_started() -> str:
        run_id = (await handle.describe()).run_id
        assert run_id != first_run_id
        return run_id

    await assert_eventually(new_run_started)
    case = await cases.get_case(desk.client, number)
    assert len(case.comments) == 1 + len(priorities)
    assert case.comments[0].body == "before continue-as-new"
    assert case.reminders_sent == 1
    assert case.deadlines == reminded.deadlines
    assert case.history[: len(reminded.history)] == reminded.history
    priority_entries = [e for e in case.history if e.event == "priority_changed"]
    assert len(priority_entries) == len(priorities)

    # The update id from the first run is remembered by the later one.
    again = await comment(desk, number, "before continue-as-new", update_id="before")
    assert len(again.comments) == len(case.comments)

    latest_run_started = (await handle.describe()).start_time
    assert latest_run_started >= pending.status_since + timedelta(seconds=4)
    closed = await handle.result()
    assert closed.closure is not None
    assert closed.closure.rule == "pending_customer_input_closure"
    assert closed.closure.at >= closure_deadline.due_at
    # The run began after the 4 s reminder, so a timer re-armed by it would
    # come due at least 4 s after the original closure time.
    assert closed.closure.at < latest_run_started + timedelta(seconds=30)
    assert closed.reminders_sent == 1
    assert len(notices(desk.outbox, number, "reminder")) == 1
    assert len(notices(desk.outbox, number, "closure")) == 1


async def test_signal_burst_across_continue_as_new(low_history_desk: Desk) -> None:
    desk = low_history_desk
    number, handle = await open_case(desk)
    first_run_id = (await handle.describe()).run_id
    await set_status(desk, number, Status.PENDING_CUSTOMER_INPUT)
    bodies = [f"customer detail {index}" for index in range(20)]

    # Twenty signal events alone pass the 30-event threshold, so the run
    # continues as new while signals are still arriving.
    await asyncio.gather(
        *(
            cases.add_comment(
                desk.client,
                number,
                AddCommentInput(actor=CUSTOMER, body=body),
                as_signal=True,
            )
            for body in bodies
        )
    )

    async def all_comments_stored() -> Case:
        case = await cases.get_case(desk.client, number)
        assert len(case.comments) == len(bodies)
        return case

    case = await assert_eventually(all_comments_stored)
    assert sorted(c.body for c in case.comments) == sorted(bodies)
    assert case.status is Status.UPDATE_RECEIVED
    moved = [e for e in case.history if e.to_status is Status.UPDATE_RECEIVED]
    assert len(moved) == 1
    assert moved[0].note == "customer commented"
    assert not any(entry.rejected for entry in case.history)

    # The run continues as new once the support notice that the first
    # customer comment started has been sent, which may come after the
    # comments are stored.
    async def continued_as_new() -> None:
        description = await handle.describe()
        assert description.run_id != first_run_id
        assert description.status == WorkflowExecutionStatus.RUNNING

    await assert_eventually(continued_as_new)
