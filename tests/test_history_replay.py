"""Every recorded history replays against the current SupportCase code.

A change to the workflow that would break cases already in flight (a new
command, a reordered timer, an activity added without ``workflow.patched``)
makes one of these fail with a non-determinism error.
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.support_case import SupportCase

HISTORIES = sorted((Path(__file__).resolve().parent / "histories").glob("*.json"))


def test_histories_cover_each_path() -> None:
    names = {path.stem.split("_run")[0] for path in HISTORIES}

    assert {
        "reminded_then_closed",
        "reopened_by_customer",
        "rejected_signals",
        "imported_past_deadlines",
        "work_plan_import_closed",
        "cloned",
        "continued_as_new",
        "release-customer_testing_closed",
        "release-priority_then_reply",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[SupportCase], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
