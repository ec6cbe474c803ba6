"""Fixtures for the workflow tests."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from tests.helpers import TimeSkippingCases, new_task_queue
from worker import build_worker


@pytest.fixture
async def cases(
    ts_env: WorkflowEnvironment, outbox: Path
) -> AsyncIterator[TimeSkippingCases]:
    queue = new_task_queue()
    worker = build_worker(
        ts_env.client, task_queue=queue, email_settings=EmailSettings(outbox_dir=outbox)
    )
    async with worker:
        started = TimeSkippingCases(ts_env, queue, outbox)
        yield started
        await started.close_open_cases()
