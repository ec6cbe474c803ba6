"""The calls a support system makes: open, act on, read and clone cases."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.case import Case, CaseInput
from domain.statuses import Priority, Status
from domain.visibility import WaitingOn, waiting_on
from workflows.messages import AddCommentInput, ChangePriorityInput, ChangeStatusInput
from workflows.search_attributes import (
    CASE_INSTITUTION,
    CASE_PRIORITY,
    CASE_PRODUCT,
    CASE_STATUS,
    CASE_STATUS_SINCE,
    CASE_WAITING_ON,
    NEXT_DEADLINE_AT,
    NEXT_DEADLINE_KIND,
)
from workflows.support_case import SupportCase


def workflow_id(case_number: str) -> str:
    return f"case-{case_number}"


class CaseExistsError(Exception):
    def __init__(self, case_number: str, run_id: str | None) -> None:
        super().__init__(
            f"case {case_number} already exists (workflow {workflow_id(case_number)}); "
            "act on it, or open a new case with another case number"
        )
        self.case_number = case_number
        self.run_id = run_id


class CaseNotFoundError(Exception):
    pass


class CaseClosedError(Exception):
    pass


class ActionRejectedError(Exception):
    """An update the case rejected; ``code`` names the rule, as in ``CaseRuleError``."""

    def __init__(self, message: str, code: str | None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class OpenedCase:
    handle: WorkflowHandle[SupportCase, Case]
    case_number: str


async def open_case(
    client: Client, request: CaseInput, *, task_queue: str
) -> OpenedCase:
    """Start the case's workflow; raise ``CaseExistsError`` if the case number is taken.

    A case number is used once: the id reuse policy rejects a second workflow
    even after the first one closed, for as long as the namespace retains it.
    """
    try:
        handle = await client.start_workflow(
            SupportCase.run,
            request.model_dump(mode="json"),
            id=workflow_id(request.case_number),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Case {request.case_number}: {request.subject}",
            static_details=_static_details(request),
            search_attributes=_start_search_attributes(request),
        )
    except WorkflowAlreadyStartedError as err:
        raise CaseExistsError(request.case_number, err.run_id) from err
    return OpenedCase(handle=handle, case_number=request.case_number)


def _static_details(request: CaseInput) -> str:
    """Describe the case for the Web UI with ids only, never the contact's details."""
    status = (request.status or Status.NEW).value
    lines = [
        f"Institution: {request.institution.id}",
        f"Product: {request.product or 'not set'}",
        f"{'Imported in' if request.status else 'Opened in'}: {status}",
    ]
    if request.cloned_from:
        lines.append(f"Cloned from case {request.cloned_from}")
    # Two trailing spaces make a Markdown line break.
    return "  \n".join(lines)


def _start_search_attributes(request: CaseInput) -> TypedSearchAttributes:
    """Return the search attributes a case has from its start, before its first upsert."""
    status = request.status or Status.NEW
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(CASE_STATUS, status.value),
        SearchAttributePair(CASE_PRIORITY, request.priority.value),
        SearchAttributePair(CASE_WAITING_ON, waiting_on(status).value),
        SearchAttributePair(CASE_INSTITUTION, request.institution.id),
    ]
    if request.product:
        pairs.append(SearchAttributePair(CASE_PRODUCT, request.product))
    if request.status_since is not None:
        pairs.append(SearchAttributePair(CASE_STATUS_SINCE, request.status_since))
    return TypedSearchAttributes(pairs)


def case_handle(client: Client, case_number: str) -> WorkflowHandle[SupportCase, Case]:
    return client.get_workflow_handle_for(SupportCase.run, workflow_id(case_number))


async def execution_status(client: Client, case_number: str) -> WorkflowExecutionStatus:
    """Return the status of the case's latest workflow run.

    This reads the raw description: the SDK's ``describe()`` also decodes the
    search attributes, which fails on the time-skipping test server once a
    Datetime attribute has been unset.
    """
    response = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id(case_number)),
        )
    )
    return WorkflowExecutionStatus(response.workflow_execution_info.status)


async def get_case(client: Client, case_number: str) -> Case:
    """Return the case: its final record once closed, the live state while open."""
    handle = case_handle(client, case_number)
    try:
        if (
            await execution_status(client, case_number)
            == WorkflowExecutionStatus.COMPLETED
        ):
            return await handle.result()
        return await handle.query(SupportCase.get_case)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CaseNotFoundError(
                f"case {case_number} not found; check the case number"
            ) from err
        raise


@dataclass
class CaseRow:
    case_number: str
    status: str | None
    priority: str | None
    next_deadline_at: datetime | None
    workflow_status: str
    waiting_on: str | None = None
    next_deadline_kind: str | None = None


def quote(value: str) -> str:
    """Quote ``value`` as a string literal of a visibility query."""
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError(
        f"invalid filter value {value!r}: a visibility query value may contain "
        "single or double quotes, not both"
    )


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no UTC offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def visibility_query(
    *,
    status: str | None = None,
    priority: str | None = None,
    waiting_on: str | None = None,
    product: str | None = None,
    institution: str | None = None,
    deadline_before: datetime | None = None,
    deadline_after: datetime | None = None,
    query: str | None = None,
    open_only: bool = True,
) -> str:
    """Build the same list filter an operator types into the Web UI.

    ``query`` is a raw visibility query, combined with the other filters by AND.
    """
    clauses = ['WorkflowType = "SupportCase"']
    if open_only:
        clauses.append('ExecutionStatus = "Running"')
    if status:
        clauses.append(f"{CASE_STATUS.name} = {quote(Status(status).value)}")
    if priority:
        clauses.append(f"{CASE_PRIORITY.name} = {quote(Priority(priority).value)}")
    if waiting_on:
        clauses.append(f"{CASE_WAITING_ON.name} = {quote(WaitingOn(waiting_on).value)}")
    if product:
        clauses.append(f"{CASE_PRODUCT.name} = {quote(product)}")
    if institution:
        clauses.append(f"{CASE_INSTITUTION.name} = {quote(institution)}")
    if deadline_after is not None:
        clauses.append(f'{NEXT_DEADLINE_AT.name} >= "{_rfc3339(deadline_after)}"')
    if deadline_before is not None:
        clauses.append(f'{NEXT_DEADLINE_AT.name} < "{_rfc3339(deadline_before)}"')
    if query:
        clauses.append(f"({query})")
    return " AND ".join(clauses)


async def list_cases(client: Client, query: str, *, limit: int = 1000) -> list[CaseRow]:
    rows = []
    async for execution in client.list_workflows(query, limit=limit):
        attributes = execution.typed_search_attributes
        rows.append(
            CaseRow(
                case_number=execution.id.removeprefix("case-"),
                status=attributes.get(CASE_STATUS),
                priority=attributes.get(CASE_PRIORITY),
                next_deadline_at=attributes.get(NEXT_DEADLINE_AT),
                workflow_status=execution.status.name
                if execution.status
                else "UNKNOWN",
                waiting_on=attributes.get(CASE_WAITING_ON),
                next_deadline_kind=attributes.get(NEXT_DEADLINE_KIND),
            )
        )
    return rows


@dataclass
class CaseStats:
    """Counts of open cases, read from the visibility store."""

    by_status: dict[Status, int]
    overdue: int
    due_next_day: int
    due_next_week: int

    @property
    def open_cases(self) -> int:
        return sum(self.by_status.values())


async def case_stats(client: Client, now: datetime, **filters: Any) -> CaseStats:
    """Count open cases per status and the deadlines due from ``now`` on.

    ``filters`` are ``visibility_query`` filters other than status and
    deadlines, such as ``institution``. Visibility is eventually consistent,
    so a change made a moment ago may not be counted yet.
    """

    async def count(**clauses: Any) -> int:
        query = visibility_query(open_only=True, **filters, **clauses)
        return (await client.count_workflows(query)).count

    by_status: dict[Status, int] = {
        status: await count(status=status.value)
        for status in Status
        if status is not Status.CLOSED
    }
    return CaseStats(
        by_status=by_status,
        overdue=await count(deadline_before=now),
        due_next_day=await count(
            deadline_after=now, deadline_before=now + timedelta(days=1)
        ),
        due_next_week=await count(
            deadline_after=now, deadline_before=now + timedelta(days=7)
        ),
    )


async def change_status(
    client: Client,
    case_number: str,
    request: ChangeStatusInput,
    *,
    update_id: str | None = None,
    as_signal: bool = False,
) -> Case | None:
    return await _act(
        client, case_number, "change_status", request, update_id, as_signal
    )


async def add_comment(
    client: Client,
    case_number: str,
    request: AddCommentInput,
    *,
    update_id: str | None = None,
    as_signal: bool = False,
) -> Case | None:
    return await _act(client, case_number, "add_comment", request, update_id, as_signal)


async def change_priority(
    client: Client,
    case_number: str,
    request: ChangePriorityInput,
    *,
    update_id: str | None = None,
    as_signal: bool = False,
) -> Case | None:
    return await _act(
        client, case_number, "change_priority", request, update_id, as_signal
    )


async def _act(
    client: Client,
    case_number: str,
    action: str,
    request: Any,
    update_id: str | None,
    as_signal: bool,
) -> Case | None:
    handle = case_handle(client, case_number)
    try:
        if as_signal:
            await handle.signal(action, request)
            return None
        return await handle.execute_update(
            action, request, id=update_id, result_type=Case
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise ActionRejectedError(cause.message, cause.type) from err
        raise ActionRejectedError(str(cause), None) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            await _raise_closed_or_missing(client, case_number)
        raise


async def _raise_closed_or_missing(client: Client, case_number: str) -> None:
    try:
        status = await execution_status(client, case_number)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CaseNotFoundError(
                f"case {case_number} not found; check the case number or open the case first"
            ) from err
        raise
    if status != WorkflowExecutionStatus.RUNNING:
        raise CaseClosedError(
            f"case {case_number} is Closed and takes no more actions; clone it with "
            f"'casedesk clone {case_number} NEW_NUMBER' to report further work"
        )


async def clone_case(
    client: Client,
    closed_case_number: str,
    new_case_number: str,
    *,
    task_queue: str,
    subject: str | None = None,
    policy: Any = None,
) -> OpenedCase:
    """Open ``new_case_number`` as a copy of a Closed case, linked by ``cloned_from``."""
    original = await get_case(client, closed_case_number)
    if not original.is_closed:
        raise ActionRejectedError(
            f"case {closed_case_number} is still open ({original.status.value}); "
            "only a Closed case is cloned, so comment on it instead",
            "clone_of_open_case",
        )
    request = CaseInput(
        case_number=new_case_number,
        subject=subject or original.subject,
        description=original.description,
        priority=original.priority,
        institution=original.institution,
        contact=original.contact,
        product=original.product,
        installation_type=original.installation_type,
        affects_multiple_institutions=original.affects_multiple_institutions,
        cloned_from=closed_case_number,
        **({"policy": policy} if policy is not None else {}),
    )
    return await open_case(client, request, task_queue=task_queue)
