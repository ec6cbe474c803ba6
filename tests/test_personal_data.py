"""Personal data in stored histories: encrypted with the codec on, never in ids or search attributes.

A case runs on a dev server that keeps its database in a file, with a real
worker. Its history is then read three ways (``fetch_history``, the raw
GetWorkflowExecutionHistory response, and the database file itself) and
searched for the contact's name and address, the subject, the description
and the comment text. The same run without encryption is the control: it must
find that text, or the search proves nothing.
"""

import asyncio
import base64
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Actor, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from starter.config import data_converter
from tests.conftest import BIN, DEV_SERVER_ARGS
from tests.helpers import case_input, new_case_number, new_task_queue
from tests.test_cli import casedesk
from tests.test_codec_server import TEST_KEYS, TEST_TOKEN, running_codec_server
from tests.test_end_to_end import start_worker_process
from worker import build_worker
from workflows.messages import AddCommentInput, ChangeStatusInput
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES


@dataclass
class Server:
    env: WorkflowEnvironment
    database: Path

    @property
    def address(self) -> str:
        return self.env.client.service_client.config.target_host

    def client(self, *, encrypted: bool) -> Client:
        converter = (
            data_converter({"CASE_ENCRYPTION_KEYS": TEST_KEYS})
            if encrypted
            else pydantic_data_converter
        )
        return Client(
            self.env.client.service_client,
            namespace=self.env.client.namespace,
            data_converter=converter,
        )

    def database_bytes(self) -> bytes:
        """Return the SQLite database with its write-ahead log, as stored on disk."""
        files = sorted(self.database.parent.glob(self.database.name + "*"))
        return b"".join(path.read_bytes() for path in files)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    database = tmp_path_factory.mktemp("personal-data") / "temporal.db"
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_database_filename=str(database),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    async with env:
        yield Server(env, database)


@dataclass
class PersonalData:
    """Text that identifies a customer, made unique so runs cannot see each other's."""

    contact_name: str
    contact_email: str
    subject: str
    description: str
    comment: str
    note: str
    support_name: str

    @classmethod
    def unique(cls) -> "PersonalData":
        tag = uuid.uuid4().hex[:10]
        return cls(
            contact_name=f"Zelda Quintero {tag}",
            contact_email=f"zelda.{tag}@personal.example",
            subject=f"Invoice mismatch reported by Zelda {tag}",
            description=f"Lives at 12 Elm Road {tag}",
            comment=f"Her phone number is 555-0199 {tag}",
            note=f"Called Zelda at home {tag}",
            support_name=f"Yusuf Okonkwo {tag}",
        )

    def values(self) -> dict[str, str]:
        return dict(vars(self))


async def run_case(
    client: Client, outbox: Path, personal: PersonalData, *, memo: bool = False
) -> str:
    """Open a case, comment, close it and let the closure email go out; return its workflow id."""
    case_number = new_case_number("PD")
    task_queue = new_task_queue()
    request = CaseInput.model_validate(
        case_input(
            case_number,
            subject=personal.subject,
            description=personal.description,
            contact={"name": personal.contact_name, "email": personal.contact_email},
        )
    )
    support = Actor(role=Role.SUPPORT, name=personal.support_name)
    async with build_worker(
        client, task_queue=task_queue, email_settings=EmailSettings(outbox_dir=outbox)
    ):
        opened = await cases.open_case(client, request, task_queue=task_queue)
        await cases.add_comment(
            client,
            case_number,
            AddCommentInput(actor=support, body=personal.comment),
        )
        # An unknown signal reaches the workflow as a raw payload, which the
        # worker decrypts before the workflow reads the claimed sender.
        await opened.handle.signal(
            "escalate",
            {"actor": {"role": "support", "name": personal.support_name}},
        )
        await cases.change_status(
            client,
            case_number,
            ChangeStatusInput(status=Status.CLOSED, actor=support, note=personal.note),
        )
        final = await opened.handle.result()
    assert final.is_closed
    rejected = [entry for entry in final.history if entry.rejected]
    assert [entry.actor_name for entry in rejected] == [personal.support_name]
    if memo:
        # The product sets no memo today; this start shows that one would be
        # encrypted too. No worker polls this queue, so the run stays idle.
        handle = await client.start_workflow(
            "SupportCase",
            {"memo-only": True},
            id=f"memo-{case_number}",
            task_queue=new_task_queue(),
            memo={"contact": personal.contact_email},
            static_details=f"Contact {personal.contact_name}",
        )
        await handle.terminate("memo check finished")
    return opened.handle.id


async def stored_history_bytes(server: Server, workflow_id: str) -> dict[str, bytes]:
    """Return the case's history as the SDK, the gRPC API and the database contain it."""
    client = server.env.client
    fetched = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
        )
    )
    return {
        "fetch_history events": b"".join(
            event.SerializeToString() for event in fetched.events
        ),
        "fetch_history JSON": fetched.to_json().encode(),
        "GetWorkflowExecutionHistory": raw.SerializeToString(),
        "database file": server.database_bytes(),
    }


async def visible_identifiers(server: Server, workflow_id: str) -> bytes:
    """Return the workflow id and raw search attributes that visibility stores unencrypted."""
    client = server.env.client
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
        )
    )
    info = described.workflow_execution_info
    assert info.search_attributes.indexed_fields, "expected search attributes"
    return (
        info.execution.workflow_id.encode() + info.search_attributes.SerializeToString()
    )


def found(values: dict[str, str], stored: bytes) -> list[str]:
    return [name for name, text in values.items() if text.encode() in stored]


async def test_encrypted_history_hides_personal_data(
    server: Server, outbox: Path
) -> None:
    personal = PersonalData.unique()
    workflow_id = await run_case(
        server.client(encrypted=True), outbox, personal, memo=True
    )

    stored = await stored_history_bytes(server, workflow_id)
    memo_stored = await stored_history_bytes(server, f"memo-{workflow_id[5:]}")

    for source, data in stored.items():
        assert found(personal.values(), data) == [], f"plain text in {source}"
    for source, data in memo_stored.items():
        assert found(personal.values(), data) == [], f"memo plain text in {source}"
    assert b"binary/encrypted" in stored["GetWorkflowExecutionHistory"]


async def test_unencrypted_history_shows_personal_data(
    server: Server, outbox: Path
) -> None:
    """The control: without the codec the same search finds every value."""
    personal = PersonalData.unique()
    workflow_id = await run_case(server.client(encrypted=False), outbox, personal)

    stored = await stored_history_bytes(server, workflow_id)

    expected = sorted(personal.values())
    assert sorted(found(personal.values(), stored["fetch_history events"])) == expected
    assert sorted(found(personal.values(), stored["database file"])) == expected


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
async def test_ids_and_search_attributes_anonymous(
    server: Server, outbox: Path, encrypted: bool
) -> None:
    personal = PersonalData.unique()
    workflow_id = await run_case(server.client(encrypted=encrypted), outbox, personal)

    visible = await visible_identifiers(server, workflow_id)

    assert found(personal.values(), visible) == []


async def test_cli_decodes_through_codec_server(server: Server, outbox: Path) -> None:
    personal = PersonalData.unique()
    workflow_id = await run_case(server.client(encrypted=True), outbox, personal)
    show = [
        str(BIN / "temporal"),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--address",
        server.address,
        "--output",
        "json",
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TEMPORAL_")
    }

    with running_codec_server() as codec_server:
        decoded = await asyncio.to_thread(
            subprocess.run,
            [
                *show,
                "--codec-endpoint",
                codec_server.url,
                "--codec-auth",
                f"Bearer {TEST_TOKEN}",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        rejected = await asyncio.to_thread(
            subprocess.run,
            [
                *show,
                "--codec-endpoint",
                codec_server.url,
                "--codec-auth",
                "Bearer wrong-token",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    assert decoded.returncode == 0, decoded.stderr
    decoded_data = payload_data(json.loads(decoded.stdout))
    rejected_output = (
        payload_data(json.loads(rejected.stdout)) if rejected.stdout else b""
    )
    assert personal.subject.encode() in decoded_data
    assert personal.comment.encode() in decoded_data
    assert personal.contact_email.encode() in decoded_data
    assert found(personal.values(), rejected_output) == []


def payload_data(value: Any) -> bytes:
    """Return every payload's ``data`` field in CLI JSON output, base64-decoded and joined."""
    if isinstance(value, dict):
        parts = [payload_data(item) for item in value.values()]
        data = value.get("data")
        if isinstance(data, str) and "metadata" in value:
            parts.append(base64.b64decode(data))
        return b"".join(parts)
    if isinstance(value, list):
        return b"".join(payload_data(item) for item in value)
    return b""


async def test_worker_and_cli_processes_encrypt(
    server: Server, tmp_path: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """worker.py and the casedesk CLI read the keys from the environment."""
    personal = PersonalData.unique()
    case_number = new_case_number("PD")
    monkeypatch.setenv("CASE_ENCRYPTION_KEYS", TEST_KEYS)
    monkeypatch.delenv("CASE_ENCRYPTION_KEYS_FILE", raising=False)
    worker = await start_worker_process(server.address, tmp_path / "worker", outbox)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": server.address,
        "CASE_TASK_QUEUE": worker.task_queue,
    }
    try:
        opened = await casedesk(
            env,
            "open",
            "--case-number",
            case_number,
            "--subject",
            personal.subject,
            "--description",
            personal.description,
            "--institution-id",
            "inst-1",
            "--institution-name",
            "Example University",
            "--contact-name",
            personal.contact_name,
            "--contact-email",
            personal.contact_email,
        )
        commented = await casedesk(
            env,
            "comment",
            case_number,
            "--body",
            personal.comment,
            "--role",
            "support",
            "--name",
            personal.support_name,
        )
        rejected = await casedesk(
            env, "status", case_number, "Pending Work Plan", "--role", "support"
        )
        shown = await casedesk(env, "show", case_number, "--json")
        without_keys = await casedesk(
            {
                key: value
                for key, value in env.items()
                if not key.startswith("CASE_ENCRYPTION_")
            },
            "show",
            case_number,
        )
        assert await worker.stop() == 0
    finally:
        await worker.kill()

    assert opened.returncode == 0, opened.stderr
    assert commented.returncode == 0, commented.stderr
    assert rejected.returncode == 1, rejected.stderr
    assert "Pending Work Plan" in rejected.stderr
    assert "Encoded failure" not in rejected.stderr
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["subject"] == personal.subject
    assert without_keys.returncode == 2
    assert "no encryption keys are configured" in without_keys.stderr
    assert "Traceback" not in without_keys.stderr
    assert personal.subject not in without_keys.stdout
    assert any('"encryption": true' in line for line in worker.stderr_lines())
    stored = await stored_history_bytes(server, f"case-{case_number}")
    for source, data in stored.items():
        assert found(personal.values(), data) == [], f"plain text in {source}"
