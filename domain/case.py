"""The support case aggregate: its state and every rule that changes it.

``Case`` is one serialisable pydantic model, so the workflow can return it from
queries and updates and carry it whole across continue-as-new. Every method
that changes it takes the current time as an argument and never reads a clock.
"""

import importlib.resources
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    TypeAdapter,
    computed_field,
    field_validator,
    model_validator,
)

from domain.deadlines import CasePolicy, DeadlineKind, StatusDeadlineRule, add_period
from domain.errors import CaseRuleError
from domain.statuses import (
    SYSTEM_ROLE,
    InstallationType,
    Priority,
    Role,
    Status,
)
from domain.transitions import check_transition


def _isoformat(value: datetime) -> str:
    return value.isoformat()


# A timezone-aware instant, written as ISO 8601 with an explicit offset.
Instant = Annotated[AwareDatetime, PlainSerializer(_isoformat, when_used="json")]

MAX_SUBJECT_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 20_000
MAX_COMMENT_LENGTH = 10_000
MAX_NOTE_LENGTH = 2_000
# The whole case travels in one payload: as the result of every update and
# query and across continue-as-new. Temporal rejects a payload over 2 MiB
# (2,097,152 bytes) by default and then fails the workflow task again and
# again, so comments and history are bounded in bytes of their JSON form. With
# a description of at most 120,000 bytes (20,000 characters that JSON escapes
# to at most 6 bytes each) and about 10,000 bytes for the other fields, a case
# stays below 1,750,000 bytes.
MAX_COMMENT_CHARACTERS_PER_CASE = 1_000_000
MAX_COMMENT_BYTES_PER_CASE = 1_100_000
MAX_HISTORY_ENTRIES = 1_000
# The newest email failures kept on the case; the history keeps every one.
MAX_EMAIL_FAILURES = 50
# Reassessment reminders armed per stay in Pending Work Plan at most, which
# covers 25 years at the default of one every 3 months.
MAX_REASSESSMENTS = 100
MAX_HISTORY_BYTES = 500_000
# \Z and not $, because $ also matches before a trailing line break.
CASE_NUMBER_PATTERN = re.compile(r"\A[A-Za-z0-9-]{1,32}\Z")
# Control characters (C0, DEL and C1) and the Unicode line and paragraph
# separators. The email package rejects a header value that str.splitlines()
# splits, and that happens at \x85, U+2028 and U+2029 as well as at \r and \n.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The start of an RFC 2047 encoded-word such as "=?utf-8?q?=0D=0A?=". The
# email package decodes even incomplete ones such as "=??Q?=0D0", so any "=?"
# in a header could hide a line break.
_ENCODED_WORD_START = "=?"


def _load_zone_names() -> frozenset[str]:
    # The tzdata package lists the IANA zone names it ships. The system's zone
    # folder also contains names such as "localtime" that follow the host's
    # settings, so deadlines would depend on which worker computed them.
    listing = importlib.resources.files("tzdata").joinpath("zones").read_text()
    return frozenset(listing.split())


IANA_ZONE_NAMES = _load_zone_names()


def _reject_control_characters(value: str, field: str) -> str:
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError(
            f"{field} contains a line break or control character; send it on one line "
            "of printable text"
        )
    return value


class Institution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    time_zone: str | None = Field(
        default=None, description="IANA time zone name; UTC when absent"
    )

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in IANA_ZONE_NAMES:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as "
                "'Europe/Berlin' or 'America/New_York', or leave it out for UTC"
            )
        return value

    @field_validator("id", "name")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return _reject_control_characters(value, "institution field")


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr

    @field_validator("name")
    @classmethod
    def _single_line(cls, value: str) -> str:
        return _reject_control_characters(value, "contact name")


class Actor(BaseModel):
    """The person acting on a case, in a caller's role. Timers act as the system instead."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str = Field(default="", max_length=200)


class CaseInput(BaseModel):
    """The request a support system sends to open, import or clone a case."""

    model_config = ConfigDict(extra="forbid")

    case_number: str
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT_LENGTH)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_LENGTH)
    priority: Priority = Priority.NORMAL
    institution: Institution
    contact: Contact
    product: str = Field(default="", max_length=200)
    installation_type: InstallationType | None = None
    affects_multiple_institutions: bool = False
    status: Status | None = Field(
        default=None, description="for an import: the status the case is in"
    )
    status_since: Instant | None = Field(
        default=None, description="for an import: when the case entered that status"
    )
    cloned_from: str | None = None
    policy: CasePolicy = Field(default_factory=CasePolicy)

    @field_validator("case_number", "cloned_from")
    @classmethod
    def _valid_case_number(cls, value: str | None) -> str | None:
        if value is not None and not CASE_NUMBER_PATTERN.match(value):
            raise ValueError(
                f"invalid case number {value!r}: use 1 to 32 letters, digits or '-'"
            )
        return value

    @field_validator("subject")
    @classmethod
    def _single_line_subject(cls, value: str) -> str:
        return _reject_control_characters(value, "subject")

    @model_validator(mode="after")
    def _import_fields_together(self) -> "CaseInput":
        if self.status_since is not None and self.status is None:
            raise ValueError(
                "status_since is set but status is missing; send both or neither"
            )
        if self.cloned_from is not None and self.cloned_from == self.case_number:
            raise ValueError(f"case {self.case_number!r} cannot be a clone of itself")
        return self


class HistoryEntry(BaseModel):
    """One event in the case's own history, including rejected signals."""

    at: Instant
    event: Literal[
        "opened",
        "imported",
        "status_changed",
        "priority_changed",
        "reminder_sent",
        "email_failed",
        "reassessment_sent",
        "signal_rejected",
    ]
    from_status: Status | None
    to_status: Status | None
    actor_role: str
    actor_name: str = ""
    note: str = ""
    rejected: bool = False


class Comment(BaseModel):
    at: Instant
    actor_role: Role
    actor_name: str = ""
    body: str
    internal: bool = False
    # False for a comment from someone other than the case's contact, such as
    # a colleague who replies to an email notice. It never moves the status.
    from_contact: bool = True


class Deadline(BaseModel):
    """A pending timed action, armed when the case entered ``status``."""

    kind: DeadlineKind
    due_at: Instant
    status: Status
    rule: str
    description: str
    status_entry: int
    # Counts the deadlines of a repeating rule within one status entry, from 1.
    occurrence: int = 1


class EmailFailure(BaseModel):
    """A notice the mail server rejected permanently, or that failed for the whole delivery window."""

    at: Instant
    notice: str
    # The Message-ID without its "@domain" part, such as "case-00012345.2.reminder".
    message_key: str = ""
    error: str


class Closure(BaseModel):
    at: Instant
    actor_role: str
    actor_name: str = ""
    rule: str | None = Field(
        default=None, description="the timer rule that closed the case"
    )
    reason: str


class Case(BaseModel):
    """A support case's full state."""

    case_number: str
    subject: str
    description: str
    priority: Priority
    institution: Institution
    contact: Contact
    product: str
    installation_type: InstallationType | None
    affects_multiple_institutions: bool
    cloned_from: str | None
    policy: CasePolicy
    opened_at: Instant
    status: Status
    status_since: Instant
    # Counts entries into a status, starting at 1 when the case opens. It
    # identifies one stay in a status, for deadlines and Message-IDs.
    status_entry: int = 1
    history: list[HistoryEntry] = Field(default_factory=list)
    history_entries_dropped: int = 0
    comments: list[Comment] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    reminders_sent: int = 0
    # Whether the workflow sends the full set of notices: the case-opened
    # notice, status notices, support notices and work plan reassessments.
    # Runs that started before these notices existed keep it False.
    sends_all_notices: bool = False
    email_failures: list[EmailFailure] = Field(default_factory=list)
    closure: Closure | None = None
    last_action: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def closed_reason(self) -> str | None:
        return self.closure.reason if self.closure else None

    @property
    def is_closed(self) -> bool:
        return self.status is Status.CLOSED

    @property
    def imported_closed(self) -> bool:
        """True for a case that arrived Closed from another system and never changed here."""
        return self.is_closed and self.status_entry == 1

    # ---- opening

    @classmethod
    def open(cls, request: CaseInput, now: datetime) -> "Case":
        """Open a new case, or import one in the status it already has."""
        imported = request.status is not None
        status = request.status or Status.NEW
        since = request.status_since or now
        if since > now:
            raise CaseRuleError(
                "status_since_in_future",
                f"status_since {since.isoformat()} is later than now ({now.isoformat()}); "
                "send the time the case entered its status",
            )
        if status is Status.PENDING_WORK_PLAN:
            _check_work_plan_allowed(
                request.priority, request.affects_multiple_institutions
            )
        case = cls(
            case_number=request.case_number,
            subject=request.subject,
            description=request.description,
            priority=request.priority,
            institution=request.institution,
            contact=request.contact,
            product=request.product,
            installation_type=request.installation_type,
            affects_multiple_institutions=request.affects_multiple_institutions,
            cloned_from=request.cloned_from,
            policy=request.policy,
            opened_at=now,
            status=status,
            status_since=since,
        )
        note = f"cloned from case {request.cloned_from}" if request.cloned_from else ""
        case._append_history(
            HistoryEntry(
                at=now,
                event="imported" if imported else "opened",
                from_status=None,
                to_status=status,
                actor_role=Role.SUPPORT.value,
                note=note,
            )
        )
        if status is Status.CLOSED:
            case.closure = Closure(
                at=since, actor_role=SYSTEM_ROLE, reason="imported in status Closed"
            )
        case._arm_deadlines()
        case.last_action = f"{'imported' if imported else 'opened'} by support"
        return case

    def check_mail_header_text(self) -> None:
        """Reject a subject or contact name that contains "=?", which starts an RFC 2047 encoded-word.

        Both go into email headers, where mail programs decode such a word, so
        it could carry a line break past the single-line check.
        """
        for field, value in (
            ("subject", self.subject),
            ("contact name", self.contact.name),
        ):
            if _ENCODED_WORD_START in value:
                raise CaseRuleError(
                    "encoded_word_in_header_text",
                    f"the {field} {value!r} contains '=?', which mail programs decode as "
                    "the start of an RFC 2047 encoded-word; send the decoded text, or "
                    "write '= ?'",
                )

    # ---- status changes

    def check_change_status(self, actor: Actor, target: Status) -> None:
        check_transition(actor.role, self.status, target)

    def last_change_at(self) -> datetime:
        """Return the time of the case's last change: its status, a comment or a history entry.

        The opening entry is left out because it records when casedesk received
        the case; the status it set counts from ``status_since``, which an
        import may date earlier.
        """
        moments = [self.status_since]
        latest_entry = next(
            (
                entry
                for entry in reversed(self.history)
                if entry.event not in ("opened", "imported")
            ),
            None,
        )
        if latest_entry is not None:
            moments.append(latest_entry.at)
        if self.comments:
            moments.append(self.comments[-1].at)
        return max(moments)

    def effective_time(self, requested: datetime | None, now: datetime) -> datetime:
        """Return when a change takes effect: ``requested`` if given and valid, else ``now``.

        A caller that applies changes recorded elsewhere, such as the incident
        log replay, sends the time each change happened. It may not lie in the
        future, or before the case's last change, so the history stays in order
        and deadlines computed from it are never already overdue by design.
        """
        if requested is None:
            return now
        if requested > now:
            raise CaseRuleError(
                "effective_at_in_future",
                f"effective_at {requested.isoformat()} is later than now "
                f"({now.isoformat()}); send the time the change happened, or leave "
                "effective_at out",
            )
        last = self.last_change_at()
        if requested < last:
            raise CaseRuleError(
                "effective_at_before_last_change",
                f"effective_at {requested.isoformat()} is earlier than the case's last "
                f"change at {last.isoformat()}; send changes in the order they happened",
            )
        return requested

    def change_status(
        self,
        actor: Actor,
        target: Status,
        note: str,
        now: datetime,
        effective_at: datetime | None = None,
    ) -> None:
        """Move the case to ``target`` as of ``effective_at``, or as of ``now`` without it."""
        self.check_change_status(actor, target)
        at = self.effective_time(effective_at, now)
        self._enter_status(target, at, actor.role.value, actor.name, note)
        if target is Status.CLOSED:
            reason = f"closed by {actor.role.value}" + (f": {note}" if note else "")
            self.closure = Closure(
                at=at,
                actor_role=actor.role.value,
                actor_name=actor.name,
                reason=reason,
            )

    # ---- comments

    def check_add_comment(self, actor: Actor, body: str, internal: bool) -> None:
        if self.is_closed:
            raise CaseRuleError(
                "case_closed",
                f"case {self.case_number} is Closed and takes no more comments; "
                f"clone it (casedesk clone {self.case_number} NEW_NUMBER) to report "
                "further work",
            )
        if not body.strip():
            raise CaseRuleError(
                "comment_empty", "the comment body is empty; send some text"
            )
        if len(body) > MAX_COMMENT_LENGTH:
            raise CaseRuleError(
                "comment_too_long",
                f"the comment has {len(body)} characters and the limit is "
                f"{MAX_COMMENT_LENGTH}; split it or attach the text as a file",
            )
        used = sum(len(comment.body) for comment in self.comments)
        if used + len(body) > MAX_COMMENT_CHARACTERS_PER_CASE:
            raise CaseRuleError(
                "case_comment_storage_full",
                f"case {self.case_number} holds {used} characters of comments and the "
                f"limit is {MAX_COMMENT_CHARACTERS_PER_CASE}; clone the case to go on",
            )
        if internal and actor.role is Role.CUSTOMER:
            raise CaseRuleError(
                "internal_comment_by_customer",
                "role 'customer' may not post an internal comment; set internal to false",
            )

    def check_comment_storage(
        self, actor: Actor, body: str, internal: bool, now: datetime
    ) -> None:
        """Reject a comment that would take the case's comments over their byte limit.

        ``check_add_comment`` does not call this: the workflow calls it under
        a patch, so updates that cases already running accepted before this
        limit existed replay unchanged.
        """
        comment = Comment(
            at=now,
            actor_role=actor.role,
            actor_name=actor.name,
            body=body,
            internal=internal,
        )
        used = _json_bytes(self.comments)
        added = len(comment.model_dump_json().encode())
        if used + added > MAX_COMMENT_BYTES_PER_CASE:
            raise CaseRuleError(
                "case_comment_storage_full",
                f"case {self.case_number} holds {used} bytes of comments and this one "
                f"adds {added}, over the limit of {MAX_COMMENT_BYTES_PER_CASE} bytes "
                "(UTF-8 JSON); clone the case to go on",
            )

    def add_comment(
        self,
        actor: Actor,
        body: str,
        internal: bool,
        now: datetime,
        from_contact: bool = True,
    ) -> None:
        """Store a comment. A comment by the case's contact moves the case back to support."""
        self.check_add_comment(actor, body, internal)
        self.comments.append(
            Comment(
                at=now,
                actor_role=actor.role,
                actor_name=actor.name,
                body=body,
                internal=internal,
                from_contact=from_contact,
            )
        )
        self.last_action = f"comment by {actor.role.value}"
        if actor.role is not Role.CUSTOMER or not from_contact:
            return
        target = CUSTOMER_COMMENT_MOVES.get(self.status)
        if target is not None:
            self._enter_status(
                target, now, actor.role.value, actor.name, "customer commented"
            )

    # ---- other edits: none of them moves a deadline

    def check_change_priority(self, actor: Actor, priority: Priority) -> None:
        if self.is_closed:
            raise CaseRuleError(
                "case_closed",
                f"case {self.case_number} is Closed; clone it to change its priority",
            )
        if actor.role is not Role.SUPPORT:
            raise CaseRuleError(
                "priority_change_not_allowed",
                f"role {actor.role.value!r} may not change the priority; only 'support' may",
            )
        if priority is self.priority:
            raise CaseRuleError(
                "priority_unchanged", f"the priority is already {priority.value!r}"
            )
        if self.status is Status.PENDING_WORK_PLAN:
            _check_work_plan_allowed(priority, self.affects_multiple_institutions)

    def change_priority(
        self, actor: Actor, priority: Priority, note: str, now: datetime
    ) -> None:
        self.check_change_priority(actor, priority)
        previous = self.priority
        self.priority = priority
        text = f"priority {previous.value} -> {priority.value}" + (
            f": {note}" if note else ""
        )
        self._append_history(
            HistoryEntry(
                at=now,
                event="priority_changed",
                from_status=self.status,
                to_status=self.status,
                actor_role=actor.role.value,
                actor_name=actor.name,
                note=text,
            )
        )
        self.last_action = f"priority changed by {actor.role.value}"

    # ---- deadlines

    def next_deadline(self) -> Deadline | None:
        return min(self.deadlines, key=lambda d: d.due_at, default=None)

    def due_deadlines(self, now: datetime) -> list[Deadline]:
        """Return the deadlines due at ``now``, earliest first.

        When a closure is due, reminders due with it are left out: a customer
        should not be reminded about a case that closes at the same moment.
        """
        due = sorted(
            (d for d in self.deadlines if d.due_at <= now), key=lambda d: d.due_at
        )
        closures = [d for d in due if d.kind is DeadlineKind.CLOSURE]
        return closures[:1] if closures else due

    def record_reminder_sent(self, deadline: Deadline, now: datetime) -> None:
        self.reminders_sent += 1
        self._append_history(
            HistoryEntry(
                at=now,
                event="reminder_sent",
                from_status=self.status,
                to_status=self.status,
                actor_role=SYSTEM_ROLE,
                note=deadline.description,
            )
        )
        self.last_action = "reminder email sent"

    def enable_all_notices(self, now: datetime) -> None:
        """Turn on the full set of notices and arm a pending reassessment reminder."""
        if self.sends_all_notices:
            return
        self.sends_all_notices = True
        self.deadlines.extend(self._reassessment_deadlines(after=now))

    def record_reassessment_sent(self, deadline: Deadline, now: datetime) -> None:
        self._append_history(
            HistoryEntry(
                at=now,
                event="reassessment_sent",
                from_status=self.status,
                to_status=self.status,
                actor_role=SYSTEM_ROLE,
                note=f"{deadline.description} (number {deadline.occurrence})",
            )
        )

    def arm_next_reassessment(self, deadline: Deadline) -> None:
        """Arm the reassessment reminder after ``deadline`` if the case is still in its status."""
        if self.status_entry != deadline.status_entry or self.is_closed:
            return
        self.deadlines.extend(self._reassessment_deadlines(after=deadline.due_at))

    def take_deadline(self, deadline: Deadline) -> None:
        """Remove ``deadline`` from the pending ones once its action has started."""
        self.deadlines = [d for d in self.deadlines if d != deadline]

    def close_by_timer(self, deadline: Deadline, now: datetime) -> None:
        reason = f"closed automatically: {deadline.description}"
        self._enter_status(Status.CLOSED, now, SYSTEM_ROLE, "", reason)
        self.closure = Closure(
            at=now, actor_role=SYSTEM_ROLE, rule=deadline.rule, reason=reason
        )

    # ---- failures and rejected input

    def record_email_failure(
        self, kind: str, error: str, now: datetime, message_key: str = ""
    ) -> None:
        self.email_failures.append(
            EmailFailure(at=now, notice=kind, message_key=message_key, error=error)
        )
        del self.email_failures[:-MAX_EMAIL_FAILURES]
        self._append_history(
            HistoryEntry(
                at=now,
                event="email_failed",
                from_status=self.status,
                to_status=self.status,
                actor_role=SYSTEM_ROLE,
                note=f"{kind} email failed: {error}"[:MAX_NOTE_LENGTH],
                rejected=False,
            )
        )

    def record_rejected_signal(
        self,
        signal: str,
        reason: str,
        requested_status: Status | None,
        actor_role: str,
        actor_name: str,
        now: datetime,
    ) -> None:
        """Record a rejected signal with the sender it claimed ("unknown" when none)."""
        self._append_history(
            HistoryEntry(
                at=now,
                event="signal_rejected",
                from_status=self.status,
                to_status=requested_status,
                actor_role=actor_role,
                actor_name=actor_name,
                note=f"signal {signal!r} rejected: {reason}"[:MAX_NOTE_LENGTH],
                rejected=True,
            )
        )

    # ---- internals

    def _enter_status(
        self, target: Status, now: datetime, role: str, name: str, note: str
    ) -> None:
        previous = self.status
        self.status = target
        self.status_since = now
        self.status_entry += 1
        self._append_history(
            HistoryEntry(
                at=now,
                event="status_changed",
                from_status=previous,
                to_status=target,
                actor_role=role,
                actor_name=name,
                note=note[:MAX_NOTE_LENGTH],
            )
        )
        self.last_action = f"status changed by {role}"
        self._arm_deadlines()

    def _arm_deadlines(self) -> None:
        self.deadlines = [
            self._deadline_for(rule)
            for rule in self.policy.rules_for(self.status)
            if rule.kind is not DeadlineKind.REASSESSMENT
        ]
        if self.sends_all_notices:
            self.deadlines.extend(self._reassessment_deadlines(after=self.status_since))

    def _reassessment_deadlines(self, after: datetime) -> list[Deadline]:
        """Return the first reassessment reminder of this status entry due later than ``after``."""
        for rule in self.policy.rules_for(self.status):
            if rule.kind is not DeadlineKind.REASSESSMENT:
                continue
            # Bounded by the closure: a Pending Work Plan case closes after
            # pending_work_plan_closure, so later reminders never fire.
            for occurrence in range(1, MAX_REASSESSMENTS + 1):
                try:
                    period = rule.after.times(occurrence)
                except ValueError:
                    return []
                due_at = add_period(
                    self.status_since, period, self.institution.time_zone
                )
                if due_at > after:
                    deadline = self._deadline_for(rule)
                    return [
                        deadline.model_copy(
                            update={"due_at": due_at, "occurrence": occurrence}
                        )
                    ]
        return []

    def _deadline_for(self, rule: StatusDeadlineRule) -> Deadline:
        return Deadline(
            kind=rule.kind,
            due_at=add_period(
                self.status_since, rule.after, self.institution.time_zone
            ),
            status=rule.status,
            rule=rule.name,
            description=rule.describe(),
            status_entry=self.status_entry,
        )

    def _append_history(self, entry: HistoryEntry) -> None:
        self.history.append(entry)
        overflow = len(self.history) - MAX_HISTORY_ENTRIES
        if overflow > 0:
            # The oldest entries go first; Temporal's event history keeps them all.
            del self.history[:overflow]
            self.history_entries_dropped += overflow
        excess = _json_bytes(self.history) - MAX_HISTORY_BYTES
        if excess > 0:
            dropped = 0
            while excess > 0 and dropped < len(self.history) - 1:
                excess -= len(self.history[dropped].model_dump_json().encode()) + 1
                dropped += 1
            del self.history[:dropped]
            self.history_entries_dropped += dropped


def _json_bytes(models: list[Comment] | list[HistoryEntry]) -> int:
    """Return the size in bytes of ``models`` as one UTF-8 JSON array."""
    return len(_MODEL_LIST_ADAPTER.dump_json(models))


_MODEL_LIST_ADAPTER: TypeAdapter[list[Comment] | list[HistoryEntry]] = TypeAdapter(
    list[Comment] | list[HistoryEntry]
)


# The status a customer's comment moves a case to, by its current status.
# Staff comments never move a case.
CUSTOMER_COMMENT_MOVES: dict[Status, Status] = {
    Status.PENDING_CUSTOMER_INPUT: Status.UPDATE_RECEIVED,
    Status.AWAITING_CUSTOMER_CONFIRMATION: Status.REOPENED,
    Status.PENDING_CUSTOMER_TESTING: Status.UPDATE_RECEIVED,
}


def _check_work_plan_allowed(
    priority: Priority, affects_multiple_institutions: bool
) -> None:
    if priority not in (Priority.NORMAL, Priority.LOW):
        raise CaseRuleError(
            "work_plan_priority",
            f"a case in 'Pending Work Plan' must have priority Normal or Low, not "
            f"{priority.value!r}; keep its priority at Normal or Low, or move it out of "
            "Pending Work Plan first (an import: import it in another status)",
        )
    if affects_multiple_institutions:
        raise CaseRuleError(
            "work_plan_multiple_institutions",
            "a case in 'Pending Work Plan' may not affect several institutions; "
            "import it in another status",
        )
