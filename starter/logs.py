"""JSON logs through structlog, for structlog loggers and the standard library alike."""

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, NoReturn

import structlog
from temporalio import activity, workflow
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

_SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# Every casedesk workflow id is this prefix and the case number.
CASE_WORKFLOW_ID_PREFIX = "case-"


def name_the_case(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Flatten Temporal's log context into ``case``, ``workflow_id`` and ``run_id`` keys.

    ``workflow.logger`` and ``activity.logger`` attach a ``temporal_workflow``
    or ``temporal_activity`` mapping; structlog lines from activities carry the
    same keys through contextvars bound by the worker's interceptor. A line
    that names a workflow but no case gets the case number from the workflow
    id.
    """
    context = event.pop("temporal_workflow", None)
    if isinstance(context, Mapping):
        event.setdefault("workflow_id", context.get("workflow_id"))
        event.setdefault("run_id", context.get("run_id"))
        event.setdefault("workflow_type", context.get("workflow_type"))
        event.setdefault("task_queue", context.get("task_queue"))
    context = event.pop("temporal_activity", None)
    if isinstance(context, Mapping):
        event.setdefault("workflow_id", context.get("workflow_id"))
        event.setdefault("run_id", context.get("workflow_run_id"))
        event.setdefault("activity_type", context.get("activity_type"))
        event.setdefault("attempt", context.get("attempt"))
    context = event.pop("temporal_update", None)
    if isinstance(context, Mapping):
        event.setdefault("update_id", context.get("update_id"))
        event.setdefault("update_name", context.get("update_name"))
    workflow_id = event.get("workflow_id")
    if (
        "case" not in event
        and isinstance(workflow_id, str)
        and workflow_id.startswith(CASE_WORKFLOW_ID_PREFIX)
    ):
        event["case"] = workflow_id.removeprefix(CASE_WORKFLOW_ID_PREFIX)
    return event


def configure_logging(level: str = "INFO") -> None:
    """Render every log line as one JSON object on standard error.

    Workflow code logs through ``workflow.logger``, which is silent during
    replay; its ``extra`` fields become JSON keys here instead of being
    appended to the message, and ``name_the_case`` adds the case number,
    workflow id and run id.
    """
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_SHARED_PROCESSORS,
            structlog.stdlib.ExtraAdder(),
            name_the_case,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            name_the_case,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def temporal_runtime(metrics_address: str | None = None) -> Runtime:
    """Return a Temporal runtime whose core logs go through Python logging.

    The default runtime prints the Rust core's log lines as coloured text on
    standard output, beside the JSON lines on standard error. With
    ``metrics_address`` (``host:port``) the runtime also serves Prometheus
    metrics at ``http://host:port/metrics``, with ``_total`` on counter names.
    """
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    metrics = (
        PrometheusConfig(bind_address=metrics_address, counters_total_suffix=True)
        if metrics_address
        else None
    )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=forwarding,
            ),
            metrics=metrics,
        )
    )


def exit_without_teardown(code: int) -> NoReturn:
    """Flush logs and standard streams, then end the process at once with ``code``.

    The Temporal client's Rust threads can crash CPython while it finalizes a
    process that has finished its work: SIGSEGV or SIGABRT with
    "PyGILState_Release" (temporalio/sdk-python issue 300). Skipping the
    interpreter's teardown avoids that.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
