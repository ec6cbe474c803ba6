"""Worker memory: resident memory of one worker process holding many open cases in its cache."""

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
from temporalio.client import Client

from bench.baseline import BaselineTimer
from bench.cases import case_request, run_bounded
from domain.statuses import Status
from starter import client as cases
from workflows.support_case import SupportCase

READY_TIMEOUT_SECONDS = 120
# Resident memory is read this many times after the last case is cached, and
# the highest reading kept, because the worker may still be settling.
RSS_READINGS = 5


def start_worker(
    address: str, task_queue: str, kind: str, max_cached: int, outbox: Path
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.memory_worker",
            address,
            task_queue,
            kind,
            str(max_cached),
            str(outbox),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == "ready":
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(
        f"the {kind} memory worker did not start within {READY_TIMEOUT_SECONDS} s "
        f"(exit status {process.poll()})"
    )


def stop_worker(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def resident_bytes(process: subprocess.Popen[str]) -> int:
    return int(psutil.Process(process.pid).memory_info().rss)


async def peak_resident_bytes(process: subprocess.Popen[str]) -> int:
    readings = []
    for _ in range(RSS_READINGS):
        readings.append(resident_bytes(process))
        await asyncio.sleep(0.5)
    return max(readings)


async def fill_with_cases(
    client: Client, task_queue: str, count: int, concurrency: int
) -> None:
    """Open ``count`` cases in Pending Customer Input, so each waits on a 7-day timer."""
    suffix = uuid.uuid4().hex[:10]

    async def open_one(index: int) -> None:
        opened = await cases.open_case(
            client,
            case_request(f"M{suffix}-{index}", status=Status.PENDING_CUSTOMER_INPUT),
            task_queue=task_queue,
        )
        # A query runs on the worker, so the case is in its cache once it returns.
        await opened.handle.query(SupportCase.get_case)

    await run_bounded(count, concurrency, open_one)


async def fill_with_timers(
    client: Client, task_queue: str, count: int, concurrency: int
) -> None:
    """Start ``count`` baseline workflows that each wait on a 7-day timer."""
    suffix = uuid.uuid4().hex[:10]
    due = datetime.now(UTC) + timedelta(days=7)

    async def start_one(index: int) -> None:
        handle = await client.start_workflow(
            BaselineTimer.run,
            due,
            id=f"baseline-M{suffix}-{index}",
            task_queue=task_queue,
        )
        await handle.query(BaselineTimer.get_due_at)

    await run_bounded(count, concurrency, start_one)


async def worker_memory(
    client: Client, address: str, count: int, concurrency: int, outbox: Path
) -> dict[str, float]:
    """Return the worker's resident memory before and after caching ``count`` workflows, for cases and baseline."""
    results: dict[str, float] = {}
    for kind, fill in (("casedesk", fill_with_cases), ("baseline", fill_with_timers)):
        task_queue = f"bench-memory-{kind}-{uuid.uuid4().hex[:10]}"
        process = start_worker(
            address,
            task_queue,
            "cases" if kind == "casedesk" else "baseline",
            count + 100,
            outbox,
        )
        try:
            idle = await peak_resident_bytes(process)
            await fill(client, task_queue, count, concurrency)
            loaded = await peak_resident_bytes(process)
        finally:
            stop_worker(process)
        results[f"{kind}_idle_mib"] = idle / 2**20
        results[f"{kind}_loaded_mib"] = loaded / 2**20
        results[f"{kind}_kib_per_workflow"] = (loaded - idle) / 1024 / count
    results["ratio"] = (
        results["casedesk_kib_per_workflow"] / results["baseline_kib_per_workflow"]
    )
    return results
