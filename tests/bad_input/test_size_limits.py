"""Size limits keep every case below Temporal's 2 MiB payload limit.

Every update and query returns the whole case, and continue-as-new carries
it, so a case over 2 MiB fails its workflow task again and again. Before the
byte limits, 70 comments of 10,000 CJK characters (within the limit of
1,000,000 characters) made a case of 2.1 MB that no update or query reached.
"""

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import (
    MAX_COMMENT_BYTES_PER_CASE,
    MAX_COMMENT_LENGTH,
    MAX_HISTORY_BYTES,
    MAX_NOTE_LENGTH,
)
from tests.helpers import case_input, new_case_number, new_task_queue
from worker import build_worker
from workflows.support_case import (
    RECENT_UPDATE_ID_BYTES,
    RECENT_UPDATE_IDS,
    _newest_ids,
)

# Temporal's default limit on one payload (limit.blobSize.error).
PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024
# Three bytes in UTF-8 each, so text of them is three times its length in bytes.
CJK = "漢"
SUPPORT = {"role": "support", "name": "Sam Support"}


@pytest_asyncio.fixture
async def raw_case(
    dev_env: WorkflowEnvironment, outbox: Path
) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    """A case on the dev server, through a client that sends and returns plain JSON."""
    client = await Client.connect(dev_env.client.service_client.config.target_host)
    task_queue = new_task_queue()
    worker = build_worker(
        dev_env.client,
        task_queue=task_queue,
        email_settings=EmailSettings(outbox_dir=outbox),
    )
    async with worker:
        number = new_case_number("L")
        handle = await client.start_workflow(
            "SupportCase",
            case_input(number),
            id=f"case-{number}",
            task_queue=task_queue,
        )
        yield handle
        history = await handle.fetch_history()
        failed = [
            event
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        assert failed == []
        await handle.terminate("test finished")


def json_size(value: Any) -> int:
    """Return the size of ``value`` as compact UTF-8 JSON, as the payload converter writes it."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


async def test_comment_bytes_limit_enforced(raw_case: WorkflowHandle[Any, Any]) -> None:
    body = CJK * MAX_COMMENT_LENGTH
    accepted = 0
    rejection: ApplicationError | None = None
    # 37 such comments reach the byte limit. Without it, 80 would pass 2 MiB.
    for _ in range(80):
        try:
            case = await raw_case.execute_update(
                "add_comment",
                {"actor": SUPPORT, "body": body, "internal": True},
                id=str(uuid.uuid4()),
            )
        except WorkflowUpdateFailedError as err:
            assert isinstance(err.cause, ApplicationError)
            rejection = err.cause
            break
        accepted += 1
        assert json_size(case) < PAYLOAD_LIMIT_BYTES

    assert rejection is not None
    assert rejection.type == "case_comment_storage_full"
    assert f"{MAX_COMMENT_BYTES_PER_CASE} bytes" in rejection.message
    assert accepted == MAX_COMMENT_BYTES_PER_CASE // (3 * MAX_COMMENT_LENGTH)
    # A signal over the limit is recorded as rejected, and the case still takes updates.
    await raw_case.signal(
        "add_comment", {"actor": SUPPORT, "body": body, "internal": True}
    )
    case = await raw_case.execute_update(
        "change_priority", {"priority": "High", "actor": SUPPORT}
    )
    assert len(case["comments"]) == accepted
    assert case["history"][-2]["event"] == "signal_rejected"
    assert "bytes" in case["history"][-2]["note"]
    assert json_size(case) < PAYLOAD_LIMIT_BYTES


async def test_history_bytes_limit_enforced(raw_case: WorkflowHandle[Any, Any]) -> None:
    note = CJK * MAX_NOTE_LENGTH
    # Each change adds a history entry of about 6,000 bytes, so 120 of them
    # pass MAX_HISTORY_BYTES. 1,000 of them (the entry limit) would be 6 MB.
    statuses = ["In Progress", "New"]
    for index in range(120):
        case = await raw_case.execute_update(
            "change_status",
            {"status": statuses[index % 2], "actor": SUPPORT, "note": note},
        )

    assert case["history_entries_dropped"] > 0
    assert json_size(case["history"]) <= MAX_HISTORY_BYTES
    assert case["history"][-1]["note"] == note
    assert json_size(case) < PAYLOAD_LIMIT_BYTES


def test_remembered_update_ids_bounded() -> None:
    longest = "u" * 1000  # the server rejects longer update ids
    control = "\x01" * 1000  # 6,000 bytes as a JSON string

    kept_long = _newest_ids([f"{index}-{longest}" for index in range(600)])
    kept_control = _newest_ids([f"{index}-{control}" for index in range(600)])
    kept_short = _newest_ids([str(index) for index in range(600)])

    assert json_size(kept_long) <= RECENT_UPDATE_ID_BYTES
    assert kept_long[-1].startswith("599-")
    assert json_size(kept_control) <= RECENT_UPDATE_ID_BYTES
    assert kept_control[-1].startswith("599-")
    assert kept_short == [str(index) for index in range(100, 600)]
    assert len(kept_short) == RECENT_UPDATE_IDS
