"""JSON log lines from workflow and activity code: ids on every line, none on replay.

The worker runs with no workflow cache, so every workflow task rebuilds the
case by replaying its whole history. A line logged again on replay would
show up as a duplicate.
"""

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.email import EmailSettings
from domain.statuses import Status
from starter.logs import configure_logging
from tests.helpers import (
    CUSTOMER,
    ONE_SECOND,
    case_input,
    final_case,
    new_case_number,
    new_task_queue,
    set_status,
    sleep_until,
)
from worker import build_worker
from workflows.messages import AddCommentInput
from workflows.support_case import SupportCase

# Loggers that workflow and activity code write through.
CASE_LOGGERS = {"temporalio.workflow", "temporalio.activity", "activities.email"}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Route logging through ``configure_logging`` into a buffer, then restore it."""
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    saved_level = root.level
    saved_structlog = structlog.get_config()
    configure_logging("INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


def case_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [entry for entry in entries if entry.get("logger") in CASE_LOGGERS]


async def test_log_lines_name_case_once(
    ts_env: WorkflowEnvironment, tmp_path: Path, json_log: io.StringIO
) -> None:
    number = new_case_number("LOG")
    queue = new_task_queue()
    settings = EmailSettings(outbox_dir=tmp_path / "outbox")
    async with build_worker(
        ts_env.client, task_queue=queue, email_settings=settings, max_cached_workflows=0
    ):
        handle = await ts_env.client.start_workflow(
            SupportCase.run,
            case_input(number),
            id=f"case-{number}",
            task_queue=queue,
        )
        await handle.execute_update(
            SupportCase.add_comment,
            AddCommentInput(actor=CUSTOMER, body="Still failing"),
        )
        pending = await handle.execute_update(
            SupportCase.change_status, set_status(Status.PENDING_CUSTOMER_INPUT)
        )
        closure = max(d.due_at for d in pending.deadlines)
        await handle.signal("escalate", {"actor": {"role": "support"}})
        await sleep_until(ts_env, closure + ONE_SECOND)
        final = await final_case(ts_env, handle)
    assert final.is_closed
    history = await handle.fetch_history()
    lines = case_lines(json_log)

    events = [line["event"] for line in lines]
    for expected in (
        "case.started",
        "case.comment_added",
        "case.status_changed",
        "case.signal_rejected",
        "case.reminder_due",
        "email.sent",
        "case.closed_by_timer",
        "case.closed",
    ):
        assert expected in events, f"{expected} missing from {events}"
    for line in lines:
        assert line.get("case") == number, line
        assert line.get("workflow_id") == f"case-{number}", line
        assert line.get("run_id") == handle.result_run_id, line
    seen = [
        json.dumps({k: v for k, v in line.items() if k != "timestamp"}, sort_keys=True)
        for line in lines
    ]
    duplicates = {line for line in seen if seen.count(line) > 1}
    assert not duplicates

    json_log.seek(0)
    json_log.truncate()
    replayer = Replayer(workflows=[SupportCase], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None
    assert case_lines(json_log) == []
