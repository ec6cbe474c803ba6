"""casedesk's own Prometheus metrics, beside the SDK's ``temporal_*`` ones.

Workflow code records through ``workflow.metric_meter()``, which drops
recordings while a workflow replays, so a count never doubles when a worker
rebuilds a case from its history. Activity code records through
``activity.metric_meter()``. The worker's runtime appends ``_total`` to every
counter on the Prometheus endpoint (``casedesk_status_transitions_total``).
"""

from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

STATUS_TRANSITIONS = "casedesk_status_transitions"
REMINDERS_SENT = "casedesk_reminders_sent"
CLOSURES = "casedesk_closures"
UPDATES_REJECTED = "casedesk_updates_rejected"
SIGNALS_REJECTED = "casedesk_signals_rejected"
EMAILS_FAILED = "casedesk_emails_failed"
ACTIVITY_ATTEMPTS_FAILED = "casedesk_activity_attempts_failed"

# An update that failed with no ApplicationError type, for example one the SDK
# rejected before casedesk's code ran.
UNTYPED_REASON = "unspecified"


def _count(meter: MetricMeter, name: str, description: str, **labels: str) -> None:
    meter.create_counter(name, description).add(1, labels)


def record_transition(from_status: str, to_status: str) -> None:
    _count(
        workflow.metric_meter(),
        STATUS_TRANSITIONS,
        "Status changes of cases, by the status left and the status entered.",
        from_status=from_status,
        to_status=to_status,
    )


def record_closure(reason: str) -> None:
    _count(
        workflow.metric_meter(),
        CLOSURES,
        "Cases closed, by the timer rule or the role that closed them.",
        reason=reason,
    )


def record_reminder_sent() -> None:
    _count(
        workflow.metric_meter(),
        REMINDERS_SENT,
        "Reminder emails delivered to case contacts.",
    )


def record_signal_rejected(signal: str, reason: str) -> None:
    _count(
        workflow.metric_meter(),
        SIGNALS_REJECTED,
        "Signals recorded as rejected in a case's history, by signal and reason.",
        signal=signal,
        reason=reason,
    )


def record_email_failed(notice: str) -> None:
    _count(
        workflow.metric_meter(),
        EMAILS_FAILED,
        "Case emails given up after every retry failed, by notice.",
        notice=notice,
    )


def _record_update_rejected(update: str, error: Exception) -> None:
    reason = (
        error.type or UNTYPED_REASON
        if isinstance(error, ApplicationError)
        else type(error).__name__
    )
    _count(
        workflow.metric_meter(),
        UPDATES_REJECTED,
        "Updates rejected by their validator or failed by their handler, by update and reason.",
        update=update,
        reason=reason,
    )


class _CaseWorkflowInbound(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        try:
            super().handle_update_validator(input)
        except Exception as err:
            _record_update_rejected(input.update, err)
            raise

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        try:
            return await super().handle_update_handler(input)
        except ApplicationError as err:
            _record_update_rejected(input.update, err)
            raise


class _CaseActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        # Bound ids put the case on structlog lines from activity code, as on
        # activity.logger lines. Each activity runs in its own task, so the
        # binding ends with it.
        try:
            with structlog.contextvars.bound_contextvars(
                workflow_id=info.workflow_id, run_id=info.workflow_run_id
            ):
                return await super().execute_activity(input)
        except Exception as err:
            _count(
                activity.metric_meter(),
                ACTIVITY_ATTEMPTS_FAILED,
                # activity.metric_meter() adds activity_type, namespace and task_queue.
                "Failed activity attempts, such as email sends, which Temporal may retry.",
                error_type=err.type
                if isinstance(err, ApplicationError) and err.type
                else type(err).__name__,
            )
            raise


class CaseTelemetryInterceptor(Interceptor):
    """Count rejected updates and failed activity attempts, and name the case in activity logs."""

    def intercept_activity(
        self, next: ActivityInboundInterceptor
    ) -> ActivityInboundInterceptor:
        return _CaseActivityInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _CaseWorkflowInbound
