"""The casedesk worker: runs SupportCase workflows and their email activities.

Two Temporal workers run in this process. One polls the case task queue
(CASE_TASK_QUEUE) for workflows. The other polls the notification task queue,
the case queue's name followed by "-notifications", for the email activities,
and the server hands out at most CASE_MAIL_MAX_PER_SECOND of those per second
across all workers on that queue.

    python worker.py

Connection settings come from Temporal's environment configuration
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API-key variables, or a
profile). Everything else comes from the CASE_* and SMTP_* variables in
README.md. The worker serves Prometheus metrics on CASE_METRICS_ADDRESS
(127.0.0.1:9464 unless set).
"""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

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

from activities.email import EmailActivities, EmailSettings, notification_task_queue
from starter.codec import EncryptionCodec, KeyConfigError
from starter.config import client_connect_config, metrics_address, task_queue
from starter.logs import configure_logging, exit_without_teardown, temporal_runtime
from starter.versioning import worker_deployment_config
from workflows.metrics import CaseTelemetryInterceptor
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES
from workflows.support_case import SupportCase

log = structlog.get_logger("casedesk.worker")


class SearchAttributesMissing(RuntimeError):
    pass


# Notifications handed to the mail server per second, across all workers, by default.
DEFAULT_MAIL_MAX_PER_SECOND = 5.0


class CaseWorkers:
    """The case worker and the rate-limited notification worker, run together.

    ``async with`` starts both and shuts both down; ``run()`` runs both until
    one of them stops.
    """

    def __init__(self, case_worker: Worker, notification_worker: Worker) -> None:
        self.case_worker = case_worker
        self.notification_worker = notification_worker

    async def __aenter__(self) -> "CaseWorkers":
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.case_worker)
            await stack.enter_async_context(self.notification_worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, traceback)

    async def run(self) -> None:
        await asyncio.gather(self.case_worker.run(), self.notification_worker.run())

    async def shutdown(self) -> None:
        """Shut down both workers, as ``Worker.shutdown`` does for one."""
        await asyncio.gather(
            self.case_worker.shutdown(), self.notification_worker.shutdown()
        )


def build_worker(
    client: Client,
    *,
    task_queue: str,
    email_settings: EmailSettings,
    mail_max_per_second: float = DEFAULT_MAIL_MAX_PER_SECOND,
    **worker_options: object,
) -> CaseWorkers:
    """Return the workers for SupportCase on ``task_queue``; tests and the replay use it too.

    The case worker also runs the email activity, for runs that started
    before notifications moved to their own task queue and still schedule
    it on the case queue. A ``deployment_config`` applies to both workers, so
    both task queues belong to the same Worker Deployment Version.
    """
    emails = EmailActivities(email_settings)
    options: dict[str, object] = {"workflow_runner": sandboxed_runner()}
    options.update(worker_options)
    case_worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[SupportCase],
        activities=[emails.send_case_email],
        interceptors=[CaseTelemetryInterceptor()],
        **options,  # type: ignore[arg-type]
    )
    notification_worker = Worker(
        client,
        task_queue=notification_task_queue(task_queue),
        activities=[emails.send_case_email],
        interceptors=[CaseTelemetryInterceptor()],
        max_task_queue_activities_per_second=mail_max_per_second,
        **{
            name: value
            for name, value in worker_options.items()
            if name == "deployment_config"
        },  # type: ignore[arg-type]
    )
    return CaseWorkers(case_worker, notification_worker)


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


def mail_max_per_second(environ: dict[str, str] | None = None) -> float:
    """Read CASE_MAIL_MAX_PER_SECOND, the notifications sent per second at most."""
    env = os.environ if environ is None else environ
    text = env.get("CASE_MAIL_MAX_PER_SECOND")
    if not text:
        return DEFAULT_MAIL_MAX_PER_SECOND
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        raise ValueError(
            f"invalid CASE_MAIL_MAX_PER_SECOND {text!r}: give a positive number of "
            "messages per second, such as 5 or 0.5"
        )
    return rate


@dataclass
class SearchAttributeRegistration:
    created: list[str]
    # Empty where the server cannot list its attributes, as on the time-skipping
    # test server. Every key is then added and reported as created.
    existing: list[str]


async def register_search_attributes(
    client: Client, keys: Sequence[SearchAttributeKey] = ALL_SEARCH_ATTRIBUTES
) -> SearchAttributeRegistration:
    """Register the custom search attributes that are missing, through the operator service.

    Running it again changes nothing. A cluster that does not allow it
    raises ``SearchAttributesMissing`` with the command an operator runs
    instead.
    """
    namespace = client.namespace
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        registered = set(listed.custom_attributes)
    except RPCError as err:
        # The time-skipping test server does not implement the listing.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        registered = set()
    existing = sorted(key.name for key in keys if key.name in registered)
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in keys
        if key.name not in registered
    }
    if not missing:
        return SearchAttributeRegistration(created=[], existing=existing)
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.ALREADY_EXISTS:
            # Another worker or operator registered them in the meantime.
            return SearchAttributeRegistration(
                created=[], existing=sorted(key.name for key in keys)
            )
        commands = "\n".join(
            f"  temporal operator search-attribute create --namespace {namespace} "
            f"--name {key.name} --type {search_attribute_type_name(key)}"
            for key in keys
            if key.name in missing
        )
        raise SearchAttributesMissing(
            f"search attributes {sorted(missing)} are not registered in namespace "
            f"{namespace!r} and this client may not register them ({err.message}). "
            f"Ask an operator to run:\n{commands}"
        ) from err
    return SearchAttributeRegistration(created=sorted(missing), existing=existing)


async def ensure_search_attributes(
    client: Client, keys: Sequence[SearchAttributeKey] = ALL_SEARCH_ATTRIBUTES
) -> list[str]:
    """Register the custom search attributes that are missing and return their names."""
    return (await register_search_attributes(client, keys)).created


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
    try:
        config = client_connect_config()
        deployment = worker_deployment_config()
    except (KeyConfigError, ValueError) as err:
        log.error("worker.invalid_settings", error=str(err))
        print(f"invalid settings: {err}", file=sys.stderr)
        return 2
    queue = task_queue()
    metrics: str | None = None
    try:
        metrics = metrics_address()
        # The runtime binds the metrics port here, and raises ValueError
        # when the port is taken.
        runtime = temporal_runtime(metrics)
    except ValueError as err:
        message = (
            f"cannot serve metrics: {err}; set CASE_METRICS_ADDRESS to a free "
            "host:port, or to 'off'"
        )
        log.error("worker.metrics_failed", error=str(err), address=metrics)
        print(message, file=sys.stderr)
        return 2
    client = await Client.connect(**config, runtime=runtime)
    try:
        created = await ensure_search_attributes(client)
    except SearchAttributesMissing as err:
        log.error("worker.search_attributes_missing", error=str(err))
        print(err, file=sys.stderr)
        return 2
    if created:
        log.info("worker.search_attributes_registered", names=created)

    try:
        settings = EmailSettings.from_env()
        rate = mail_max_per_second()
    except ValueError as err:
        log.error("worker.invalid_configuration", error=str(err))
        print(err, file=sys.stderr)
        return 2
    versioning: dict[str, object] = (
        {"deployment_config": deployment} if deployment else {}
    )
    worker = build_worker(
        client,
        task_queue=queue,
        email_settings=settings,
        mail_max_per_second=rate,
        **versioning,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    log.info(
        "worker.started",
        address=config["target_host"],
        namespace=client.namespace,
        task_queue=queue,
        metrics=f"http://{metrics}/metrics" if metrics else "off",
        notification_task_queue=notification_task_queue(queue),
        mail_max_per_second=rate,
        email="smtp" if settings.uses_smtp else f"maildir {settings.outbox_dir}",
        encryption=isinstance(config["data_converter"].payload_codec, EncryptionCodec),
        deployment=deployment.version.deployment_name if deployment else None,
        build_id=deployment.version.build_id if deployment else None,
    )
    async with worker:
        await stop.wait()
        log.info("worker.stopping")
    log.info("worker.stopped")
    return 0


if __name__ == "__main__":
    exit_without_teardown(asyncio.run(main()))
