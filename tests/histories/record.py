"""Record SupportCase histories from a real dev server for the replay tests.

    .venv/bin/python -m tests.histories.record [--into FOLDER] [SCENARIO ...]

Each scenario runs on a fresh dev server with a policy of seconds, so real
timers fire in real time, and its history is saved as JSON beside this file.
Without arguments every scenario is recorded; name scenarios to record only
those, so existing files stay as they are. Record new histories when the
workflow changes in a way that running cases will see, and keep the old
ones: they are the cases already in flight.

``--into v2`` writes the plain scenarios into ``v2/`` beside this file
instead, which is how a release records the full set made by its own code
while the files of earlier releases stay as they are.

Scenarios under ``encrypted/`` run with the payload codec and the test-only
keys in ``encrypted/test-only.keys``, so their payloads are ciphertext.
"""

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Case
from starter.config import data_converter
from worker import build_worker
from workflows.messages import (
    AddCommentInput,
    ChangePriorityInput,
    ChangeStatusInput,
)
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES
from workflows.support_case import SupportCase

HERE = Path(__file__).resolve().parent
ENCRYPTED = HERE / "encrypted"
# Test-only keys: they protect nothing and exist so the encrypted histories
# can be replayed.
TEST_KEYS_FILE = ENCRYPTED / "test-only.keys"
BIN = Path(sys.executable).parent

SHORT_POLICY = {
    "pending_customer_input_reminder": {"seconds": 2},
    "pending_customer_input_closure": {"seconds": 5},
    "awaiting_customer_confirmation_closure": {"seconds": 3},
    "pending_customer_testing_closure": {"seconds": 3},
    "pending_work_plan_closure": {"seconds": 3},
}
SUPPORT = {"role": "support", "name": "Bob"}
CUSTOMER = {"role": "customer", "name": "Ann Lee"}

Scenario = Callable[[Client, str], Awaitable[WorkflowHandle[Any, Any]]]


def case_input(number: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "case_number": number,
        "subject": "Search returns no results",
        "institution": {
            "id": "inst-1",
            "name": "Example University",
            "time_zone": "Europe/Berlin",
        },
        "contact": {"name": "Ann Lee", "email": "ann.lee@example.org"},
        "policy": SHORT_POLICY,
    }
    data.update(overrides)
    return data


async def start(
    client: Client, queue: str, number: str, **overrides: Any
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        SupportCase.run,
        case_input(number, **overrides),
        id=f"case-{number}",
        task_queue=queue,
    )


async def status(
    handle: WorkflowHandle[Any, Any], value: str, actor: dict[str, str] = SUPPORT
) -> None:
    await handle.execute_update(
        SupportCase.change_status,
        ChangeStatusInput.model_validate({"status": value, "actor": actor}),
    )


async def reminded_then_closed(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-PCI-TIMERS")
    await status(handle, "Pending Customer Input")
    await handle.result()
    return handle


async def reopened_by_customer(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-REOPENED")
    await status(handle, "Awaiting Customer Confirmation")
    await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput.model_validate({"actor": CUSTOMER, "body": "Still broken"}),
    )
    await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput.model_validate(
            {"actor": SUPPORT, "body": "Looking", "internal": True}
        ),
    )
    await status(handle, "Awaiting Customer Confirmation")
    await handle.result()
    return handle


async def rejected_signals(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-REJECTED")
    await handle.signal("change_status", {"status": "Nope", "actor": SUPPORT})
    await handle.signal(
        "change_status", {"status": "Pending Work Plan", "actor": SUPPORT}
    )
    await handle.signal("add_comment", "not an object")
    await handle.signal("escalate", {"level": 3})
    await handle.signal("change_priority", {"priority": "High", "actor": SUPPORT})
    await handle.signal("change_status", {"status": "Closed", "actor": CUSTOMER})
    await handle.result()
    return handle


async def imported_past_deadlines(
    client: Client, queue: str
) -> WorkflowHandle[Any, Any]:
    since = (datetime.now(UTC) - timedelta(seconds=3)).isoformat()
    handle = await start(
        client, queue, "H-IMPORTED", status="Pending Customer Input", status_since=since
    )
    await handle.result()
    return handle


async def work_plan_import_closed(
    client: Client, queue: str
) -> WorkflowHandle[Any, Any]:
    handle = await start(
        client,
        queue,
        "H-WORK-PLAN",
        status="Pending Work Plan",
        status_since=datetime.now(UTC).isoformat(),
        priority="Low",
    )
    await handle.result()
    return handle


async def cloned(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    first = await start(client, queue, "H-CLONE-SOURCE")
    await status(first, "Closed")
    await first.result()
    handle = await start(client, queue, "H-CLONE", cloned_from="H-CLONE-SOURCE")
    await status(handle, "Closed", CUSTOMER)
    await handle.result()
    return handle


async def continued_as_new(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-CONTINUED")
    for index in range(12):
        await handle.execute_update(
            SupportCase.add_comment,
            AddCommentInput.model_validate({"actor": SUPPORT, "body": f"note {index}"}),
        )
    await status(handle, "Pending Customer Input")
    result: Case = await handle.result()
    assert result.closure is not None
    return handle


async def customer_testing_closed(
    client: Client, queue: str
) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-TESTING")
    await status(handle, "Pending Customer Testing")
    await handle.result()
    return handle


async def priority_then_reply(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """A priority change, a retried update id, and a customer reply before the reminder."""
    handle = await start(client, queue, "H-PRIORITY-REPLY")
    for _ in range(2):
        await handle.execute_update(
            SupportCase.change_priority,
            ChangePriorityInput.model_validate(
                {"priority": "High", "actor": SUPPORT, "note": "outage"}
            ),
            id="priority-retried",
        )
    await handle.execute_update(
        SupportCase.change_status,
        ChangeStatusInput.model_validate(
            {"status": "Pending Customer Input", "actor": SUPPORT}
        ),
    )
    await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput.model_validate({"actor": CUSTOMER, "body": "Here are logs"}),
    )
    await status(handle, "Closed")
    await handle.result()
    return handle


async def all_notices(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-MAIL-NOTICES", product="Discovery")
    await status(handle, "Pending Customer Input")
    await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput.model_validate({"actor": CUSTOMER, "body": "Logs attached"}),
    )
    await status(handle, "Awaiting Customer Confirmation")
    await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput.model_validate({"actor": CUSTOMER, "body": "Still broken"}),
    )
    await status(handle, "Pending Customer Testing")
    await status(handle, "Pending Release")
    await status(handle, "Closed")
    await handle.result()
    return handle


async def encrypted_reminded_then_closed(
    client: Client, queue: str
) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-ENCRYPTED")
    await handle.execute_update(
        SupportCase.add_comment,
        AddCommentInput.model_validate({"actor": CUSTOMER, "body": "Private detail"}),
    )
    await status(handle, "Pending Customer Input")
    await handle.result()
    return handle


async def work_plan_reassessed(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    policy = {
        **SHORT_POLICY,
        "pending_work_plan_reassessment": {"seconds": 1},
        "pending_work_plan_closure": {"seconds": 4},
    }
    handle = await start(
        client,
        queue,
        "H-MAIL-WORK-PLAN",
        status="Pending Work Plan",
        status_since=datetime.now(UTC).isoformat(),
        priority="Low",
        policy=policy,
    )
    await handle.result()
    return handle


SCENARIOS: dict[str, Scenario] = {
    "reminded_then_closed": reminded_then_closed,
    "reopened_by_customer": reopened_by_customer,
    "rejected_signals": rejected_signals,
    "imported_past_deadlines": imported_past_deadlines,
    "work_plan_import_closed": work_plan_import_closed,
    "cloned": cloned,
    "release-customer_testing_closed": customer_testing_closed,
    "release-priority_then_reply": priority_then_reply,
    "mail-all_notices": all_notices,
    "mail-work_plan_reassessed": work_plan_reassessed,
}
# Recorded with the payload codec into ENCRYPTED.
ENCRYPTED_SCENARIOS: dict[str, Scenario] = {
    "release-encrypted_reminded_then_closed": encrypted_reminded_then_closed,
}
CONTINUED_AS_NEW_ARGS = [
    "--dynamic-config-value",
    "limit.historyCount.suggestContinueAsNew=20",
]


def recording_converter() -> DataConverter:
    return data_converter({"CASE_ENCRYPTION_KEYS_FILE": str(TEST_KEYS_FILE)})


async def record(
    name: str,
    scenario: Scenario,
    extra_args: list[str],
    *,
    folder: Path = HERE,
    converter: DataConverter = pydantic_data_converter,
) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_extra_args=extra_args,
    )
    async with env:
        queue = f"record-{uuid.uuid4().hex[:8]}"
        with TemporaryDirectory() as outbox:
            worker = build_worker(
                env.client,
                task_queue=queue,
                email_settings=EmailSettings(outbox_dir=Path(outbox)),
            )
            async with worker:
                handle = await scenario(env.client, queue)
        # Every run of the chain, so continue-as-new histories are covered too.
        run_id = None
        index = 0
        async for execution in env.client.list_workflows(f'WorkflowId = "{handle.id}"'):
            run_id = execution.run_id
            history = await env.client.get_workflow_handle(
                handle.id, run_id=run_id
            ).fetch_history()
            suffix = f"_run{index}" if name == "continued_as_new" else ""
            (folder / f"{name}{suffix}.json").write_text(history.to_json())
            index += 1
        print(f"recorded {name}: {index} run(s)")


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.histories.record")
    parser.add_argument(
        "--into",
        metavar="FOLDER",
        help="folder beside this file for the plain scenarios (default: this folder)",
    )
    parser.add_argument("names", nargs="*", metavar="SCENARIO")
    args = parser.parse_args(argv)
    names: list[str] = args.names
    folder = HERE / args.into if args.into else HERE
    folder.mkdir(exist_ok=True)
    known = [*SCENARIOS, *ENCRYPTED_SCENARIOS, "continued_as_new"]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SystemExit(
            f"unknown scenario {', '.join(unknown)}; known ones are: {', '.join(known)}"
        )
    chosen = set(names or known)
    for name, scenario in SCENARIOS.items():
        if name in chosen:
            await record(name, scenario, [], folder=folder)
    for name, scenario in ENCRYPTED_SCENARIOS.items():
        if name in chosen and not args.into:
            await record(
                name, scenario, [], folder=ENCRYPTED, converter=recording_converter()
            )
    if "continued_as_new" in chosen:
        await record(
            "continued_as_new", continued_as_new, CONTINUED_AS_NEW_ARGS, folder=folder
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
