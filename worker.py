"""The casedesk worker: runs SupportCase workflows and their email activities.

    python worker.py

Connection settings come from Temporal's environment configuration
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API-key variables, or a
profile). Everything else comes from the CASE_* and SMTP_* variables in
README.md.
"""

import asyncio
import os
import signal
import sys
from collections.abc import Sequence

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import (
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

from activities.email import EmailActivities, EmailSettings
from starter.config import client_connect_config, task_queue
from starter.logs import configure_logging, exit_without_teardown, temporal_runtime
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES
from workflows.support_case import SupportCase

log = structlog.get_logger("casedesk.worker")


class SearchAttributesMissing(RuntimeError):
    pass


def build_worker(
    client: Client,
    *,
    task_queue: str,
    email_settings: EmailSettings,
    **worker_options: object,
) -> Worker:
    """Return a worker for SupportCase on ``task_queue``; tests and the replay use it too."""
    emails = EmailActivities(email_settings)
    options: dict[str, object] = {"workflow_runner": sandboxed_runner()}
    options.update(worker_options)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[SupportCase],
        activities=[emails.send_case_email],
        **options,  # type: ignore[arg-type]
    )


def sandboxed_runner() -> SandboxedWorkflowRunner:
    """Return the default sandbox, with the workflow's own package passed through.

    The sandbox imports every module that is not passed through again for
    each new workflow instance, that is for each case started and each case
    evicted from the cache. For ``workflows`` that meant compiling
    support_case.py from source every time when no bytecode cache is written
    (PYTHONDONTWRITEBYTECODE), about a quarter of the replay's CPU time in a
    py-spy profile. The package keeps no mutable module state, and the
    sandbox still rejects non-deterministic calls made from workflow code.
    pydantic imports email_validator and idna lazily while it validates an
    email address, so they pass through too instead of being imported again
    inside each sandbox.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            "workflows", "email_validator", "idna"
        )
    )


async def ensure_search_attributes(
    client: Client, keys: Sequence[SearchAttributeKey] = ALL_SEARCH_ATTRIBUTES
) -> list[str]:
    """Register the custom search attributes that are missing and return their names.

    The dev server and the time-skipping test server both allow this. A
    cluster that does not raises ``SearchAttributesMissing`` with the command
    an operator runs instead.
    """
    namespace = client.namespace
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as err:
        # The time-skipping test server does not implement the listing.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in keys
        if key.name not in existing
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            return []
        commands = "\n".join(
            f"  temporal operator search-attribute create --namespace {namespace} "
            f"--name {key.name} --type {search_attribute_type_name(key)}"
            for key in keys
            if key.name in missing
        )
        raise SearchAttributesMissing(
            f"search attributes {sorted(missing)} are not registered in namespace "
            f"{namespace!r} and this worker may not register them ({err.message}). "
            f"Ask an operator to run:\n{commands}"
        ) from err
    return sorted(missing)


def search_attribute_type_name(key: SearchAttributeKey) -> str:
    names: dict[int, str] = {
        IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
        IndexedValueType.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
        IndexedValueType.INDEXED_VALUE_TYPE_TEXT: "Text",
        IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
        IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
        IndexedValueType.INDEXED_VALUE_TYPE_BOOL: "Bool",
    }
    return names[int(key.indexed_value_type)]


async def main() -> int:
    configure_logging(os.environ.get("CASE_LOG_LEVEL", "INFO"))
    config = client_connect_config()
    queue = task_queue()
    client = await Client.connect(**config, runtime=temporal_runtime())
    try:
        created = await ensure_search_attributes(client)
    except SearchAttributesMissing as err:
        log.error("worker.search_attributes_missing", error=str(err))
        print(err, file=sys.stderr)
        return 2
    if created:
        log.info("worker.search_attributes_registered", names=created)

    settings = EmailSettings.from_env()
    worker = build_worker(client, task_queue=queue, email_settings=settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    log.info(
        "worker.started",
        address=config["target_host"],
        namespace=client.namespace,
        task_queue=queue,
        email="smtp" if settings.uses_smtp else f"maildir {settings.outbox_dir}",
    )
    async with worker:
        await stop.wait()
        log.info("worker.stopping")
    log.info("worker.stopped")
    return 0


if __name__ == "__main__":
    exit_without_teardown(asyncio.run(main()))
