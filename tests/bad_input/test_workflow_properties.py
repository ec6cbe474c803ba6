"""Random and hostile payloads sent to a running SupportCase on the dev server.

A client with the SDK's default JSON converter sends plain JSON, as a support
system in another language would. Each test keeps one case open across all
its examples, so the suite starts no server per example. Per example:

- an update is accepted, or rejected with a non-retryable ApplicationError
  whose type names the rule and whose message names the problem;
- a signal is applied, or recorded in the case history as rejected;
- a valid update sent next still works, so the workflow is not stuck;
- the workflow's history never contains a failed workflow task.

Hypothesis drives the examples from a worker thread, because the test's
event loop must keep running the Temporal client and worker meanwhile.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Case, CaseInput
from domain.errors import CaseRuleError
from tests.bad_input.strategies import (
    JSON_VALUES,
    PAYLOADS_BY_ACTION,
    case_inputs,
)
from tests.helpers import case_input, new_case_number, new_task_queue
from worker import build_worker
from workflows.messages import AddCommentInput, ChangePriorityInput, ChangeStatusInput

T = TypeVar("T")
ACTION_MODELS: dict[str, type[BaseModel]] = {
    "change_status": ChangeStatusInput,
    "add_comment": AddCommentInput,
    "change_priority": ChangePriorityInput,
}
PROBE = {
    "actor": {"role": "support", "name": "Probe"},
    "body": "probe",
    "internal": True,
}
EXAMPLE_TIMEOUT_SECONDS = 30
# Each example costs a few round trips to the server, so these tests run
# half of the profile's examples.
WORKFLOW_SETTINGS = settings(max_examples=max(10, settings().max_examples // 2))


def failed_workflow_tasks(history: Any) -> list[str]:
    return [
        event.workflow_task_failed_event_attributes.failure.message
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


def is_valid(model: type[BaseModel], payload: Any) -> bool:
    try:
        model.model_validate(payload)
    except ValidationError:
        return False
    return True


@dataclass
class LiveCase:
    """One long-lived case that the examples act on, replaced by a new one once closed."""

    client: Client
    task_queue: str
    handle: WorkflowHandle[Any, Any] | None = None

    async def open(self) -> None:
        number = new_case_number("P")
        self.handle = await self.client.start_workflow(
            "SupportCase",
            case_input(number),
            id=f"case-{number}",
            task_queue=self.task_queue,
        )

    async def case(self) -> dict[str, Any]:
        assert self.handle is not None
        case: dict[str, Any] = await self.handle.query("get_case")
        return case

    async def probe(self) -> dict[str, Any]:
        """Send a valid update, which must be applied while the workflow still runs."""
        assert self.handle is not None
        case: dict[str, Any] = await self.handle.execute_update(
            "add_comment", PROBE, id=f"probe-{uuid.uuid4()}"
        )
        return case

    async def replace_if_closed(self) -> None:
        assert self.handle is not None
        description = await self.handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            await self.assert_no_failed_task()
            await self.open()
            return
        assert description.status == WorkflowExecutionStatus.RUNNING

    async def assert_no_failed_task(self) -> None:
        assert self.handle is not None
        assert failed_workflow_tasks(await self.handle.fetch_history()) == []

    async def check_update(self, action: str, payload: Any) -> None:
        assert self.handle is not None
        model = ACTION_MODELS[action]
        try:
            result: dict[str, Any] = await self.handle.execute_update(
                action, payload, id=f"example-{uuid.uuid4()}"
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError), repr(cause)
            assert cause.non_retryable
            assert cause.message
            if not is_valid(model, payload):
                assert cause.type == "invalid_argument", cause.message
                assert cause.message.startswith(f"invalid {model.__name__}: ")
            else:
                # A well-formed request that a rule of the case rejects.
                assert cause.type not in (None, "invalid_argument"), cause.message
                assert "case " in cause.message
        else:
            assert is_valid(model, payload)
            assert result["case_number"]
            if result["status"] == "Closed":
                await self.replace_if_closed()
                return
        await self.probe()

    async def check_signal(self, name: str, args: list[Any]) -> None:
        assert self.handle is not None
        before = await self.case()
        await self.handle.signal(name, args=args)
        try:
            after = await self.probe()
        except WorkflowUpdateFailedError:
            # The signal closed the case, so it was valid and applied.
            closed: dict[str, Any] = await self.handle.result()
            assert closed["status"] == "Closed"
            assert name == "change_status"
            assert not closed["history"][-1]["rejected"]
            await self.replace_if_closed()
            return
        model = ACTION_MODELS.get(name)
        new_entries = after["history"][len(before["history"]) :]
        if len(after["history"]) == len(before["history"]):
            # The history is full, so the oldest entries are dropped.
            dropped = (
                after["history_entries_dropped"] - before["history_entries_dropped"]
            )
            new_entries = after["history"][len(after["history"]) - dropped :]
        rejected = [entry for entry in new_entries if entry["rejected"]]
        well_formed = model is not None and len(args) == 1 and is_valid(model, args[0])
        if not well_formed:
            assert len(rejected) == 1, new_entries
            assert rejected[0]["event"] == "signal_rejected"
            assert rejected[0]["note"].startswith(f"signal {name!r} rejected: ")
            assert len(after["comments"]) == len(before["comments"]) + 1
        else:
            assert len(rejected) <= 1, new_entries
        await self.replace_if_closed()


@pytest_asyncio.fixture
async def live_case(
    dev_env: WorkflowEnvironment, outbox: Path
) -> AsyncIterator[LiveCase]:
    address = dev_env.client.service_client.config.target_host
    client = await Client.connect(address)
    task_queue = new_task_queue()
    worker = build_worker(
        dev_env.client,
        task_queue=task_queue,
        email_settings=EmailSettings(outbox_dir=outbox),
    )
    async with worker:
        live = LiveCase(client, task_queue)
        await live.open()
        yield live
        await live.assert_no_failed_task()
        assert live.handle is not None
        await live.handle.terminate("test finished")


def run_on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the test's event loop from a Hypothesis thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(
        EXAMPLE_TIMEOUT_SECONDS
    )


async def test_updates_reject_hostile_payloads(live_case: LiveCase) -> None:
    loop = asyncio.get_running_loop()

    @WORKFLOW_SETTINGS
    @given(action=st.sampled_from(sorted(ACTION_MODELS)), data=st.data())
    def send_update(action: str, data: st.DataObject) -> None:
        payload = data.draw(PAYLOADS_BY_ACTION[action](), label="payload")
        run_on(loop, live_case.check_update(action, payload))

    await asyncio.to_thread(send_update)


SIGNAL_NAMES = st.one_of(
    st.sampled_from(sorted(ACTION_MODELS)),
    st.text(min_size=1, max_size=40).filter(
        lambda name: name not in ACTION_MODELS and not name.startswith("__")
    ),
)


async def test_signals_recorded_when_rejected(live_case: LiveCase) -> None:
    loop = asyncio.get_running_loop()

    @WORKFLOW_SETTINGS
    @given(
        name=SIGNAL_NAMES, arg_count=st.sampled_from([1, 1, 1, 0, 2]), data=st.data()
    )
    def send_signal(name: str, arg_count: int, data: st.DataObject) -> None:
        payloads = PAYLOADS_BY_ACTION.get(name, lambda: JSON_VALUES)()
        args = [data.draw(payloads, label=f"arg {i}") for i in range(arg_count)]
        run_on(loop, live_case.check_signal(name, args))

    await asyncio.to_thread(send_signal)


async def test_opening_rejects_hostile_input(live_case: LiveCase) -> None:
    loop = asyncio.get_running_loop()
    client = live_case.client

    async def check_open(payload: Any) -> None:
        workflow_id = f"case-prop-{uuid.uuid4().hex[:12]}"
        handle = await client.start_workflow(
            "SupportCase", payload, id=workflow_id, task_queue=live_case.task_queue
        )
        try:
            expected_error = opening_error(payload)
            if expected_error is not None:
                try:
                    await asyncio.wait_for(handle.result(), EXAMPLE_TIMEOUT_SECONDS)
                except WorkflowFailureError as err:
                    cause = err.cause
                    assert isinstance(cause, ApplicationError), repr(cause)
                    assert cause.type == "InvalidCaseInput"
                    assert cause.message.startswith("invalid case input: ")
                else:
                    raise AssertionError(f"the case opened, expected: {expected_error}")
            else:
                case: dict[str, Any] = await handle.query("get_case")
                assert case["case_number"] == payload["case_number"]
        finally:
            assert failed_workflow_tasks(await handle.fetch_history()) == []
            description = await handle.describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")

    @WORKFLOW_SETTINGS
    @given(
        payload=st.one_of(
            case_inputs(st.just("00012345")),
            case_inputs(st.text(max_size=40)),
            JSON_VALUES,
        )
    )
    def open_case(payload: Any) -> None:
        run_on(loop, check_open(payload))

    await asyncio.to_thread(open_case)


def opening_error(payload: Any) -> str | None:
    """Return why the workflow must reject ``payload``, or None if the case must open."""
    try:
        request = CaseInput.model_validate(payload)
        case = Case.open(request, datetime.now(UTC))
        case.check_mail_header_text()
    except (ValidationError, CaseRuleError) as err:
        return str(err)
    return None
