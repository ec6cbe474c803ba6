"""Baseline workflows: what Temporal needs for the same messages and timers, with no case logic.

Each benchmark runs these beside SupportCase on the same server and worker
settings, so a figure is a ratio against what Temporal itself costs.
"""

import asyncio
from datetime import datetime, timedelta

from temporalio import activity, workflow


@workflow.defn(name="BaselineCase")
class BaselineCase:
    """Accept ``updates`` status updates, then complete."""

    def __init__(self) -> None:
        self._status = "New"
        self._updates = 0

    @workflow.run
    async def run(self, updates: int) -> int:
        await workflow.wait_condition(
            lambda: self._updates >= updates and workflow.all_handlers_finished()
        )
        return self._updates

    @workflow.update
    def set_status(self, status: str) -> str:
        self._status = status
        self._updates += 1
        return status

    @workflow.signal(name="set_status")
    def set_status_signal(self, status: str) -> None:
        self._status = status
        self._updates += 1

    @workflow.query
    def get_status(self) -> str:
        return self._status


@activity.defn(name="baseline_notice")
async def baseline_notice(status: str) -> None:
    """Stand for a notice email: an activity that does no work."""


@workflow.defn(name="BaselineCaseWithNotices")
class BaselineCaseWithNotices:
    """Accept ``updates`` status updates, each starting one activity, then complete.

    The activities run on ``notice_queue``, as casedesk's notices run on their
    own task queue, so this is what Temporal itself costs for a case that
    sends one email per update.
    """

    @workflow.init
    def __init__(self, updates: int, notice_queue: str) -> None:
        self._sent = 0
        # Set here, not in run, because an update may be handled before run starts.
        self._queue = notice_queue

    @workflow.run
    async def run(self, updates: int, notice_queue: str) -> int:
        await workflow.wait_condition(
            lambda: self._sent >= updates and workflow.all_handlers_finished()
        )
        return self._sent

    @workflow.update
    def set_status(self, status: str) -> str:
        asyncio.create_task(self._notify(status))
        return status

    async def _notify(self, status: str) -> None:
        await workflow.execute_activity(
            baseline_notice,
            status,
            task_queue=self._queue,
            start_to_close_timeout=timedelta(seconds=60),
        )
        self._sent += 1


@workflow.defn(name="BaselineTimer")
class BaselineTimer:
    """Sleep until ``due_at`` and return the workflow time at which the timer fired."""

    @workflow.init
    def __init__(self, due_at: datetime) -> None:
        self._due_at = due_at

    @workflow.run
    async def run(self, due_at: datetime) -> datetime:
        remaining = due_at - workflow.now()
        if remaining.total_seconds() > 0:
            await workflow.sleep(remaining)
        return workflow.now()

    @workflow.query
    def get_due_at(self) -> datetime:
        return self._due_at
