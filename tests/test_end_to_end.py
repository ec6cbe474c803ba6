"""worker.py as its own process, driven by a client that speaks only JSON.

The client here uses the SDK's default data converter and plain dicts, as a
support system written in another language would. The worker process runs
against the time-skipping test server and stays up for the whole life of the
case, because that server loses a pending timer when a worker stops and
another one starts.
"""

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.helpers import (
    assert_eventually,
    case_input,
    new_case_number,
    new_task_queue,
    notices,
)

REPOSITORY = Path(__file__).resolve().parents[1]
WORKER_START_TIMEOUT = timedelta(seconds=60)
WORKER_STOP_TIMEOUT_SECONDS = 30


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    stdout_path: Path
    stderr_path: Path
    task_queue: str
    outbox: Path

    def stdout_lines(self) -> list[str]:
        return [line for line in self.stdout_path.read_text().splitlines() if line]

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr_path.read_text().splitlines() if line]

    async def stop(self) -> int:
        """Send SIGTERM, as a service manager does, and return the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), WORKER_STOP_TIMEOUT_SECONDS)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def start_worker_process(
    address: str,
    directory: Path,
    outbox: Path,
    *,
    task_queue: str | None = None,
    settings: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start ``python worker.py`` and wait until it logs its start.

    It polls ``task_queue``, or a new one, with ``settings`` added to its
    environment.
    """
    task_queue = task_queue or new_task_queue()
    environment = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "CASE_TASK_QUEUE": task_queue,
        "CASE_OUTBOX_DIR": str(outbox),
        # A `make run` on the same machine may be using the default metrics port.
        "CASE_METRICS_ADDRESS": "off",
        **(settings or {}),
    }
    directory.mkdir(parents=True, exist_ok=True)
    stdout_path = directory / "worker.stdout"
    stderr_path = directory / "worker.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "worker.py",
            cwd=REPOSITORY,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    running = WorkerProcess(process, stdout_path, stderr_path, task_queue, outbox)

    async def started() -> None:
        assert process.returncode is None, (
            f"worker.py exited with status {process.returncode}:\n"
            + "\n".join(running.stderr_lines())
        )
        assert any('"worker.started"' in line for line in running.stderr_lines())

    try:
        await assert_eventually(started, within=WORKER_START_TIMEOUT)
    except BaseException:
        await running.kill()
        raise
    return running


@pytest_asyncio.fixture
async def worker_process(
    ts_env: WorkflowEnvironment, tmp_path: Path, outbox: Path
) -> AsyncIterator[WorkerProcess]:
    """A worker.py process against the test server, killed if a test left it running.

    The worker registers its search attributes at start-up although the
    ``ts_env`` fixture registered them already, so a start here also checks
    that a second registration is accepted.
    """
    address = ts_env.client.service_client.config.target_host
    running = await start_worker_process(address, tmp_path / "worker", outbox)
    try:
        yield running
    finally:
        await running.kill()


def is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


async def test_worker_process_serves_json_client(
    ts_env: WorkflowEnvironment, worker_process: WorkerProcess
) -> None:
    address = ts_env.client.service_client.config.target_host
    client = await Client.connect(address)
    number = new_case_number("E")
    handle = await client.start_workflow(
        "SupportCase",
        case_input(number),
        id=f"case-{number}",
        task_queue=worker_process.task_queue,
    )

    pending: dict[str, Any] = await handle.execute_update(
        "change_status",
        {
            "status": "Pending Customer Input",
            "actor": {"role": "support", "name": "Sam Support"},
            "note": "asked for the proxy logs",
        },
    )
    assert pending["status"] == "Pending Customer Input"
    assert [d["kind"] for d in pending["deadlines"]] == ["reminder", "closure"]
    entered = datetime.fromisoformat(pending["status_since"])

    await handle.signal(
        "add_comment",
        {"actor": {"role": "support", "name": "Sam Support"}, "body": "Any news?"},
    )

    async def comment_stored() -> dict[str, Any]:
        case: dict[str, Any] = await handle.query("get_case")
        assert len(case["comments"]) == 1
        return case

    case = await assert_eventually(comment_stored)
    assert case["comments"][0]["body"] == "Any news?"
    assert case["status"] == "Pending Customer Input"

    # The default policy reminds the contact after 7 days and closes after 28.
    await ts_env.sleep(timedelta(days=8))

    async def reminder_sent() -> None:
        assert len(notices(worker_process.outbox, number, "reminder")) == 1

    await assert_eventually(reminder_sent)

    await ts_env.sleep(timedelta(days=21))
    closed: dict[str, Any] = await handle.result()

    assert closed["status"] == "Closed"
    assert closed["reminders_sent"] == 1
    assert closed["closure"]["rule"] == "pending_customer_input_closure"
    closed_at = datetime.fromisoformat(closed["closure"]["at"])
    assert closed_at >= entered + timedelta(days=28)
    assert len(notices(worker_process.outbox, number, "reminder")) == 1
    assert len(notices(worker_process.outbox, number, "closure")) == 1

    assert await worker_process.stop() == 0

    lines = worker_process.stderr_lines()
    assert [line for line in lines if not is_json_object(line)] == []
    events = [json.loads(line).get("event") for line in lines]
    assert "worker.started" in events
    assert "case.closed_by_timer" in events
    assert "worker.stopped" in events


async def test_worker_process_writes_no_text_logs(
    worker_process: WorkerProcess,
) -> None:
    # Connecting to the time-skipping test server makes the SDK's Rust core
    # log a warning about a missing server capability, so this start-up
    # produces at least one core log line. Standard error is checked in the
    # test above, and the exit status in the test below.
    await worker_process.stop()

    text_lines = [
        line for line in worker_process.stdout_lines() if not is_json_object(line)
    ]
    assert text_lines == []


async def test_worker_process_stops_with_status_zero(
    ts_env: WorkflowEnvironment, tmp_path: Path, outbox: Path
) -> None:
    # NOTE: the failure this test looks for is intermittent. On a 2-core
    # machine, 4 of 40 stops of worker.py ended in SIGABRT or SIGSEGV during
    # interpreter shutdown, after the "worker.stopped" line, so twenty stops
    # show it in most runs but not all.
    address = ts_env.client.service_client.config.target_host
    failures = []
    for attempt in range(20):
        running = await start_worker_process(
            address, tmp_path / f"worker-{attempt}", outbox
        )
        return_code = await running.stop()
        if return_code != 0:
            text_lines = [
                line for line in running.stderr_lines() if not is_json_object(line)
            ]
            failures.append((attempt, return_code, text_lines[:2]))

    assert failures == []
