"""What operators use on a dev server: search attributes, `casedesk list/stats/setup`.

Visibility is eventually consistent, so list and count checks are polled with
``assert_eventually``. Every test uses its own institution id, so counts are
not disturbed by the cases of other tests on the shared dev server.
"""

import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Actor, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from tests.conftest import BIN, DEV_SERVER_ARGS
from tests.helpers import assert_eventually, case_input, new_case_number, new_task_queue
from tests.test_cli import casedesk
from worker import build_worker, register_search_attributes
from workflows.messages import ChangeStatusInput
from workflows.search_attributes import (
    ALL_SEARCH_ATTRIBUTES,
    CASE_CLOSED_REASON,
    CASE_INSTITUTION,
    CASE_PRODUCT,
    CASE_STATUS,
    CASE_STATUS_SINCE,
    CASE_WAITING_ON,
    NEXT_DEADLINE_AT,
    NEXT_DEADLINE_KIND,
)

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
# A reminder two hours after Pending Customer Input falls within the next
# day. The other rules fall after the next week.
SHORT_REMINDER_POLICY = {
    "pending_customer_input_reminder": {"seconds": 7200},
    "pending_customer_input_closure": {"days": 10},
    "awaiting_customer_confirmation_closure": {"days": 14},
}


@pytest_asyncio.fixture
async def operator_env(
    dev_env: WorkflowEnvironment, tmp_path: Any
) -> AsyncIterator[dict[str, Any]]:
    """A worker on a fresh task queue, and the CLI environment that reaches it."""
    queue = new_task_queue()
    settings = EmailSettings(outbox_dir=tmp_path / "outbox")
    async with build_worker(dev_env.client, task_queue=queue, email_settings=settings):
        yield {
            "client": dev_env.client,
            "queue": queue,
            "cli": {
                **os.environ,
                "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
                "CASE_TASK_QUEUE": queue,
            },
        }


def new_institution() -> str:
    return f"inst-{uuid.uuid4().hex[:10]}"


async def open_case(
    env: dict[str, Any], institution: str, **overrides: Any
) -> tuple[str, WorkflowHandle[Any, Any]]:
    number = new_case_number("OP")
    data = case_input(
        number,
        institution={"id": institution, "name": "Example University"},
        **overrides,
    )
    request = CaseInput.model_validate(data)
    opened = await cases.open_case(env["client"], request, task_queue=env["queue"])
    return number, opened.handle


async def set_status(env: dict[str, Any], number: str, status: Status) -> None:
    await cases.change_status(
        env["client"], number, ChangeStatusInput(status=status, actor=SUPPORT)
    )


# ---- search attributes


async def test_operator_attributes_follow_case(operator_env: dict[str, Any]) -> None:
    institution = new_institution()
    number, handle = await open_case(operator_env, institution, product="Discovery")

    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_WAITING_ON) == "support"
    assert attributes.get(CASE_INSTITUTION) == institution
    assert attributes.get(CASE_PRODUCT) == "Discovery"
    assert attributes.get(NEXT_DEADLINE_KIND) is None
    assert attributes.get(CASE_CLOSED_REASON) is None

    await set_status(operator_env, number, Status.PENDING_CUSTOMER_INPUT)
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_WAITING_ON) == "customer"
    assert attributes.get(NEXT_DEADLINE_KIND) == "reminder"
    assert attributes.get(NEXT_DEADLINE_AT) is not None

    await set_status(operator_env, number, Status.PENDING_DEVELOPMENT)
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_WAITING_ON) == "development"
    assert attributes.get(NEXT_DEADLINE_KIND) is None
    case = await cases.get_case(operator_env["client"], number)
    assert attributes.get(CASE_STATUS_SINCE) == case.status_since

    await set_status(operator_env, number, Status.CLOSED)
    await handle.result()
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(CASE_STATUS) == "Closed"
    assert attributes.get(CASE_WAITING_ON) == "none"
    assert attributes.get(CASE_CLOSED_REASON) == "closed_by_support"


async def test_case_without_product_has_none(operator_env: dict[str, Any]) -> None:
    _, handle = await open_case(operator_env, new_institution(), product="")

    attributes = (await handle.describe()).typed_search_attributes

    assert attributes.get(CASE_PRODUCT) is None


async def test_static_details_name_institution(operator_env: dict[str, Any]) -> None:
    institution = new_institution()
    _, handle = await open_case(operator_env, institution)

    details = await (await handle.describe()).static_details()

    assert details is not None
    assert institution in details
    assert "Ann Lee" not in details


# ---- casedesk list


async def test_cli_list_filters_like_ui(operator_env: dict[str, Any]) -> None:
    institution = new_institution()
    waiting, _ = await open_case(operator_env, institution, product="Link Resolver")
    await set_status(operator_env, waiting, Status.PENDING_CUSTOMER_INPUT)
    developing, _ = await open_case(operator_env, institution, product="Discovery")
    await set_status(operator_env, developing, Status.PENDING_DEVELOPMENT)
    cli = operator_env["cli"]

    async def listed(*filters: str) -> str:
        result = await casedesk(cli, "list", "--institution", institution, *filters)
        assert result.returncode == 0, result.stderr
        return result.stdout

    async def both_listed() -> None:
        output = await listed()
        assert waiting in output
        assert developing in output

    await assert_eventually(both_listed)

    output = await listed("--waiting-on", "customer")
    assert waiting in output
    assert developing not in output

    output = await listed("--waiting-on", "development", "--product", "Discovery")
    assert developing in output
    assert waiting not in output

    # The reminder is due in 7 days, so it is before 8 days from now.
    output = await listed("--deadline-before", "8d")
    assert waiting in output
    assert "(reminder)" in output
    assert developing not in output

    output = await listed("--deadline-before", "1d")
    assert waiting not in output

    output = await listed("--query", 'CaseStatus = "Pending Development"')
    assert developing in output
    assert waiting not in output

    output = await listed("--status", "Pending Customer Input", "--priority", "Normal")
    assert waiting in output
    assert developing not in output


async def test_query_waiting_on_development_long(
    operator_env: dict[str, Any],
) -> None:
    institution = new_institution()
    now = datetime.now(UTC)
    old_since = (now - timedelta(days=40)).isoformat()
    stale, _ = await open_case(
        operator_env, institution, status="Pending Development", status_since=old_since
    )
    fresh, _ = await open_case(operator_env, institution)
    await set_status(operator_env, fresh, Status.PENDING_DEVELOPMENT)
    month_ago = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = f'CaseWaitingOn = "development" AND CaseStatusSince < "{month_ago}"'

    async def listed() -> None:
        result = await casedesk(
            operator_env["cli"], "list", "--institution", institution, "--query", query
        )
        assert result.returncode == 0, result.stderr
        assert stale in result.stdout
        assert fresh not in result.stdout

    await assert_eventually(listed)


async def test_cli_list_rejects_naive_time(operator_env: dict[str, Any]) -> None:
    result = await casedesk(
        operator_env["cli"], "list", "--deadline-before", "2026-12-24T00:00:00"
    )

    assert result.returncode == 2
    assert "add a UTC offset" in result.stderr


# ---- casedesk stats


def stat(output: str, label: str) -> int:
    match = re.search(rf"^\s*{re.escape(label)}\s+(\d+)$", output, re.M)
    assert match is not None, f"no line {label!r} in:\n{output}"
    return int(match.group(1))


async def test_cli_stats_counts_statuses_and_deadlines(
    operator_env: dict[str, Any],
) -> None:
    institution = new_institution()
    policy = SHORT_REMINDER_POLICY
    await open_case(operator_env, institution, policy=policy)
    soon, _ = await open_case(operator_env, institution, policy=policy)
    await set_status(operator_env, soon, Status.PENDING_CUSTOMER_INPUT)
    later, _ = await open_case(operator_env, institution, policy=policy)
    await set_status(operator_env, later, Status.IN_PROGRESS)
    await set_status(operator_env, later, Status.AWAITING_CUSTOMER_CONFIRMATION)
    closed, closed_handle = await open_case(operator_env, institution, policy=policy)
    await set_status(operator_env, closed, Status.CLOSED)
    await closed_handle.result()

    async def counted() -> str:
        result = await casedesk(
            operator_env["cli"], "stats", "--institution", institution
        )
        assert result.returncode == 0, result.stderr
        assert stat(result.stdout, "Open cases:") == 3
        return result.stdout

    output = await assert_eventually(counted)

    assert stat(output, "New") == 1
    assert stat(output, "Pending Customer Input") == 1
    assert stat(output, "Awaiting Customer Confirmation") == 1
    assert stat(output, "In Progress") == 0
    assert stat(output, "overdue") == 0
    assert stat(output, "due in the next 24 hours") == 1
    assert stat(output, "due in the next 7 days") == 1


# ---- casedesk setup


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bare_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server with none of casedesk's search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    async with env:
        yield env


async def test_setup_creates_then_finds(bare_env: WorkflowEnvironment) -> None:
    cli = {
        **os.environ,
        "TEMPORAL_ADDRESS": bare_env.client.service_client.config.target_host,
    }
    names = sorted(key.name for key in ALL_SEARCH_ATTRIBUTES)

    first = await casedesk(cli, "setup")
    assert first.returncode == 0, first.stderr
    second = await casedesk(cli, "setup")
    assert second.returncode == 0, second.stderr

    for name in names:
        assert re.search(rf"created\s+{name}$", first.stdout, re.M), first.stdout
        assert re.search(rf"already existed\s+{name}$", second.stdout, re.M)
    assert "created" not in second.stdout
    assert len(names) == 9


async def test_setup_registration_is_idempotent(
    bare_env: WorkflowEnvironment,
) -> None:
    client: Client = bare_env.client
    await register_search_attributes(client)

    registration = await register_search_attributes(client)

    assert registration.created == []
    assert sorted(registration.existing) == sorted(
        key.name for key in ALL_SEARCH_ATTRIBUTES
    )


# ---- the README's queries


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_queries() -> list[str]:
    """Return every visibility query in README's table of common questions."""
    text = README.read_text()
    section = text.split("### Visibility queries for the common questions")[1]
    table = section.split("###")[0]
    return re.findall(r"^\| [^|]+ \| `(WorkflowType = .+)` \|$", table, re.M)


def test_readme_lists_operator_queries() -> None:
    assert len(readme_queries()) >= 7


async def test_readme_queries_run(operator_env: dict[str, Any]) -> None:
    for query in readme_queries():
        result = await casedesk(operator_env["cli"], "list", "--all", "--query", query)

        assert result.returncode == 0, f"{query}: {result.stderr}"
