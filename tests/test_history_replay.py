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

FOLDER = Path(__file__).resolve().parent / "histories"
# The folder itself contains the histories of the first release and of the
# patches recorded since. v2/ contains the full set recorded by the current
# code, with every patch marker. Encrypted histories have a test of their own.
HISTORIES = sorted([*FOLDER.glob("*.json"), *FOLDER.glob("v2/*.json")])
PATHS = {
    "reminded_then_closed",
    "reopened_by_customer",
    "rejected_signals",
    "imported_past_deadlines",
    "work_plan_import_closed",
    "cloned",
    "continued_as_new",
}


def test_histories_cover_each_path() -> None:
    names = {path.stem.split("_run")[0] for path in FOLDER.glob("*.json")}
    current = {path.stem.split("_run")[0] for path in FOLDER.glob("v2/*.json")}

    assert current >= PATHS, (
        "record the current set: python -m tests.histories.record --into v2"
    )
    assert {
        *PATHS,
        "release-customer_testing_closed",
        "release-priority_then_reply",
    } <= names


@pytest.mark.parametrize(
    "path", HISTORIES, ids=[str(path.relative_to(FOLDER)) for path in HISTORIES]
)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[SupportCase], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)

    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
