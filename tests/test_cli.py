"""The casedesk command line and the plain temporal CLI against a real dev server."""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from tests.helpers import assert_eventually, new_case_number, new_task_queue, open_args
from worker import build_worker

BIN = Path(sys.executable).parent


@pytest_asyncio.fixture
async def cli_env(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    """A worker on a fresh task queue, and the environment a CLI call needs to reach it."""
    queue = new_task_queue()
    settings = EmailSettings(outbox_dir=tmp_path / "outbox")
    async with build_worker(dev_env.client, task_queue=queue, email_settings=settings):
        yield {
            **os.environ,
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "CASE_TASK_QUEUE": queue,
        }


async def casedesk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await _run(env, str(BIN / "casedesk"), *args)


async def temporal(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    address = env["TEMPORAL_ADDRESS"]
    return await _run(env, str(BIN / "temporal"), *args, "--address", address)


async def _run(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(command), process.returncode, stdout.decode(), stderr.decode()
    )


async def test_cli_case_lifecycle(cli_env: dict[str, str]) -> None:
    number = new_case_number("CLI")

    opened = await casedesk(cli_env, *open_args(number))
    assert opened.returncode == 0, opened.stderr
    assert f"opened case {number}" in opened.stdout

    again = await casedesk(cli_env, *open_args(number))
    assert again.returncode == 1
    assert "already exists" in again.stderr

    moved = await casedesk(
        cli_env,
        "status",
        number,
        "Pending Customer Input",
        "--role",
        "support",
        "--name",
        "Bob",
    )
    assert moved.returncode == 0, moved.stderr
    assert "Pending Customer Input" in moved.stdout

    refused = await casedesk(
        cli_env, "status", number, "Pending Release", "--role", "customer"
    )
    assert refused.returncode == 1
    assert "transition_not_allowed" in refused.stderr
    assert "'Pending Customer Input'" in refused.stderr

    commented = await casedesk(
        cli_env, "comment", number, "--role", "customer", "--body", "Logs attached"
    )
    assert commented.returncode == 0, commented.stderr
    assert "Update Received" in commented.stdout

    shown = await casedesk(cli_env, "show", number, "--json")
    assert shown.returncode == 0, shown.stderr
    case = json.loads(shown.stdout)
    assert case["status"] == "Update Received"
    assert case["comments"][0]["body"] == "Logs attached"
    assert case["institution"]["time_zone"] == "Europe/Berlin"

    async def listed() -> None:
        result = await casedesk(cli_env, "list", "--status", "Update Received")
        assert number in result.stdout

    await assert_eventually(listed)

    closed = await casedesk(cli_env, "status", number, "Closed", "--role", "customer")
    assert closed.returncode == 0, closed.stderr

    async def comment_on_closed() -> subprocess.CompletedProcess[str]:
        result = await casedesk(
            cli_env, "comment", number, "--role", "customer", "--body", "x"
        )
        assert result.returncode == 3, result.stderr
        return result

    late = await assert_eventually(comment_on_closed)
    assert "clone" in late.stderr

    clone_number = new_case_number("CLI")
    cloned = await casedesk(cli_env, "clone", number, clone_number)
    assert cloned.returncode == 0, cloned.stderr
    clone = json.loads((await casedesk(cli_env, "show", clone_number, "--json")).stdout)
    assert clone["cloned_from"] == number
    assert clone["status"] == "New"


async def test_cli_invalid_input_exits_2(cli_env: dict[str, str]) -> None:
    number = new_case_number("CLI")

    result = await casedesk(
        cli_env, *open_args(number)[:-2], "--contact-email", "not-an-address"
    )

    assert result.returncode == 2
    assert "email" in result.stderr


async def test_cli_unknown_case_exits_3(cli_env: dict[str, str]) -> None:
    result = await casedesk(cli_env, "show", new_case_number("MISSING"))

    assert result.returncode == 3
    assert "not found" in result.stderr


async def test_cli_policy_from_environment(cli_env: dict[str, str]) -> None:
    number = new_case_number("CLI")
    env = {**cli_env, "CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE": "30d"}

    opened = await casedesk(env, *open_args(number))
    assert opened.returncode == 0, opened.stderr
    case = json.loads((await casedesk(cli_env, "show", number, "--json")).stdout)

    assert case["policy"]["pending_customer_input_closure"] == {
        "months": 0,
        "days": 30,
        "seconds": 0,
    }


async def test_cli_rejects_unknown_policy_variable(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "CASE_POLICY_PENDING_CUSTOMER_IMPUT_CLOSURE": "30d"}

    result = await casedesk(env, *open_args(new_case_number("CLI")))

    assert result.returncode == 2
    assert "CASE_POLICY_PENDING_CUSTOMER_IMPUT_CLOSURE" in result.stderr


async def test_temporal_cli_json_only(cli_env: dict[str, str]) -> None:
    """The commands README.md shows for a support system written in another language."""
    number = new_case_number("TCLI")
    workflow_id = f"case-{number}"
    case = {
        "case_number": number,
        "subject": "Login fails",
        "institution": {"id": "inst-1", "name": "Example University"},
        "contact": {"name": "Ann Lee", "email": "ann@example.org"},
    }

    started = await temporal(
        cli_env,
        "workflow",
        "start",
        "--type",
        "SupportCase",
        "--task-queue",
        cli_env["CASE_TASK_QUEUE"],
        "--workflow-id",
        workflow_id,
        "--id-reuse-policy",
        "RejectDuplicate",
        "--input",
        json.dumps(case),
    )
    assert started.returncode == 0, started.stderr

    updated = await temporal(
        cli_env,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id,
        "--name",
        "change_status",
        "--update-id",
        "crm-event-1",
        "--input",
        json.dumps({"status": "Pending Customer Input", "actor": {"role": "support"}}),
        "--output",
        "json",
    )
    assert updated.returncode == 0, updated.stderr

    signalled = await temporal(
        cli_env,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        "add_comment",
        "--input",
        json.dumps({"actor": {"role": "customer", "name": "Ann Lee"}, "body": "Logs"}),
    )
    assert signalled.returncode == 0, signalled.stderr

    async def queried() -> dict[str, object]:
        result = await temporal(
            cli_env,
            "workflow",
            "query",
            "--workflow-id",
            workflow_id,
            "--type",
            "get_case",
            "--output",
            "json",
        )
        assert result.returncode == 0, result.stderr
        state = json.loads(result.stdout)["queryResult"][0]
        assert state["status"] == "Update Received"
        return dict(state)

    state = await assert_eventually(queried)
    assert state["comments"][0]["body"] == "Logs"  # type: ignore[index]


@pytest.mark.parametrize(
    "query",
    [
        'WorkflowType = "SupportCase" AND CaseStatus = "Pending Customer Input"',
        'WorkflowType = "SupportCase" AND ExecutionStatus = "Running" '
        'AND NextDeadlineAt < "2100-01-01T00:00:00Z"',
    ],
)
async def test_cli_list_accepts_readme_queries(
    cli_env: dict[str, str], query: str
) -> None:
    number = new_case_number("CLI")
    assert (await casedesk(cli_env, *open_args(number))).returncode == 0
    moved = await casedesk(
        cli_env, "status", number, "Pending Customer Input", "--role", "support"
    )
    assert moved.returncode == 0, moved.stderr

    async def listed() -> None:
        result = await casedesk(cli_env, "list", "--query", query)
        assert result.returncode == 0, result.stderr
        assert number in result.stdout

    await assert_eventually(listed)


async def test_cli_invalid_case_number_exits_2(cli_env: dict[str, str]) -> None:
    result = await casedesk(cli_env, "show", "000 555 03")

    assert result.returncode == 2
    assert "invalid case number '000 555 03'" in result.stderr


async def test_cli_errors_carry_no_links(cli_env: dict[str, str]) -> None:
    result = await casedesk(
        cli_env, *open_args(new_case_number("CLI"))[:-2], "--contact-email", "x"
    )

    assert result.returncode == 2
    assert "contact.email" in result.stderr
    assert "https://" not in result.stderr


async def test_cli_show_lists_actors_and_comments(cli_env: dict[str, str]) -> None:
    number = new_case_number("CLI")
    assert (await casedesk(cli_env, *open_args(number))).returncode == 0
    prioritised = await casedesk(
        cli_env, "priority", number, "High", "--role", "support", "--name", "Bob"
    )
    assert prioritised.returncode == 0, prioritised.stderr
    assert "priority High" in prioritised.stdout
    commented = await casedesk(
        cli_env,
        "comment",
        number,
        "--role",
        "support",
        "--name",
        "Bob",
        "--body",
        "On it",
    )
    assert commented.returncode == 0, commented.stderr

    shown = await casedesk(cli_env, "show", number)

    assert shown.returncode == 0, shown.stderr
    assert "priority_changed in New by support (Bob)" in shown.stdout
    assert "support (Bob): On it" in shown.stdout
