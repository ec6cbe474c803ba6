"""Worker Versioning: settings from the environment, and an upgrade on the dev server.

A case starts on build A. Build B becomes the deployment's current version
and A is shut down, as in a rollout. The case's next workflow task runs on B
because the worker defaults workflows to AUTO_UPGRADE.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.deployment.v1 import WorkerDeploymentInfo as DeploymentInfo
from temporalio.api.enums.v1 import EventType
from temporalio.api.enums.v1 import VersioningBehavior as VersioningBehaviorProto
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    DescribeWorkflowExecutionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.email import EmailSettings
from domain.case import Actor, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from starter.versioning import versioned_deployment, worker_deployment_config
from tests.conftest import BIN, DEV_SERVER_ARGS
from tests.helpers import assert_eventually, case_input, new_case_number
from worker import build_worker
from workflows.messages import AddCommentInput, ChangeStatusInput
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
# Deployment registration reaches the server asynchronously. This window
# bounds a stuck test; it is not a speed requirement.
REGISTRATION_WINDOW = timedelta(seconds=60)


def test_versioning_off_without_settings() -> None:
    assert worker_deployment_config({}) is None


def test_versioning_settings_build_config() -> None:
    config = worker_deployment_config(
        {"CASE_DEPLOYMENT_NAME": "casedesk", "CASE_BUILD_ID": "2026.12.1"}
    )

    assert config is not None
    assert config.use_worker_versioning
    assert config.version.deployment_name == "casedesk"
    assert config.version.build_id == "2026.12.1"
    assert config.default_versioning_behavior == VersioningBehavior.AUTO_UPGRADE


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"CASE_DEPLOYMENT_NAME": "casedesk"}, "CASE_BUILD_ID"),
        ({"CASE_BUILD_ID": "2026.12.1"}, "CASE_DEPLOYMENT_NAME"),
        ({"CASE_DEPLOYMENT_NAME": " ", "CASE_BUILD_ID": "b"}, "CASE_DEPLOYMENT_NAME"),
    ],
)
def test_half_configured_versioning_rejected(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(ValueError, match=f"{missing} is not set"):
        worker_deployment_config(environ)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def versioning_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server for this module alone, so deployments stay out of the shared one."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    async with env:
        yield env


async def make_current(client: Client, deployment: str, build_id: str) -> None:
    """Make ``build_id`` the deployment's current version once it has polled.

    The server may take a moment to propagate the routing to the task
    queues, so a task dispatched right after this may still reach the
    previous build if that build still polls.
    """

    async def describe() -> DeploymentInfo:
        try:
            described = await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=deployment
                )
            )
        except RPCError as err:
            # The deployment exists only once one of its workers has polled.
            assert err.status != RPCStatusCode.NOT_FOUND, err.message
            raise
        return described.worker_deployment_info

    async def registered() -> None:
        info = await describe()
        build_ids = {
            summary.deployment_version.build_id for summary in info.version_summaries
        }
        assert build_id in build_ids

    async def propagated() -> None:
        info = await describe()
        current = info.routing_config.current_deployment_version.build_id
        assert current == build_id

    async def set_current() -> None:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=deployment,
                    build_id=build_id,
                )
            )
        except RPCError as err:
            # Rejected until the new build has polled every task queue type
            # (workflow and activity) that the current build polls.
            assert err.status != RPCStatusCode.FAILED_PRECONDITION, err.message
            raise

    await assert_eventually(registered, within=REGISTRATION_WINDOW)
    await assert_eventually(set_current, within=REGISTRATION_WINDOW)
    await assert_eventually(propagated, within=REGISTRATION_WINDOW)


async def running_build_id(client: Client, workflow_id: str) -> tuple[str, int]:
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
        )
    )
    versioning = described.workflow_execution_info.versioning_info
    return versioning.deployment_version.build_id, versioning.behavior


async def completed_task_build_ids(client: Client, workflow_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return [
        event.workflow_task_completed_event_attributes.deployment_version.build_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]


async def test_case_moves_to_new_build(
    versioning_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = versioning_env.client
    deployment = f"casedesk-{uuid.uuid4().hex[:8]}"
    task_queue = f"versioned-{uuid.uuid4().hex[:8]}"
    case_number = new_case_number("WV")
    settings = EmailSettings(outbox_dir=tmp_path / "outbox")

    build_a = build_worker(
        client,
        task_queue=task_queue,
        email_settings=settings,
        deployment_config=versioned_deployment(deployment, "build-a"),
    )
    build_a_running = asyncio.create_task(build_a.run())
    try:
        await make_current(client, deployment, "build-a")
        opened = await cases.open_case(
            client,
            CaseInput.model_validate(case_input(case_number)),
            task_queue=task_queue,
        )
        await cases.add_comment(
            client, case_number, AddCommentInput(actor=SUPPORT, body="on build A")
        )
        started_on = await running_build_id(client, opened.handle.id)

        async with build_worker(
            client,
            task_queue=task_queue,
            email_settings=settings,
            deployment_config=versioned_deployment(deployment, "build-b"),
        ):
            await make_current(client, deployment, "build-b")
            # The rollout retires build A, as a release would.
            await build_a.shutdown()
            await cases.add_comment(
                client, case_number, AddCommentInput(actor=SUPPORT, body="on build B")
            )
            moved_to = await running_build_id(client, opened.handle.id)
            await cases.change_status(
                client,
                case_number,
                ChangeStatusInput(status=Status.CLOSED, actor=SUPPORT),
            )
            final = await opened.handle.result()
    finally:
        if not build_a_running.done():
            await build_a.shutdown()
        await build_a_running

    auto_upgrade = VersioningBehaviorProto.VERSIONING_BEHAVIOR_AUTO_UPGRADE
    assert started_on == ("build-a", auto_upgrade)
    assert moved_to == ("build-b", auto_upgrade)
    task_builds = await completed_task_build_ids(client, opened.handle.id)
    assert task_builds[0] == "build-a"
    assert task_builds[-1] == "build-b"
    assert [comment.body for comment in final.comments] == ["on build A", "on build B"]
    assert final.is_closed
