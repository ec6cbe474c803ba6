"""Fixtures for the fault tests: worker processes on the shared dev server."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.faults.processes import WorkerLauncher
from tests.helpers import new_task_queue


@pytest_asyncio.fixture
async def workers(
    dev_env: WorkflowEnvironment, tmp_path: Path, outbox: Path
) -> AsyncIterator[WorkerLauncher]:
    """Worker processes on a new task queue of the dev server, writing to ``outbox``.

    Every process a test started and left running is killed afterwards.
    """
    launcher = WorkerLauncher(
        address=dev_env.client.service_client.config.target_host,
        task_queue=new_task_queue(),
        log_dir=tmp_path / "workers",
        environment={"CASE_OUTBOX_DIR": str(outbox)},
    )
    try:
        yield launcher
    finally:
        await launcher.kill_all()
