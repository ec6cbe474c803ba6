"""The SupportCase workflow: one durable run per support case.

The workflow applies the rules of ``domain.case.Case`` to updates, signals and
timers. It has no rule of its own beyond how Temporal delivers messages:
updates are validated and answered, signals are recorded as rejected when
invalid, and deadlines are durable timers re-armed after every change.
"""

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # pydantic's EmailStr imports these lazily on first use; importing them
    # here keeps them out of the sandbox's per-run reimport.
    import email_validator  # noqa: F401
    import idna  # noqa: F401
    from pydantic import BaseModel, ValidationError

    from activities.email import (
        SUPPORT_NOTICES,
        CaseEmail,
        Notice,
        notification_task_queue,
        opened_message_key,
    )
    from domain.case import Case, CaseInput, Deadline
    from domain.deadlines import DeadlineKind, add_period
    from domain.errors import CaseRuleError
    from domain.statuses import Role, Status
    from domain.visibility import closed_reason_code, waiting_on
    from workflows import metrics
    from workflows.messages import (
        CONTINUED_AS_NEW_KEY,
        AddCommentInput,
        ChangePriorityInput,
        ChangeStatusInput,
        ContinuedCase,
        WorkflowInput,
    )
    from workflows.search_attributes import (
        CASE_CLOSED_REASON,
        CASE_INSTITUTION,
        CASE_PRIORITY,
        CASE_PRODUCT,
        CASE_STATUS,
        CASE_STATUS_SINCE,
        CASE_WAITING_ON,
        NEXT_DEADLINE_AT,
        NEXT_DEADLINE_KIND,
    )

MessageT = TypeVar("MessageT", bound=BaseModel)
_CALLER_ROLES = frozenset(role.value for role in Role)

# Update ids are deduplicated by the server within one run; the workflow
# remembers this many more so a retried update stays applied once across
# continue-as-new.
RECENT_UPDATE_IDS = 500
# The server accepts update ids of up to 1,000 characters, so the remembered
# ids are also bounded in bytes: with a case of at most 1,750,000 bytes, the
# input of the next run stays below Temporal's 2 MiB payload limit.
RECENT_UPDATE_ID_BYTES = 100_000
# An email that still fails after this long is recorded on the case and given
# up. Runs with ALL_NOTICES_PATCH take the case policy's email_delivery_window.
EMAIL_DELIVERY_WINDOW = timedelta(hours=24)
# Runs started before this patch upsert only CaseStatus, CasePriority and
# NextDeadlineAt; the patch adds the operator search attributes to each upsert.
OPERATOR_SEARCH_ATTRIBUTES_PATCH = "operator-search-attributes"
# The patch that turns on the case-opened notice, status notices, support
# notices, work plan reassessment reminders and the rate-limited notification
# task queue. Runs that started before it keep the reminder and closure only.
ALL_NOTICES_PATCH = "case-notices-all-kinds"
# The notice a contact gets when the case enters one of these statuses.
STATUS_NOTICES: dict[Status, Notice] = {
    Status.PENDING_CUSTOMER_INPUT: "pending_customer_input",
    Status.AWAITING_CUSTOMER_CONFIRMATION: "awaiting_customer_confirmation",
    Status.PENDING_CUSTOMER_TESTING: "pending_customer_testing",
    Status.PENDING_RELEASE: "pending_release",
}
# The notice support gets when the customer moves the case into one of these statuses.
CUSTOMER_ANSWER_NOTICES: dict[Status, Notice] = {
    Status.UPDATE_RECEIVED: "update_received",
    Status.REOPENED: "reopened",
}
EMAIL_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)


class InvalidCaseInput(ValueError):
    pass


@workflow.defn(name="SupportCase")
class SupportCase:
    @workflow.init
    def __init__(self, input: WorkflowInput = None, *extra: WorkflowInput) -> None:
        self._changes = 0
        self._emails_in_flight = 0
        self._recent_update_ids: list[str] = []
        self._published: tuple[Any, ...] | None = None
        # The status last counted in the transition metric; set on first publish.
        self._counted_status: Status | None = None
        self._input_error: str | None = None
        self._case: Case | None = None
        self._continued = False
        self._all_notices = False
        self._notices_checked = False
        self._opened_by_this_run = False
        try:
            if extra:
                raise InvalidCaseInput(
                    f"the workflow takes one argument, the case, but got {1 + len(extra)}"
                )
            self._case = self._load(input)
        except (ValidationError, CaseRuleError, InvalidCaseInput) as err:
            self._input_error = _describe_error(err)

    def _load(self, input: Any) -> Case:
        if not isinstance(input, dict):
            received = "nothing" if input is None else type(input).__name__
            raise InvalidCaseInput(
                f"the workflow input must be a JSON object, not {received}"
            )
        if CONTINUED_AS_NEW_KEY in input:
            carried = ContinuedCase.model_validate(input[CONTINUED_AS_NEW_KEY])
            self._recent_update_ids = carried.recent_update_ids
            self._continued = True
            return carried.case
        case = Case.open(CaseInput.model_validate(input), workflow.now())
        self._opened_by_this_run = True
        return case

    # ---- updates

    # Update arguments arrive as plain JSON and are parsed here, so a malformed
    # one is rejected with a readable, non-retryable error rather than the
    # SDK's generic "Failed decoding arguments".

    @workflow.update(description="Move the case to another status.")
    def change_status(self, input: Any) -> Case:
        request = _parse(ChangeStatusInput, input)
        return self._apply_update(lambda case: self._apply_change_status(case, request))

    @change_status.validator
    def validate_change_status(self, input: Any) -> None:
        request = _parse(ChangeStatusInput, input)

        def check(case: Case) -> None:
            case.check_change_status(request.actor, request.status)
            case.effective_time(request.effective_at, workflow.now())

        self._validate_update(check)

    @workflow.update(
        description="Add a comment; a customer's comment may move the status."
    )
    def add_comment(self, input: Any) -> Case:
        request = _parse(AddCommentInput, input)
        return self._apply_update(lambda case: self._apply_add_comment(case, request))

    @add_comment.validator
    def validate_add_comment(self, input: Any) -> None:
        request = _parse(AddCommentInput, input)

        def check(case: Case) -> None:
            case.check_add_comment(request.actor, request.body, request.internal)
            case.check_comment_storage(
                request.actor, request.body, request.internal, workflow.now()
            )

        self._validate_update(check)

    @workflow.update(description="Change the priority; deadlines do not move.")
    def change_priority(self, input: Any) -> Case:
        request = _parse(ChangePriorityInput, input)
        return self._apply_update(
            lambda case: self._apply_change_priority(case, request)
        )

    @change_priority.validator
    def validate_change_priority(self, input: Any) -> None:
        request = _parse(ChangePriorityInput, input)
        self._validate_update(
            lambda case: case.check_change_priority(request.actor, request.priority)
        )

    # ---- signals: the same actions, fire-and-forget

    @workflow.signal(
        name="change_status", description="Move the case to another status."
    )
    def change_status_signal(self, *args: Any) -> None:
        self._handle_signal(
            "change_status", args, ChangeStatusInput, self._apply_change_status
        )

    @workflow.signal(name="add_comment", description="Add a comment.")
    def add_comment_signal(self, *args: Any) -> None:
        self._handle_signal(
            "add_comment", args, AddCommentInput, self._apply_add_comment
        )

    @workflow.signal(name="change_priority", description="Change the priority.")
    def change_priority_signal(self, *args: Any) -> None:
        self._handle_signal(
            "change_priority", args, ChangePriorityInput, self._apply_change_priority
        )

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        known = "add_comment, change_priority, change_status"
        payload = args[0].payload if len(args) == 1 else None
        self._reject_signal(
            name,
            f"unknown signal name {name!r}; send one of: {known}",
            _decode_raw(payload),
            code="unknown_signal",
        )

    # ---- queries

    @workflow.query(
        description="The case with its history, comments and pending deadlines."
    )
    def get_case(self) -> Case:
        return self._require_case()

    # ---- the main loop

    @workflow.run
    async def run(self, input: WorkflowInput = None, *extra: WorkflowInput) -> Case:
        if self._input_error is not None:
            raise ApplicationError(
                f"invalid case input: {self._input_error}",
                type="InvalidCaseInput",
                non_retryable=True,
            )
        case = self._require_case()
        # Cases opened before this check existed replay without the marker,
        # so patched() is False for them and they run on unchanged.
        if self._opened_by_this_run and workflow.patched(
            "reject-encoded-words-in-header-text"
        ):
            try:
                case.check_mail_header_text()
            except CaseRuleError as err:
                raise ApplicationError(
                    f"invalid case input: {err}",
                    type="InvalidCaseInput",
                    non_retryable=True,
                ) from None
        if self._check_all_notices(case):
            opened_here = not self._continued and case.history[0].event == "opened"
            if opened_here:
                self._start_notice(
                    case,
                    self._case_email(
                        case, "opened", opened_message_key(case.case_number)
                    ),
                )
        self._publish(case)
        workflow.logger.info(
            "case.started",
            extra={"case": case.case_number, "status": case.status.value},
        )

        while not case.is_closed:
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new(case)

            await self._wait_for_deadline_or_change(case)
            self._act_on_due_deadlines(case)

        # Every closure (by a timer, an update or a signal) ends up here. The
        # notice goes out once, then the run completes with the final record.
        # A case imported as Closed was closed elsewhere, so it gets no notice.
        if not case.imported_closed:
            await self._send_email(case, "closure", case.status_entry, closes_at=None)
        # Notices started by the last update or signal finish before the run ends.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._emails_in_flight == 0
        )
        workflow.logger.info(
            "case.closed",
            extra={"case": case.case_number, "closed_reason": case.closed_reason},
        )
        return case

    async def _wait_for_deadline_or_change(self, case: Case) -> None:
        seen = self._changes

        def woken() -> bool:
            return (
                self._changes != seen or workflow.info().is_continue_as_new_suggested()
            )

        deadline = case.next_deadline()
        if deadline is None:
            await workflow.wait_condition(woken)
            return
        remaining = deadline.due_at - workflow.now()
        if remaining <= timedelta(0):
            # An imported case, or one whose worker was down, acts at once. A
            # zero or negative timeout must never reach wait_condition.
            return
        # A timeout is the deadline coming due; the caller acts on it.
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(
                woken, timeout=remaining, timeout_summary=deadline.description
            )

    def _act_on_due_deadlines(self, case: Case) -> None:
        now = workflow.now()
        due = case.due_deadlines(now)
        if not due:
            return
        for deadline in due:
            case.take_deadline(deadline)
            if deadline.kind is DeadlineKind.REMINDER:
                workflow.logger.info(
                    "case.reminder_due",
                    extra={
                        "case": case.case_number,
                        "deadline": deadline.due_at.isoformat(),
                    },
                )
                asyncio.create_task(self._send_reminder(case, deadline))
            elif deadline.kind is DeadlineKind.REASSESSMENT:
                self._start_reassessment(case, deadline)
            else:
                case.close_by_timer(deadline, now)
                workflow.logger.info(
                    "case.closed_by_timer",
                    extra={"case": case.case_number, "rule": deadline.rule},
                )
        self._changed(case)

    async def _send_reminder(self, case: Case, deadline: Deadline) -> None:
        closure = next(
            (d for d in case.deadlines if d.kind is DeadlineKind.CLOSURE),
            None,
        )
        sent = await self._send_email(
            case,
            "reminder",
            deadline.status_entry,
            closes_at=closure.due_at if closure else None,
        )
        if sent:
            case.record_reminder_sent(deadline, workflow.now())
            metrics.record_reminder_sent()
            self._changed(case)

    async def _send_email(
        self, case: Case, notice: Notice, status_entry: int, closes_at: Any
    ) -> bool:
        email = self._case_email(
            case,
            notice,
            f"case-{case.case_number}.{status_entry}.{notice}",
            closes_at=closes_at,
        )
        self._emails_in_flight += 1
        try:
            return await self._deliver(case, email)
        finally:
            self._emails_in_flight -= 1

    def _case_email(
        self,
        case: Case,
        notice: Notice,
        message_key: str,
        *,
        closes_at: Any = None,
        comment: str = "",
        occurrence: int = 1,
    ) -> CaseEmail:
        """Build the activity input from the case as it is now."""
        return CaseEmail(
            notice=notice,
            message_key=message_key,
            case_number=case.case_number,
            to_name=case.contact.name,
            to_email=case.contact.email,
            subject=case.subject,
            status=case.status.value,
            status_since=case.status_since,
            time_zone=case.institution.time_zone,
            closes_at=closes_at,
            closed_reason=case.closed_reason,
            closed_by_rule=case.closure.rule if case.closure else None,
            audience="support" if notice in SUPPORT_NOTICES else "contact",
            product=case.product,
            comment=comment,
            occurrence=occurrence,
        )

    def _check_all_notices(self, case: Case) -> bool:
        """Return whether this run sends every notice kind, deciding it on the first call.

        An update or signal that arrives with the start of the run is handled
        before ``run`` begins, so its handler may be the first caller.
        """
        if not self._notices_checked:
            self._notices_checked = True
            if workflow.patched(ALL_NOTICES_PATCH):
                self._all_notices = True
                case.enable_all_notices(workflow.now())
        return self._all_notices

    def _start_notice(self, case: Case, email: CaseEmail) -> None:
        """Send ``email`` in the background. The run waits for it before it ends."""
        # Counted here, not in the task, so the end of the run and
        # continue-as-new wait for a task that has not started yet.
        self._emails_in_flight += 1

        async def deliver() -> None:
            try:
                await self._deliver(case, email)
            finally:
                self._emails_in_flight -= 1

        asyncio.create_task(deliver())

    def _notify_status(self, case: Case, entry_before: int, actor_role: Role) -> None:
        """Start the notice for a status the case has just entered, if it has one."""
        if case.status_entry == entry_before:
            return
        key = f"case-{case.case_number}.{case.status_entry}"
        contact_notice = STATUS_NOTICES.get(case.status)
        if contact_notice is not None:
            closure = next(
                (d for d in case.deadlines if d.kind is DeadlineKind.CLOSURE), None
            )
            email = self._case_email(
                case,
                contact_notice,
                f"{key}.{contact_notice}",
                closes_at=closure.due_at if closure else None,
            )
            self._start_notice(case, email)
        support_notice = CUSTOMER_ANSWER_NOTICES.get(case.status)
        if support_notice is not None and actor_role is Role.CUSTOMER:
            comment = case.comments[-1].body if case.comments else ""
            self._start_notice(
                case,
                self._case_email(
                    case, support_notice, f"{key}.{support_notice}", comment=comment
                ),
            )

    def _start_reassessment(self, case: Case, deadline: Deadline) -> None:
        closure = next(
            (d for d in case.deadlines if d.kind is DeadlineKind.CLOSURE), None
        )
        email = self._case_email(
            case,
            "work_plan_reassessment",
            f"case-{case.case_number}.{deadline.status_entry}."
            f"work_plan_reassessment.{deadline.occurrence}",
            closes_at=closure.due_at if closure else None,
            occurrence=deadline.occurrence,
        )
        case.record_reassessment_sent(deadline, workflow.now())
        case.arm_next_reassessment(deadline)
        self._start_notice(case, email)

    async def _deliver(self, case: Case, email: CaseEmail) -> bool:
        """Run the send activity and record its failure on the case instead of raising it."""
        notice = email.notice
        if notice in ("reminder", "closure"):
            summary = f"{notice} email to contact"
        else:
            summary = f"{notice} email to {email.audience}"
        try:
            if self._all_notices:
                window = case.policy.email_delivery_window
                now = workflow.now()
                await workflow.execute_activity(
                    "send_case_email",
                    email,
                    task_queue=notification_task_queue(workflow.info().task_queue),
                    start_to_close_timeout=timedelta(seconds=60),
                    schedule_to_close_timeout=add_period(now, window, None) - now,
                    retry_policy=EMAIL_RETRY_POLICY,
                    summary=summary,
                )
            else:
                await workflow.execute_activity(
                    "send_case_email",
                    email,
                    start_to_close_timeout=timedelta(seconds=60),
                    schedule_to_close_timeout=EMAIL_DELIVERY_WINDOW,
                    retry_policy=EMAIL_RETRY_POLICY,
                    summary=summary,
                )
            return True
        except ActivityError as err:
            # A failed email never stops the case: it is recorded and the case goes on.
            cause = (
                err.cause.message
                if isinstance(err.cause, ApplicationError)
                else str(err)
            )
            case.record_email_failure(notice, cause, workflow.now(), email.message_key)
            metrics.record_email_failed(notice)
            workflow.logger.warning(
                "case.email_failed",
                extra={"case": case.case_number, "notice": notice, "error": cause},
            )
            self._changed(case)
            return False

    async def _continue_as_new(self, case: Case) -> None:
        # Handlers and emails finish first, so no update is cut off and no
        # email is sent twice by the next run.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._emails_in_flight == 0
        )
        workflow.logger.info(
            "case.continue_as_new",
            extra={
                "case": case.case_number,
                "history_length": workflow.info().get_current_history_length(),
            },
        )
        carried = ContinuedCase(case=case, recent_update_ids=self._recent_update_ids)
        workflow.continue_as_new(
            {CONTINUED_AS_NEW_KEY: carried.model_dump(mode="json")}
        )

    # ---- applying actions

    def _apply_change_status(self, case: Case, input: ChangeStatusInput) -> None:
        previous = case.status
        entry_before = case.status_entry
        all_notices = self._check_all_notices(case)
        # A change sent without effective_at, as every change before that
        # field existed, takes effect now, so recorded histories replay alike.
        case.change_status(
            input.actor, input.status, input.note, workflow.now(), input.effective_at
        )
        if all_notices:
            self._notify_status(case, entry_before, input.actor.role)
        workflow.logger.info(
            "case.status_changed",
            extra={
                "case": case.case_number,
                "status_from": previous.value,
                "status_to": case.status.value,
                "actor_role": input.actor.role.value,
            },
        )

    def _apply_add_comment(self, case: Case, input: AddCommentInput) -> None:
        previous = case.status
        # Validators never run on replay, but this runs for updates and signals
        # alike, so cases running before the byte limit replay without it.
        if workflow.patched("limit-comment-storage-bytes"):
            case.check_comment_storage(
                input.actor, input.body, input.internal, workflow.now()
            )
        entry_before = case.status_entry
        all_notices = self._check_all_notices(case)
        case.add_comment(
            input.actor,
            input.body,
            input.internal,
            workflow.now(),
            from_contact=input.from_contact,
        )
        if all_notices:
            self._notify_status(case, entry_before, input.actor.role)
        workflow.logger.info(
            "case.comment_added",
            extra={
                "case": case.case_number,
                "actor_role": input.actor.role.value,
                "from_contact": input.from_contact,
                "status_from": previous.value,
                "status_to": case.status.value,
            },
        )

    def _apply_change_priority(self, case: Case, input: ChangePriorityInput) -> None:
        case.change_priority(input.actor, input.priority, input.note, workflow.now())

    def _apply_update(self, apply: Callable[[Case], None]) -> Case:
        case = self._require_case()
        update_id = _current_update_id()
        if update_id in self._recent_update_ids:
            return case
        try:
            apply(case)
        except CaseRuleError as err:
            # The validator passed, so the case changed between the two, for
            # example closed by a timer in the same workflow task.
            raise ApplicationError(str(err), type=err.code, non_retryable=True) from err
        if update_id is not None:
            self._recent_update_ids = _newest_ids([*self._recent_update_ids, update_id])
        self._changed(case)
        return case

    def _validate_update(self, check: Callable[[Case], None]) -> None:
        if self._case is None:
            raise ApplicationError(
                f"the case was not opened: {self._input_error}", type="InvalidCaseInput"
            )
        if _current_update_id() in self._recent_update_ids:
            return
        try:
            check(self._case)
        except CaseRuleError as err:
            raise ApplicationError(
                f"{err} (case {self._case.case_number} is in {self._case.status.value!r})",
                type=err.code,
                non_retryable=True,
            ) from err

    def _handle_signal(
        self,
        name: str,
        args: tuple[Any, ...],
        model: type[MessageT],
        apply: Callable[[Case, MessageT], None],
    ) -> None:
        if self._case is None:
            workflow.logger.warning("case.signal_ignored", extra={"signal": name})
            return
        if len(args) != 1:
            self._reject_signal(
                name,
                f"expected exactly one argument, got {len(args)}",
                None,
                code="wrong_argument_count",
            )
            return
        try:
            message = model.model_validate(args[0])
        except ValidationError as err:
            self._reject_signal(
                name, _describe_error(err), args[0], code="invalid_argument"
            )
            return
        try:
            apply(self._case, message)
        except CaseRuleError as err:
            self._reject_signal(name, str(err), args[0], code=err.code)
            return
        self._changed(self._case)

    def _reject_signal(
        self, name: str, reason: str, payload: Any, *, code: str
    ) -> None:
        case = self._case
        if case is None:
            return
        metrics.record_signal_rejected(name, code)
        role, actor_name = _claimed_actor(payload)
        case.record_rejected_signal(
            name, reason, _requested_status(payload), role, actor_name, workflow.now()
        )
        workflow.logger.warning(
            "case.signal_rejected",
            extra={"case": case.case_number, "signal": name, "reason": reason},
        )
        self._changed(case)

    # ---- visibility

    def _changed(self, case: Case) -> None:
        self._changes += 1
        self._count_transition(case)
        self._publish(case)

    def _count_transition(self, case: Case) -> None:
        previous = self._counted_status
        self._counted_status = case.status
        if previous is None or previous is case.status:
            return
        metrics.record_transition(previous.value, case.status.value)
        reason = closed_reason_code(case)
        if reason is not None:
            metrics.record_closure(reason)

    def _publish(self, case: Case) -> None:
        """Keep search attributes and the UI's current details in step with the case."""
        if self._counted_status is None:
            self._counted_status = case.status
        deadline = case.next_deadline()
        if workflow.patched(OPERATOR_SEARCH_ATTRIBUTES_PATCH):
            updates = _operator_search_attributes(case, deadline)
        else:
            updates = _released_search_attributes(case, deadline)
        # An upsert is a command in the history, so it is sent only when a value
        # changed. Current details are not part of the history.
        values = tuple(updates)
        if values != self._published:
            self._published = values
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(_current_details(case, deadline))

    def _require_case(self) -> Case:
        if self._case is None:
            raise ApplicationError(
                f"the case was not opened: {self._input_error}", type="InvalidCaseInput"
            )
        return self._case


def _newest_ids(ids: list[str]) -> list[str]:
    """Return the newest of ``ids`` within RECENT_UPDATE_IDS and RECENT_UPDATE_ID_BYTES."""
    kept: list[str] = []
    size = 0
    for update_id in reversed(ids[-RECENT_UPDATE_IDS:]):
        # The id as a JSON string, quotes and escapes included, and a comma.
        size += len(json.dumps(update_id, ensure_ascii=False).encode()) + 1
        if size > RECENT_UPDATE_ID_BYTES:
            break
        kept.append(update_id)
    kept.reverse()
    return kept


def _current_update_id() -> str | None:
    info = workflow.current_update_info()
    return info.id if info else None


def _released_search_attributes(
    case: Case, deadline: Deadline | None
) -> list[SearchAttributeUpdate[Any]]:
    return [
        CASE_STATUS.value_set(case.status.value),
        CASE_PRIORITY.value_set(case.priority.value),
        NEXT_DEADLINE_AT.value_set(deadline.due_at)
        if deadline
        else NEXT_DEADLINE_AT.value_unset(),
    ]


def _operator_search_attributes(
    case: Case, deadline: Deadline | None
) -> list[SearchAttributeUpdate[Any]]:
    closed_reason = closed_reason_code(case)
    return [
        *_released_search_attributes(case, deadline),
        CASE_WAITING_ON.value_set(waiting_on(case.status).value),
        CASE_STATUS_SINCE.value_set(case.status_since),
        CASE_PRODUCT.value_set(case.product)
        if case.product
        else CASE_PRODUCT.value_unset(),
        CASE_INSTITUTION.value_set(case.institution.id),
        NEXT_DEADLINE_KIND.value_set(deadline.kind.value)
        if deadline
        else NEXT_DEADLINE_KIND.value_unset(),
        CASE_CLOSED_REASON.value_set(closed_reason)
        if closed_reason
        else CASE_CLOSED_REASON.value_unset(),
    ]


def _current_details(case: Case, deadline: Deadline | None) -> str:
    """Render the case's state as the Markdown the Web UI shows under Current Details."""
    lines = [
        f"**{case.status.value}** since {_format_minute(case.status_since)}, "
        f"waiting on {waiting_on(case.status).value.replace('_', ' ')}",
        f"Priority: {case.priority.value}",
    ]
    if case.is_closed:
        lines.append(f"Closed: {case.closed_reason}")
    elif deadline is not None:
        lines.append(
            f"Next deadline: {deadline.description} at {_format_minute(deadline.due_at)} "
            f"({deadline.kind.value})"
        )
    else:
        lines.append("Next deadline: none")
    if case.last_action:
        lines.append(f"Last action: {case.last_action}")
    if case.email_failures:
        failed = case.email_failures[-1]
        lines.append(
            f"Email failed: {failed.notice} ({len(case.email_failures)} in all)"
        )
    # Two trailing spaces make a Markdown line break.
    return "  \n".join(lines)


def _format_minute(moment: datetime) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M %Z"))


def _describe_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        problems = []
        for error in err.errors()[:5]:
            location = ".".join(str(part) for part in error["loc"]) or "input"
            problems.append(f"{location}: {error['msg']}")
        return "; ".join(problems)
    return str(err)


def _parse(model: type[MessageT], raw: Any) -> MessageT:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ApplicationError(
            f"invalid {model.__name__}: {_describe_error(err)}",
            type="invalid_argument",
            non_retryable=True,
        ) from None


def _claimed_actor(raw: Any) -> tuple[str, str]:
    """Return the role and name a rejected signal claims, for the audit trail."""
    actor = raw.get("actor") if isinstance(raw, dict) else None
    if not isinstance(actor, dict):
        return "unknown", ""
    role = actor.get("role")
    name = actor.get("name")
    known_role = role if isinstance(role, str) and role in _CALLER_ROLES else "unknown"
    return known_role, name[:200] if isinstance(name, str) else ""


def _decode_raw(payload: Any) -> Any:
    if payload is None:
        return None
    try:
        return workflow.payload_converter().from_payload(payload)
    except Exception:  # noqa: BLE001 - any undecodable payload is just unattributed
        return None


def _requested_status(raw: Any) -> Status | None:
    requested = raw.get("status") if isinstance(raw, dict) else None
    if not isinstance(requested, str):
        return None
    try:
        return Status(requested)
    except ValueError:
        return None
