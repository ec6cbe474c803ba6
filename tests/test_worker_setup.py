"""The worker's start-up check of its search attributes."""

from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesResponse
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from worker import SearchAttributesMissing, ensure_search_attributes
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES


class FakeLockedDownOperatorService:
    """A fake of a cluster's operator service that lists no attributes and may not add any.

    No server that rejects registration can run here: both the dev server
    and the time-skipping test server allow it.
    """

    def __init__(self) -> None:
        self.add_requests: list[Any] = []

    async def list_search_attributes(
        self, request: Any
    ) -> ListSearchAttributesResponse:
        return ListSearchAttributesResponse()

    async def add_search_attributes(self, request: Any) -> None:
        self.add_requests.append(request)
        raise RPCError("permission denied", RPCStatusCode.PERMISSION_DENIED, b"")


async def test_missing_attributes_name_the_commands() -> None:
    operator = FakeLockedDownOperatorService()
    client = SimpleNamespace(namespace="support", operator_service=operator)

    with pytest.raises(SearchAttributesMissing) as caught:
        await ensure_search_attributes(client)  # type: ignore[arg-type]

    message = str(caught.value)
    assert "namespace 'support'" in message
    for key in ALL_SEARCH_ATTRIBUTES:
        assert f"--name {key.name}" in message
    assert "temporal operator search-attribute create --namespace support" in message
    assert "--type Datetime" in message
    assert len(operator.add_requests) == 1


async def test_registered_attributes_are_left_alone(
    dev_env: WorkflowEnvironment,
) -> None:
    created = await ensure_search_attributes(dev_env.client)

    assert created == []


async def test_time_skipping_server_registration_repeats(
    ts_env: WorkflowEnvironment,
) -> None:
    """The test server cannot list attributes, so a second worker adds them again."""
    assert await ensure_search_attributes(ts_env.client) == []
