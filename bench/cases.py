"""Benchmarks of cases on a dev server: lifecycle throughput, timer delay and status latency.

Every benchmark runs SupportCase and a baseline workflow from
``bench.baseline`` with the same counts on the same server and worker
settings, one after the other, so each figure has a ratio taken in the same
run.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.email import EmailSettings
from bench.baseline import (
    BaselineCase,
    BaselineCaseWithNotices,
    BaselineTimer,
    baseline_notice,
)
from bench.stats import percentile
from domain.case import Actor, Case, CaseInput, Contact, Institution
from domain.deadlines import CasePolicy
from domain.statuses import Role, Status
from starter import client as cases
from starter.config import case_policy
from worker import CaseWorkers, build_worker
from workflows.messages import AddCommentInput, ChangeStatusInput
from workflows.support_case import SupportCase

SUPPORT = Actor(role=Role.SUPPORT, name="bench support")
CUSTOMER = Actor(role=Role.CUSTOMER, name="bench customer")

# The lifecycle after opening: five updates, the same count the baseline accepts.
LIFECYCLE_STEPS = 5


@dataclass
class Workers:
    """One worker for SupportCase and one for the baseline workflows, with the same options."""

    client: Client
    case_queue: str
    baseline_queue: str
    outbox: Path


def new_suffix() -> str:
    return uuid.uuid4().hex[:10]


def build_workers(
    client: Client, outbox: Path, **options: Any
) -> tuple[Workers, list[Worker | CaseWorkers]]:
    suffix = new_suffix()
    setup = Workers(
        client=client,
        case_queue=f"bench-cases-{suffix}",
        baseline_queue=f"bench-baseline-{suffix}",
        outbox=outbox,
    )
    case_worker = build_worker(
        client,
        task_queue=setup.case_queue,
        email_settings=EmailSettings(outbox_dir=outbox),
        # The dev server applies the notification queue's rate limit, which
        # stands for what a mail provider accepts. Left at its default of 5
        # per second it would set the pace here instead of the workflow.
        mail_max_per_second=BENCH_MAIL_MAX_PER_SECOND,
        **options,
    )
    baseline_worker = Worker(
        client,
        task_queue=setup.baseline_queue,
        workflows=[BaselineCase, BaselineCaseWithNotices, BaselineTimer],
        **options,  # type: ignore[arg-type]
    )
    baseline_notices = Worker(
        client,
        task_queue=baseline_notice_queue(setup),
        activities=[baseline_notice],
        max_task_queue_activities_per_second=BENCH_MAIL_MAX_PER_SECOND,
    )
    return setup, [case_worker, baseline_worker, baseline_notices]


def baseline_notice_queue(setup: Workers) -> str:
    return f"{setup.baseline_queue}-notifications"


# Notices per second the benchmarks' notification worker may hand out.
BENCH_MAIL_MAX_PER_SECOND = 100_000.0


def case_request(
    number: str,
    *,
    status: Status | None = None,
    policy: CasePolicy | None = None,
) -> CaseInput:
    return CaseInput(
        case_number=number,
        subject="Benchmark case",
        institution=Institution(id="bench", name="Benchmark University"),
        contact=Contact(name="Bench Customer", email="bench@example.org"),
        status=status,
        policy=policy or CasePolicy(),
    )


async def run_bounded(
    count: int, concurrency: int, job: Callable[[int], Awaitable[None]]
) -> None:
    """Run ``job(0)`` to ``job(count - 1)`` with at most ``concurrency`` at once."""
    limiter = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with limiter:
            await job(index)

    await asyncio.gather(*(one(index) for index in range(count)))


# ---- 1. lifecycle throughput


async def case_lifecycle(setup: Workers, number: str) -> None:
    client = setup.client
    opened = await cases.open_case(
        client, case_request(number), task_queue=setup.case_queue
    )
    for status in (Status.IN_PROGRESS, Status.PENDING_CUSTOMER_INPUT):
        await cases.change_status(
            client, number, ChangeStatusInput(status=status, actor=SUPPORT)
        )
    await cases.add_comment(
        client, number, AddCommentInput(actor=CUSTOMER, body="Here is the log file.")
    )
    await cases.change_status(
        client,
        number,
        ChangeStatusInput(status=Status.AWAITING_CUSTOMER_CONFIRMATION, actor=SUPPORT),
    )
    await cases.change_status(
        client, number, ChangeStatusInput(status=Status.CLOSED, actor=CUSTOMER)
    )
    final = await opened.handle.result()
    if final.status is not Status.CLOSED:
        raise RuntimeError(f"case {number} ended in {final.status.value}, not Closed")


async def baseline_lifecycle(setup: Workers, workflow_id: str) -> None:
    handle = await setup.client.start_workflow(
        BaselineCase.run,
        LIFECYCLE_STEPS,
        id=workflow_id,
        task_queue=setup.baseline_queue,
    )
    for step in range(LIFECYCLE_STEPS):
        await handle.execute_update(BaselineCase.set_status, f"step {step}")
    await handle.result()


async def baseline_with_notices_lifecycle(setup: Workers, workflow_id: str) -> None:
    handle = await setup.client.start_workflow(
        BaselineCaseWithNotices.run,
        args=[LIFECYCLE_STEPS, baseline_notice_queue(setup)],
        id=workflow_id,
        task_queue=setup.baseline_queue,
    )
    for step in range(LIFECYCLE_STEPS):
        await handle.execute_update(BaselineCaseWithNotices.set_status, f"step {step}")
    await handle.result()


async def lifecycle_throughput(
    setup: Workers, count: int, concurrency: int
) -> dict[str, float]:
    """Return cases per second for SupportCase and for the baseline, each over ``count`` cases."""
    suffix = new_suffix()

    async def case_job(index: int) -> None:
        await case_lifecycle(setup, f"L{suffix}-{index}")

    async def baseline_job(index: int) -> None:
        await baseline_lifecycle(setup, f"baseline-L{suffix}-{index}")

    async def notices_job(index: int) -> None:
        await baseline_with_notices_lifecycle(setup, f"notices-L{suffix}-{index}")

    started = time.perf_counter()
    await run_bounded(count, concurrency, case_job)
    case_seconds = time.perf_counter() - started

    started = time.perf_counter()
    await run_bounded(count, concurrency, baseline_job)
    baseline_seconds = time.perf_counter() - started

    started = time.perf_counter()
    await run_bounded(count, concurrency, notices_job)
    notices_seconds = time.perf_counter() - started

    return {
        "casedesk_cases_per_second": count / case_seconds,
        "baseline_cases_per_second": count / baseline_seconds,
        "ratio": baseline_seconds / case_seconds,
        "notices_baseline_cases_per_second": count / notices_seconds,
        "ratio_to_notices_baseline": notices_seconds / case_seconds,
    }


# ---- 2. timer precision


def seconds_policy(reminder_seconds: int, closure_seconds: int) -> CasePolicy:
    """Build a policy of seconds from ``CASE_POLICY_*`` settings, as an operator would."""
    return case_policy(
        {
            "CASE_POLICY_PENDING_CUSTOMER_INPUT_REMINDER": f"{reminder_seconds}s",
            "CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE": f"{closure_seconds}s",
        }
    )


def timer_delays(case: Case, reminder: timedelta, closure: timedelta) -> list[float]:
    """Return the seconds from due time to action for the case's reminder, if sent, and its closure.

    A reminder is left out when the closure is due by the time the workflow
    acts on it, so a case acted on more than the gap between the two late
    has only its closure.
    """
    opened = case.history[0]
    reminder_due = opened.at + reminder
    closure_due = opened.at + closure
    delays = []
    for entry in case.history:
        if entry.event == "reminder_sent":
            delays.append((entry.at - reminder_due).total_seconds())
        elif entry.event == "status_changed" and entry.to_status is Status.CLOSED:
            delays.append((entry.at - closure_due).total_seconds())
    if not delays:
        raise RuntimeError(
            f"case {case.case_number} ended with no timed action in its history"
        )
    return delays


async def run_spread(
    count: int, spread_seconds: float, job: Callable[[int], Awaitable[None]]
) -> None:
    """Start ``job(0)`` to ``job(count - 1)`` at even intervals over ``spread_seconds``."""
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def at_its_time(index: int) -> None:
        await asyncio.sleep(
            max(0.0, started + index * spread_seconds / count - loop.time())
        )
        await job(index)

    await asyncio.gather(*(at_its_time(index) for index in range(count)))


async def timer_precision(
    setup: Workers,
    count: int,
    spread_seconds: float,
    reminder_seconds: int,
    closure_seconds: int,
) -> dict[str, float]:
    """Return p50, p99 and max delay of reminders and closures, and of baseline timers.

    The cases are opened at even intervals over ``spread_seconds``, so their
    reminders come due within that span of each other, and so do their
    closures.
    """
    policy = seconds_policy(reminder_seconds, closure_seconds)
    reminder = timedelta(seconds=reminder_seconds)
    closure = timedelta(seconds=closure_seconds)
    suffix = new_suffix()
    handles: list[WorkflowHandle[SupportCase, Case]] = []

    async def open_one(index: int) -> None:
        opened = await cases.open_case(
            setup.client,
            case_request(
                f"T{suffix}-{index}",
                status=Status.PENDING_CUSTOMER_INPUT,
                policy=policy,
            ),
            task_queue=setup.case_queue,
        )
        handles.append(opened.handle)

    await run_spread(count, spread_seconds, open_one)
    finals = await asyncio.gather(*(handle.result() for handle in handles))
    case_delays = [
        delay for final in finals for delay in timer_delays(final, reminder, closure)
    ]

    # Each baseline timer comes due ``reminder`` after its start, as a case's
    # reminder does after its opening.
    baseline_handles: list[tuple[datetime, WorkflowHandle[Any, datetime]]] = []

    async def start_timer(index: int) -> None:
        due = datetime.now(UTC) + reminder
        handle = await setup.client.start_workflow(
            BaselineTimer.run,
            due,
            id=f"baseline-T{suffix}-{index}",
            task_queue=setup.baseline_queue,
        )
        baseline_handles.append((due, handle))

    await run_spread(count, spread_seconds, start_timer)
    baseline_delays = []
    for due, handle in baseline_handles:
        fired = await handle.result()
        baseline_delays.append((fired - due).total_seconds())

    return {
        "reminders_left_out": 2 * count - len(case_delays),
        "casedesk_p50_seconds": percentile(case_delays, 0.5),
        "casedesk_p99_seconds": percentile(case_delays, 0.99),
        "casedesk_max_seconds": max(case_delays),
        "baseline_p50_seconds": percentile(baseline_delays, 0.5),
        "baseline_p99_seconds": percentile(baseline_delays, 0.99),
        "baseline_max_seconds": max(baseline_delays),
        "timed_actions": len(case_delays),
    }


# ---- 3. latency from a status change to a visible status


def alternating_statuses() -> tuple[Status, Status]:
    """Two statuses support may move a case back and forth between, with no timer."""
    return Status.IN_PROGRESS, Status.PENDING_DEVELOPMENT


async def wait_visible(read: Callable[[], Awaitable[str]], expected: str) -> None:
    while await read() != expected:
        pass


async def case_latencies(setup: Workers, samples: int, as_signal: bool) -> list[float]:
    number = f"S{new_suffix()}"
    opened = await cases.open_case(
        setup.client, case_request(number), task_queue=setup.case_queue
    )
    handle = opened.handle

    async def read_status() -> str:
        case = await handle.query(SupportCase.get_case)
        return case.status.value

    latencies = []
    statuses = alternating_statuses()
    for index in range(samples):
        target = statuses[index % 2]
        started = time.perf_counter()
        await cases.change_status(
            setup.client,
            number,
            ChangeStatusInput(status=target, actor=SUPPORT),
            as_signal=as_signal,
        )
        await wait_visible(read_status, target.value)
        latencies.append(time.perf_counter() - started)
    await cases.change_status(
        setup.client, number, ChangeStatusInput(status=Status.CLOSED, actor=SUPPORT)
    )
    await handle.result()
    return latencies


async def baseline_latencies(
    setup: Workers, samples: int, as_signal: bool
) -> list[float]:
    handle = await setup.client.start_workflow(
        BaselineCase.run,
        samples,
        id=f"baseline-S{new_suffix()}",
        task_queue=setup.baseline_queue,
    )

    async def read_status() -> str:
        return await handle.query(BaselineCase.get_status)

    latencies = []
    for index in range(samples):
        target = f"status {index}"
        started = time.perf_counter()
        if as_signal:
            await handle.signal(BaselineCase.set_status_signal, target)
        else:
            await handle.execute_update(BaselineCase.set_status, target)
        await wait_visible(read_status, target)
        latencies.append(time.perf_counter() - started)
    await handle.result()
    return latencies


async def status_latency(setup: Workers, samples: int) -> dict[str, float]:
    """Return p50 and p99 milliseconds to a visible status, by update and by signal."""
    results: dict[str, float] = {}
    for kind, as_signal in (("update", False), ("signal", True)):
        measured = {
            "casedesk": await case_latencies(setup, samples, as_signal),
            "baseline": await baseline_latencies(setup, samples, as_signal),
        }
        for name, values in measured.items():
            results[f"{name}_{kind}_p50_ms"] = percentile(values, 0.5) * 1000
            results[f"{name}_{kind}_p99_ms"] = percentile(values, 0.99) * 1000
    return results
