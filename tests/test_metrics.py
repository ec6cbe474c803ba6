"""The worker's Prometheus endpoint, scraped from a real worker process.

The worker runs as ``python worker.py`` against the dev server, as in
production, and serves metrics on a free loopback port. Deadlines are a few
seconds long so timers fire in real time.
"""

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings, notification_task_queue
from domain.case import CaseInput
from domain.statuses import Status
from starter import client as cases
from starter.logs import temporal_runtime
from tests.helpers import (
    assert_eventually,
    case_input,
    final_case,
    new_case_number,
    new_task_queue,
    set_status,
    sleep_until,
)
from worker import build_worker
from workflows.messages import ChangeStatusInput
from workflows.support_case import SupportCase

ROOT = Path(__file__).resolve().parents[1]
SECONDS_POLICY = {
    "pending_customer_input_reminder": {"seconds": 2},
    "pending_customer_input_closure": {"seconds": 4},
}
SUPPORT = {"role": "support", "name": "Sam Support"}
SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$"
)
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match is not None, f"not a Prometheus sample line: {line!r}"
        labels = dict(LABEL.findall(match.group("labels") or ""))
        samples.append(Sample(match.group("name"), labels, float(match.group("value"))))
    return samples


def total(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        sample.value
        for sample in samples
        if sample.name == name
        and all(sample.labels.get(key) == value for key, value in labels.items())
    )


@dataclass
class WorkerProcess:
    client: Client
    task_queue: str
    metrics_url: str
    process: asyncio.subprocess.Process

    def scrape(self) -> list[Sample]:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return parse_metrics(response.read().decode())


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "worker.log"
    yield path
    if path.exists():
        # Shown by pytest only when the test fails.
        print(path.read_text()[-4000:])


async def start_worker(
    dev_env: WorkflowEnvironment, outbox: Path, log: Path
) -> WorkerProcess:
    queue = new_task_queue()
    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "CASE_TASK_QUEUE": queue,
        "CASE_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "CASE_OUTBOX_DIR": str(outbox),
    }
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "worker.py"),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(
        dev_env.client, queue, f"http://127.0.0.1:{port}/metrics", process
    )

    async def serving() -> None:
        assert process.returncode is None, (
            f"the worker exited with {process.returncode}"
        )
        try:
            await asyncio.to_thread(worker.scrape)
        except OSError as err:
            raise AssertionError(f"metrics not served yet: {err}") from err

    await assert_eventually(serving, within=timedelta(seconds=30))
    return worker


async def stop_worker(worker: WorkerProcess) -> None:
    worker.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(worker.process.wait(), timeout=30)


@pytest_asyncio.fixture
async def worker(
    dev_env: WorkflowEnvironment, tmp_path: Path, worker_log: Path
) -> AsyncIterator[WorkerProcess]:
    started = await start_worker(dev_env, tmp_path / "outbox", worker_log)
    yield started
    await stop_worker(started)


async def open_case(worker: WorkerProcess, **overrides: Any) -> str:
    number = new_case_number("M")
    request = CaseInput.model_validate(case_input(number, **overrides))
    await cases.open_case(worker.client, request, task_queue=worker.task_queue)
    return number


async def test_worker_serves_casedesk_metrics(worker: WorkerProcess) -> None:
    number = await open_case(worker, policy=SECONDS_POLICY)
    handle = cases.case_handle(worker.client, number)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "change_status", {"status": "New", "actor": SUPPORT}
        )
    await handle.signal("change_status", {"status": "Someday", "actor": SUPPORT})
    await handle.signal("escalate", {"actor": SUPPORT})
    await cases.change_status(
        worker.client,
        number,
        ChangeStatusInput.model_validate(
            {"status": "Pending Customer Input", "actor": SUPPORT}
        ),
    )
    final = await handle.result()
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"

    async def counted() -> list[Sample]:
        samples = await asyncio.to_thread(worker.scrape)
        assert total(samples, "casedesk_closures_total") >= 1
        return samples

    samples = await assert_eventually(counted, within=timedelta(seconds=30))

    queue = {"task_queue": worker.task_queue}
    assert (
        total(
            samples,
            "casedesk_status_transitions_total",
            from_status="New",
            to_status="Pending Customer Input",
            **queue,
        )
        == 1
    )
    assert (
        total(
            samples,
            "casedesk_status_transitions_total",
            from_status="Pending Customer Input",
            to_status="Closed",
            **queue,
        )
        == 1
    )
    assert total(samples, "casedesk_reminders_sent_total", **queue) == 1
    assert (
        total(
            samples,
            "casedesk_closures_total",
            reason="pending_customer_input_closure",
            **queue,
        )
        == 1
    )
    assert (
        total(
            samples,
            "casedesk_updates_rejected_total",
            update="change_status",
            reason="status_unchanged",
            **queue,
        )
        == 1
    )
    assert (
        total(
            samples,
            "casedesk_signals_rejected_total",
            signal="change_status",
            reason="invalid_argument",
            **queue,
        )
        == 1
    )
    assert (
        total(
            samples,
            "casedesk_signals_rejected_total",
            signal="escalate",
            reason="unknown_signal",
            **queue,
        )
        == 1
    )
    # The SDK's own metrics come from the same endpoint.
    assert total(samples, "temporal_workflow_completed_total", **queue) >= 1


async def test_failed_email_attempts_counted(
    dev_env: WorkflowEnvironment, tmp_path: Path, worker_log: Path
) -> None:
    # A file where the outbox directory should be makes every delivery fail.
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    worker = await start_worker(dev_env, blocked / "outbox", worker_log)
    try:
        number = await open_case(worker, policy=SECONDS_POLICY)
        await cases.change_status(
            worker.client,
            number,
            ChangeStatusInput.model_validate(
                {"status": "Pending Customer Input", "actor": SUPPORT}
            ),
        )

        async def counted() -> None:
            samples = await asyncio.to_thread(worker.scrape)
            assert (
                total(
                    samples,
                    "casedesk_activity_attempts_failed_total",
                    activity_type="send_case_email",
                    # Notices run on the rate-limited notification task queue.
                    task_queue=notification_task_queue(worker.task_queue),
                )
                >= 1
            )

        await assert_eventually(counted, within=timedelta(seconds=30))
        await cases.change_status(
            worker.client,
            number,
            ChangeStatusInput.model_validate({"status": "Closed", "actor": SUPPORT}),
        )
    finally:
        await stop_worker(worker)


async def test_worker_reports_busy_metrics_port(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "worker.py"),
            env={
                **os.environ,
                "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                "CASE_TASK_QUEUE": new_task_queue(),
                "CASE_METRICS_ADDRESS": address,
                "CASE_OUTBOX_DIR": str(tmp_path / "outbox"),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 2
    assert "cannot serve metrics" in stderr.decode()
    assert "CASE_METRICS_ADDRESS" in stderr.decode()


async def test_given_up_email_counted(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """An email that fails for its whole 24-hour window counts once, on the time-skipping server."""
    port = free_port()
    runtime = temporal_runtime(f"127.0.0.1:{port}")
    client = await Client.connect(
        ts_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    queue = new_task_queue()
    number = new_case_number("M")
    settings = EmailSettings(outbox_dir=blocked / "outbox")
    async with build_worker(client, task_queue=queue, email_settings=settings):
        handle = await ts_env.client.start_workflow(
            SupportCase.run,
            case_input(number),
            id=f"case-{number}",
            task_queue=queue,
        )
        pending = await handle.execute_update(
            SupportCase.change_status, set_status(Status.PENDING_CUSTOMER_INPUT)
        )
        reminder = min(d.due_at for d in pending.deadlines)
        # Past the reminder and its whole delivery window, before the closure.
        await sleep_until(ts_env, reminder + timedelta(hours=25))
        case = await handle.query(SupportCase.get_case)
        assert [entry.event for entry in case.history][-1] == "email_failed"

        scraped = await asyncio.to_thread(
            urllib.request.urlopen, f"http://127.0.0.1:{port}/metrics", None, 5
        )
        samples = parse_metrics(scraped.read().decode())

        # The closure email fails too, so the case ends without one.
        await handle.execute_update(
            SupportCase.change_status, set_status(Status.CLOSED)
        )
        await sleep_until(ts_env, reminder + timedelta(hours=50))
        await final_case(ts_env, handle)

    assert (
        total(
            samples, "casedesk_emails_failed_total", notice="reminder", task_queue=queue
        )
        == 1
    )
    assert total(samples, "casedesk_reminders_sent_total", task_queue=queue) == 0
    assert (
        total(
            samples,
            "casedesk_activity_attempts_failed_total",
            activity_type="send_case_email",
            task_queue=notification_task_queue(queue),
        )
        > 1
    )
