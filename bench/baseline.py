"""Baseline workflows: what Temporal needs for the same messages and timers, with no case logic.

Each benchmark runs these beside SupportCase on the same server and worker
settings, so a figure is a ratio against what Temporal itself costs.
"""

from datetime import datetime

from temporalio import workflow


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
