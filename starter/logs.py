"""JSON logs through structlog, for structlog loggers and the standard library alike."""

import logging
import os
import sys
from typing import NoReturn

import structlog
from temporalio import activity, workflow
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
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


def configure_logging(level: str = "INFO") -> None:
    """Render every log line as one JSON object on standard error.

    Workflow code logs through ``workflow.logger``, which is silent during
    replay; its ``extra`` fields and Temporal's ``temporal_workflow`` context
    become JSON keys here instead of being appended to the message.
    """
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED_PROCESSORS, structlog.stdlib.ExtraAdder()],
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
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def temporal_runtime() -> Runtime:
    """Return a Temporal runtime whose core logs go through Python logging.

    The default runtime prints the Rust core's log lines as coloured text on
    standard output, beside the JSON lines on standard error.
    """
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=forwarding,
            )
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
