"""Replay a ServiceNow incident event log through SupportCase workflows.

Each incident becomes a case. Its rows are applied in order at their own
times on a time-skipping Temporal test server, so the reminders and closures
the log never had happen at the times casedesk's timers compute. The
summary counts come from the workflows' final records and the email outbox.
"""

import argparse
import asyncio
import csv
import heapq
import io
import itertools
import json
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import google.protobuf.empty_pb2
import structlog
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from tqdm import tqdm

from activities.email import EmailSettings
from domain.case import Actor, Case, CaseInput, Contact, Institution
from domain.deadlines import CasePolicy, DeadlineKind
from domain.statuses import Priority, Role, Status
from starter import client as cases
from starter.config import case_policy, data_converter
from worker import build_worker, ensure_search_attributes
from workflows.messages import ChangeStatusInput
from workflows.support_case import SupportCase

log = structlog.get_logger("casedesk.replay")

CaseKey = TypeVar("CaseKey", bound=Hashable)

# ServiceNow incident_state values and the casedesk status each one becomes.
# Rows with any other value (the log has a corrupt "-100") are skipped.
STATUS_MAP: dict[str, Status] = {
    "New": Status.NEW,
    "Active": Status.IN_PROGRESS,
    "Awaiting User Info": Status.PENDING_CUSTOMER_INPUT,
    "Awaiting Evidence": Status.PENDING_CUSTOMER_INPUT,
    "Awaiting Vendor": Status.PENDING_THIRD_PARTY_PROVIDER,
    "Awaiting Problem": Status.PENDING_DEVELOPMENT,
    "Resolved": Status.AWAITING_CUSTOMER_CONFIRMATION,
    "Closed": Status.CLOSED,
}

PRIORITY_MAP = {
    "1 - Critical": Priority.CRITICAL,
    "2 - High": Priority.HIGH,
    "3 - Moderate": Priority.NORMAL,
    "4 - Low": Priority.LOW,
}

REPLAY_ACTOR = Actor(role=Role.SUPPORT, name="incident log replay")
# How many incidents are acted on at once.
CONCURRENCY = 64
# Notices the replay's notification worker hands out per second; high enough
# never to hold the replay back.
REPLAY_MAIL_MAX_PER_SECOND = 100_000.0
# Workflow tasks the replay's worker runs at once.
WORKFLOW_TASK_SLOTS = 16
# Incidents replayed on one private test server. The time-skipping test
# server's CPU time per incident grows with the workflows it keeps: 13 ms at
# 1,000 incidents, 79 ms at all 24,918. Incidents do not affect each other,
# so the replay starts a fresh server for each part.
PART_SIZE = 5_000
# Tries of a query that fails because its workflow task failed.
QUERY_ATTEMPTS = 5
# Deadlines due this soon after a row's instant fire before the row; see
# plan_batch. Rows are whole minutes apart, so this never reorders them.
TIMER_GUARD = timedelta(seconds=5)


@dataclass
class Row:
    status: Status | None
    raw_status: str
    updated_at: datetime
    mod_count: int
    fields: dict[str, str]


@dataclass
class Incident:
    number: str
    rows: list[Row] = field(default_factory=list)


@dataclass
class IncidentLog:
    incidents: list[Incident]
    rows_read: int


def parse_log_time(text: str) -> datetime:
    """Parse the log's ``day/month/year hour:minute``, read as UTC."""
    return datetime.strptime(text, "%d/%m/%Y %H:%M").replace(tzinfo=UTC)


def _open_csv(path: Path) -> Iterator[dict[str, str]]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".csv")]
            if len(names) != 1:
                raise ValueError(
                    f"{path} contains {len(names)} CSV files; expected exactly one"
                )
            with archive.open(names[0]) as raw:
                yield from csv.DictReader(
                    io.TextIOWrapper(raw, encoding="utf-8", newline="")
                )
    else:
        with path.open(encoding="utf-8", newline="") as text:
            yield from csv.DictReader(text)


def read_incident_log(path: Path, limit: int | None = None) -> IncidentLog:
    """Group the log's rows by incident, in file order, each sorted by time then mod count.

    With ``limit``, only the first ``limit`` incidents in file order are kept,
    with all of their rows wherever they appear in the file.
    """
    incidents: dict[str, Incident] = {}
    rows_read = 0
    for record in _open_csv(path):
        number = record["number"]
        incident = incidents.get(number)
        if incident is None:
            if limit is not None and len(incidents) >= limit:
                continue
            incident = incidents[number] = Incident(number)
        rows_read += 1
        incident.rows.append(
            Row(
                status=STATUS_MAP.get(record["incident_state"]),
                raw_status=record["incident_state"],
                updated_at=parse_log_time(record["sys_updated_at"]),
                mod_count=int(record["sys_mod_count"]),
                fields=record,
            )
        )
    for incident in incidents.values():
        incident.rows.sort(key=lambda row: (row.updated_at, row.mod_count))
    return IncidentLog(incidents=list(incidents.values()), rows_read=rows_read)


class TestServerClock:
    """The virtual clock of a time-skipping Temporal test server."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def now(self) -> datetime:
        response = await self._client.test_service.get_current_time(
            google.protobuf.empty_pb2.Empty()
        )
        return response.time.ToDatetime().replace(tzinfo=UTC)

    async def advance_to(self, instant: datetime) -> None:
        remaining = instant - await self.now()
        if remaining > timedelta(0):
            request = SleepRequest()
            request.duration.FromTimedelta(remaining)
            await self._client.test_service.unlock_time_skipping_with_sleep(request)


@dataclass
class Counts:
    rows_skipped_unknown_status: int = 0
    status_changes_applied: int = 0
    rows_no_change: int = 0
    rows_rejected_case_closed: int = 0
    rows_rejected_other: int = 0

    def add(self, other: "Counts") -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


class IncidentReplay:
    """Drives one incident's rows through its case, keeping the last known state."""

    def __init__(self, incident: Incident, replayer: "Replayer") -> None:
        self.incident = incident
        self.replayer = replayer
        self.case: Case | None = None
        self.handle: WorkflowHandle[SupportCase, Case] | None = None

    def case_input(
        self, first: Row, status_since: datetime, policy: CasePolicy
    ) -> CaseInput:
        fields = first.fields
        caller = fields.get("caller_id", "?")
        location = fields.get("location", "?")
        subject = " / ".join(
            part
            for part in (fields.get("category"), fields.get("subcategory"))
            if part and part != "?"
        )
        return CaseInput(
            case_number=self.incident.number,
            subject=f"Incident {self.incident.number}"
            + (f": {subject}" if subject else ""),
            priority=PRIORITY_MAP.get(fields.get("priority", ""), Priority.NORMAL),
            institution=Institution(
                id=location if location != "?" else "unknown",
                name=location if location != "?" else "unknown",
            ),
            contact=Contact(
                name=caller if caller != "?" else "unknown caller",
                email=f"{_slug(caller)}@replay.example.org",
            ),
            product=fields.get("category", "") if fields.get("category") != "?" else "",
            status=first.status,
            status_since=status_since,
            policy=policy,
        )

    async def refresh_until_deadlines_passed(self, instant: datetime) -> None:
        """Wait until the workflow has acted on every deadline due at or before ``instant``.

        The server fires timers while its clock moves; the worker may still be
        running the workflow task when the clock stops.
        """
        if self.case is None:
            return
        reminders_due = sum(
            1
            for deadline in self.case.deadlines
            if deadline.due_at <= instant and deadline.kind is DeadlineKind.REMINDER
        )
        # A reminder is recorded once its email activity has finished, after
        # the timer. Waiting for it keeps the case's last change, which the
        # next row's effective time may not precede, known here.
        expected_entries = _email_outcomes(self.case) + reminders_due
        while self.case is not None:
            due = [d for d in self.case.deadlines if d.due_at <= instant]
            if not due and _email_outcomes(self.case) >= expected_entries:
                return
            await asyncio.sleep(0.01)
            await self.refresh()

    async def refresh(self) -> None:
        assert self.handle is not None
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            try:
                case = await self.handle.query(SupportCase.get_case)
                break
            except WorkflowQueryFailedError as err:
                # A workflow task that exceeded the SDK's deadlock limit on a
                # starved CPU fails the query too; the server retries the task.
                if attempt == QUERY_ATTEMPTS:
                    raise
                log.warning(
                    "replay.query_failed",
                    case=self.incident.number,
                    attempt=attempt,
                    error=str(err),
                )
                await asyncio.sleep(attempt)
        self.set_case(case)

    def set_case(self, case: Case) -> None:
        self.case = case
        self.replayer.deadlines.track(self)

    def next_due(self) -> datetime | None:
        if self.case is None or not self.case.deadlines:
            return None
        return min(deadline.due_at for deadline in self.case.deadlines)

    async def apply(self, row: Row, at: datetime, counts: Counts) -> None:
        if row.status is None:
            counts.rows_skipped_unknown_status += 1
            return
        if self.case is None:
            await self._open(row, at)
            return
        await self.refresh_until_deadlines_passed(at)
        if self.case.is_closed and row.status is Status.CLOSED:
            counts.rows_no_change += 1
            return
        if row.status is self.case.status:
            counts.rows_no_change += 1
            return
        try:
            updated = await cases.change_status(
                self.replayer.client,
                self.incident.number,
                ChangeStatusInput(
                    status=row.status,
                    actor=REPLAY_ACTOR,
                    note="incident log row",
                    # A row on the minute of a deadline that has fired comes
                    # after it, as the timer's entry is the case's last change.
                    effective_at=max(at, self.case.last_change_at()),
                ),
                update_id=f"replay-{self.incident.number}-{row.mod_count}-{row.raw_status}",
            )
        except (cases.CaseClosedError, cases.ActionRejectedError) as err:
            if isinstance(err, cases.CaseClosedError) or err.code == "case_closed":
                counts.rows_rejected_case_closed += 1
            else:
                counts.rows_rejected_other += 1
                log.warning(
                    "replay.row_rejected", case=self.incident.number, error=str(err)
                )
            return
        assert updated is not None
        self.set_case(updated)
        counts.status_changes_applied += 1

    async def _open(self, row: Row, at: datetime) -> None:
        request = self.case_input(row, at, self.replayer.policy)
        opened = await cases.open_case(
            self.replayer.client, request, task_queue=self.replayer.task_queue
        )
        self.handle = opened.handle
        # The workflow opens the case from the same input, and its deadlines
        # run from status_since, so this copy matches the workflow's case in
        # every field the replay reads, without a query. Only the opening
        # entry's time differs: the workflow's clock may be later in the
        # batch.
        self.set_case(Case.open(request, at))

    async def final(self) -> Case:
        return await cases.get_case(self.replayer.client, self.incident.number)


def _email_outcomes(case: Case) -> int:
    return sum(
        1 for entry in case.history if entry.event in ("reminder_sent", "email_failed")
    )


def _slug(text: str) -> str:
    return (
        "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
        or "unknown"
    )


class DeadlineQueue:
    """The pending deadlines of all replayed cases, earliest first.

    Each case is queued under its earliest deadline whenever the replay learns
    its state. An entry whose case has since moved on is dropped when it
    reaches the front.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, IncidentReplay]] = []
        self._order = itertools.count()

    def track(self, replay: IncidentReplay) -> None:
        due = replay.next_due()
        if due is not None:
            heapq.heappush(self._heap, (due, next(self._order), replay))

    def earliest(self) -> datetime | None:
        while self._heap:
            due, _, replay = self._heap[0]
            if replay.next_due() == due:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_window(self, horizon: datetime) -> list[tuple[datetime, IncidentReplay]]:
        """Remove the cases with a deadline due by ``horizon`` and return all their deadlines, earliest first."""
        popped: dict[int, IncidentReplay] = {}
        while (earliest := self.earliest()) is not None and earliest <= horizon:
            _, _, replay = heapq.heappop(self._heap)
            popped[id(replay)] = replay
        return sorted(
            (
                (deadline.due_at, replay)
                for replay in popped.values()
                if replay.case is not None
                for deadline in replay.case.deadlines
            ),
            key=lambda pair: pair[0],
        )


def plan_batch(
    instants: Sequence[datetime],
    start: int,
    cases_at: Callable[[datetime], Iterable[CaseKey]],
    deadlines: Sequence[tuple[datetime, CaseKey]],
    max_span: timedelta,
) -> tuple[int, int]:
    """Choose the instants and deadlines of the batch that begins at ``instants[start]``.

    Returns ``(end, fired)``: the batch applies the rows of
    ``instants[start:end]`` and lets ``deadlines[:fired]`` fire, all with one
    move of the server's clock. ``cases_at`` names the cases with rows at an
    instant, and ``deadlines`` are the pending deadlines due by the end of the
    longest batch, earliest first.

    A deadline fires in the batch only if its case has no row in the batch
    before it, since such a row could cancel or move it; the batch ends
    before the first instant that would break this. Rows of other cases do
    not hold the clock back. A deadline due up to ``TIMER_GUARD`` after a row
    of its case fires before that row, and every deadline due within
    ``TIMER_GUARD`` of the batch's last instant fires in the batch. Otherwise
    the test server's clock, which runs on in real time while the rows are
    applied, could fire a timer while a workflow task that cancels it runs:
    the server then rejects that task's completion ("invalid history builder
    state for action", temporalio/sdk-java issue 3088) and never sends the
    task again. The batch spans less than ``max_span``, so no deadline armed
    by one of its rows comes due inside it.
    """
    first_row: dict[CaseKey, datetime] = {}
    fired = 0
    end = start
    while end < len(instants):
        at = instants[end]
        if end > start and at - instants[start] >= max_span:
            break
        due_by = fired
        while due_by < len(deadlines) and deadlines[due_by][0] <= at + TIMER_GUARD:
            due, case = deadlines[due_by]
            row_at = first_row.get(case)
            if row_at is not None and row_at + TIMER_GUARD < due:
                return end, fired
            due_by += 1
        fired = due_by
        for case in cases_at(at):
            first_row.setdefault(case, at)
        end += 1
    return end, fired


def shortest_period(policy: CasePolicy) -> timedelta:
    """Return a lower bound of the shortest deadline period of ``policy``.

    A month counts as 28 days and a day as 23 hours, the shortest a calendar
    day gets when daylight saving time starts.
    """
    # The deadline rules of every status, and not every field of the policy:
    # the email delivery window is no deadline.
    periods = [rule.after for status in Status for rule in policy.rules_for(status)]
    return min(
        timedelta(days=28 * period.months)
        + timedelta(hours=23 * period.days)
        + timedelta(seconds=period.seconds)
        for period in periods
    )


class Replayer:
    """Apply the log's rows to their cases in batches of instants.

    Each status change is sent with its log time as ``effective_at``, so the
    rows of many instants are applied at once while the server's clock is at
    the batch's end. Deadlines that no row of their own case precedes in the
    batch fire in the same move of the clock; ``plan_batch`` decides where a
    batch must end.
    """

    def __init__(
        self,
        client: Client,
        clock: TestServerClock,
        *,
        task_queue: str,
        policy: CasePolicy,
    ) -> None:
        self.client = client
        self.clock = clock
        self.task_queue = task_queue
        self.policy = policy
        self.deadlines = DeadlineQueue()
        self.limiter = asyncio.Semaphore(CONCURRENCY)
        self.batches = 0

    async def run(
        self, log_data: IncidentLog, bar: "tqdm[Any]"
    ) -> tuple[Counts, list[Case]]:
        counts = Counts()
        replays = [IncidentReplay(incident, self) for incident in log_data.incidents]
        timeline: dict[datetime, list[tuple[IncidentReplay, Row]]] = defaultdict(list)
        for replay in replays:
            for row in replay.incident.rows:
                timeline[row.updated_at].append((replay, row))
        if not timeline:
            return counts, []

        # The log's first instant maps to a minute after the server's current
        # time, so every row is in the server's future when its turn comes.
        offset = (await self.clock.now() + timedelta(minutes=1)) - min(timeline)
        instants = [instant + offset for instant in sorted(timeline)]
        # Less than the shortest period by the guard and a second more, so a
        # deadline armed by a row lies past every deadline the batch fires.
        max_span = shortest_period(self.policy) - TIMER_GUARD - timedelta(seconds=1)

        async def apply_rows(
            replay: IncidentReplay,
            rows: list[tuple[Row, datetime]],
            fired: bool,
            clock_at: datetime,
        ) -> None:
            async with self.limiter:
                if fired:
                    # The case's deadlines in this batch all precede its rows.
                    await replay.refresh_until_deadlines_passed(clock_at)
                for row, at in rows:
                    await replay.apply(row, at, counts)
            bar.update(len(rows))

        start = 0
        while start < len(instants):
            window = self.deadlines.pop_window(instants[start] + max_span + TIMER_GUARD)
            end, fired = plan_batch(
                instants,
                start,
                lambda at: (replay for replay, _ in timeline[at - offset]),
                window,
                max_span,
            )
            firing = {id(replay): replay for _, replay in window[:fired]}
            for _, replay in window[fired:]:
                if id(replay) not in firing:
                    self.deadlines.track(replay)
            clock_at = instants[end - 1]
            if fired:
                # A timer fires once the clock has passed its due time.
                clock_at = max(
                    clock_at, window[fired - 1][0] + timedelta(milliseconds=1)
                )
            await self.clock.advance_to(clock_at)
            by_incident: dict[
                int, tuple[IncidentReplay, list[tuple[Row, datetime]]]
            ] = {}
            for at in instants[start:end]:
                for replay, row in timeline[at - offset]:
                    by_incident.setdefault(id(replay), (replay, []))[1].append(
                        (row, at)
                    )
            await asyncio.gather(
                *(
                    apply_rows(replay, rows, id(replay) in firing, clock_at)
                    for replay, rows in by_incident.values()
                ),
                *(
                    self._refresh_until(replay, clock_at)
                    for key, replay in firing.items()
                    if key not in by_incident
                ),
            )
            self.batches += 1
            start = end

        # The rows have ended; the timers still pending run to their end.
        last_due = max(
            (d.due_at for r in replays if r.case is not None for d in r.case.deadlines),
            default=None,
        )
        if last_due is not None:
            await self.clock.advance_to(last_due + timedelta(seconds=1))
            await asyncio.gather(
                *(self._refresh_until(replay, last_due) for replay in replays)
            )
        log.info("replay.batches", batches=self.batches, instants=len(instants))

        async def final(replay: IncidentReplay) -> Case:
            async with self.limiter:
                return await replay.final()

        finals = list(
            await asyncio.gather(*(final(r) for r in replays if r.handle is not None))
        )
        return counts, finals

    async def _refresh_until(self, replay: IncidentReplay, instant: datetime) -> None:
        async with self.limiter:
            await replay.refresh_until_deadlines_passed(instant)


def summarize(
    log_data: IncidentLog, counts: Counts, finals: list[Case], outbox: Path | None
) -> dict[str, Any]:
    auto_closed: Counter[str] = Counter()
    for case in finals:
        if case.closure and case.closure.rule:
            auto_closed[_rule_status(case)] += 1
    reminders = sum(case.reminders_sent for case in finals)
    summary: dict[str, Any] = {
        "rows_read": log_data.rows_read,
        "rows_skipped_unknown_status": counts.rows_skipped_unknown_status,
        "incidents": len(finals),
        "status_changes_applied": counts.status_changes_applied,
        "rows_no_change": counts.rows_no_change,
        "rows_rejected_case_closed": counts.rows_rejected_case_closed,
        "reminders_sent": reminders,
        "auto_closed": dict(sorted(auto_closed.items())),
        "final": dict(sorted(Counter(case.status.value for case in finals).items())),
    }
    if counts.rows_rejected_other:
        summary["rows_rejected_other"] = counts.rows_rejected_other
    if outbox is not None:
        summary["reminder_emails_in_outbox"] = _count_reminder_emails(outbox)
    return summary


def _rule_status(case: Case) -> str:
    last_change = next(
        entry
        for entry in reversed(case.history)
        if entry.event == "status_changed" and entry.to_status is Status.CLOSED
    )
    assert last_change.from_status is not None
    return last_change.from_status.value


def _count_reminder_emails(outbox: Path) -> int:
    count = 0
    for sub in ("new", "cur"):
        folder = outbox / sub
        if folder.exists():
            for file in folder.iterdir():
                with file.open("rb") as message:
                    head = message.read(4096)
                if b"X-Casedesk-Notice: reminder" in head:
                    count += 1
    return count


async def replay_log(
    path: Path,
    *,
    limit: int | None = None,
    address: str | None = None,
    outbox: Path | None = None,
    policy: CasePolicy | None = None,
    progress: bool = False,
    part_size: int = PART_SIZE,
) -> dict[str, Any]:
    """Replay the log at ``path`` and return the summary.

    Without ``address`` the incidents are replayed in parts of ``part_size``,
    each on a private time-skipping test server that is started and stopped.
    With one, that server must be a time-skipping test server too, because
    the replay moves its clock, and it replays every incident.
    """
    if part_size < 1:
        raise ValueError(f"invalid part size {part_size}: give 1 or more incidents")
    log_data = read_incident_log(path, limit)
    policy = policy or case_policy()
    task_queue = f"casedesk-replay-{int(time.time())}"
    counts = Counts()
    finals: list[Case] = []
    bar = tqdm(
        total=log_data.rows_read, unit="row", disable=not progress, file=sys.stderr
    )
    with tempfile.TemporaryDirectory(prefix="casedesk-replay-") as scratch, bar:
        outbox = outbox or Path(scratch) / "outbox"
        settings = EmailSettings(outbox_dir=outbox)
        if address is not None:
            client = await Client.connect(address, data_converter=data_converter())
            counts, finals = await _replay_on(
                client, log_data.incidents, task_queue, settings, policy, bar
            )
        else:
            incidents = log_data.incidents
            for first in range(0, len(incidents), part_size):
                env = await WorkflowEnvironment.start_time_skipping(
                    data_converter=data_converter(),
                    test_server_existing_path=str(
                        Path(sys.executable).parent / "temporal-test-server"
                    ),
                )
                async with env:
                    part_counts, part_finals = await _replay_on(
                        env.client,
                        incidents[first : first + part_size],
                        task_queue,
                        settings,
                        policy,
                        bar,
                    )
                counts.add(part_counts)
                finals += part_finals
        return summarize(log_data, counts, finals, settings.outbox_dir)


async def _replay_on(
    client: Client,
    incidents: list[Incident],
    task_queue: str,
    settings: EmailSettings,
    policy: CasePolicy,
    bar: "tqdm[Any]",
) -> tuple[Counts, list[Case]]:
    clock = TestServerClock(client)
    try:
        await clock.now()
    except RPCError as err:
        if err.status == RPCStatusCode.UNIMPLEMENTED:
            raise ValueError(
                "the server does not support time skipping, and a replay moves the "
                "server's clock through a year of history; leave out --address to use a "
                "private time-skipping server, or point it at a running "
                "temporal-test-server"
            ) from err
        raise
    await ensure_search_attributes(client)
    # The replay keeps thousands of cases open at once; a larger cache saves
    # replaying their histories on every workflow task. Workflow tasks run in
    # threads that share one GIL, so more of them at once adds no throughput,
    # and on a busy machine each one then takes longer than the SDK's 2-second
    # deadlock limit.
    worker = build_worker(
        client,
        task_queue=task_queue,
        email_settings=settings,
        # The replay writes notices to a local Maildir, so the rate limit that
        # protects a mail provider would only stretch the replay.
        mail_max_per_second=REPLAY_MAIL_MAX_PER_SECOND,
        max_cached_workflows=10_000,
        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
    )
    async with worker:
        replayer = Replayer(client, clock, task_queue=task_queue, policy=policy)
        rows = sum(len(incident.rows) for incident in incidents)
        return await replayer.run(IncidentLog(incidents, rows_read=rows), bar)


def run_replay_command(args: argparse.Namespace) -> int:
    from starter.logs import configure_logging

    configure_logging("WARNING")
    if not args.path.exists():
        print(f"casedesk replay: {args.path} not found", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        summary = asyncio.run(
            replay_log(
                args.path,
                limit=args.limit,
                address=args.address,
                progress=not args.no_progress,
            )
        )
    except ValueError as err:
        print(f"casedesk replay: {err}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    text = json.dumps(summary, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print(
        f"replayed {summary['rows_read']} rows of {summary['incidents']} incidents in "
        f"{elapsed:.1f} s ({summary['rows_read'] / max(elapsed, 1e-9):.0f} rows/s)",
        file=sys.stderr,
    )
    return 0
