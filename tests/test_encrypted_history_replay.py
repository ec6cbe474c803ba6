"""Histories recorded with the payload codec replay with the configured keys.

They contain only ciphertext, so the replay must decrypt them with the keys of
the recording (``tests/histories/encrypted/test-only.keys``), including after
a new key has become the current one.
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from starter.codec import new_key_entry
from starter.config import data_converter
from tests.histories.record import ENCRYPTED, TEST_KEYS_FILE
from workflows.support_case import SupportCase

HISTORIES = sorted(ENCRYPTED.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_encrypted_histories_exist() -> None:
    assert [path.stem for path in HISTORIES] == [
        "release-encrypted_reminded_then_closed"
    ]


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replays_with_recorded_keys(path: Path) -> None:
    converter = data_converter({"CASE_ENCRYPTION_KEYS_FILE": str(TEST_KEYS_FILE)})
    replayer = Replayer(workflows=[SupportCase], data_converter=converter)

    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)

    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replays_after_key_rotation(path: Path, tmp_path: Path) -> None:
    rotated = tmp_path / "keys"
    rotated.write_text(TEST_KEYS_FILE.read_text() + new_key_entry("next") + "\n")
    converter = data_converter({"CASE_ENCRYPTION_KEYS_FILE": str(rotated)})
    replayer = Replayer(workflows=[SupportCase], data_converter=converter)

    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)

    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replay_fails_without_keys(path: Path) -> None:
    replayer = Replayer(workflows=[SupportCase], data_converter=pydantic_data_converter)

    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)

    assert result.replay_failure is not None
    assert "binary/encrypted" in str(result.replay_failure)
