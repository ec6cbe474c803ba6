"""Turn customers' email replies into comments on their cases.

``casedesk mail ingest`` reads RFC 5322 messages from files, standard input or
a Maildir folder. It finds the case by the casedesk Message-ID in In-Reply-To
or References, then by ``[Case N]`` in the subject, and adds the new part of
the reply as a customer comment through the ``add_comment`` update. The update
id is derived from the inbound Message-ID, so a message applied twice (a
restart, an MTA that delivers again) adds one comment.

Automatic replies, bounces and casedesk's own notices coming back are logged
and skipped. The sender of a reply to a Closed case gets a notice that says
how to clone the case.

Exit status: 0 when every message was applied, skipped or replied to with a
notice; 1 when a
case rejected a comment; 2 for invalid input or configuration; 3 when a
message names no case or a case that does not exist; 75 (EX_TEMPFAIL of
sysexits.h) when Temporal or the SMTP server could not be reached, so an MTA
that pipes a message into the command delivers it again later.
"""

import argparse
import asyncio
import contextlib
import email.errors
import hashlib
import signal
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.email import EmailSettings, InvalidHeaderError
from domain.case import Actor, Case
from domain.statuses import Role
from starter import client as cases
from starter.clone_notice import (
    NoticeNotSentError,
    NoticeRejectedError,
    compose_clone_notice,
    reply_address,
    send_notice,
)
from starter.mail_reading import (
    comment_body,
    find_case_number,
    inbound_message_id,
    parse_message,
    sender_address,
    sender_name,
    skip_reason,
)
from workflows.messages import AddCommentInput

log = structlog.get_logger("casedesk.mail_ingest")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_TEMPORARY_FAILURE = 75


class TemporaryFailure(Exception):
    """Temporal or the SMTP server failed in a way that a later attempt may not."""


Result = Literal["applied", "skipped", "notice_sent", "rejected", "not_found"]
EXIT_CODES: dict[Result, int] = {
    "applied": EXIT_OK,
    "skipped": EXIT_OK,
    "notice_sent": EXIT_OK,
    "rejected": EXIT_REJECTED,
    "not_found": EXIT_NOT_FOUND,
}

UPDATE_ID_PREFIX = "mail-"


@dataclass(frozen=True)
class Outcome:
    """The result of one inbound message, without any address or body in it."""

    result: Result
    message_id: str
    case_number: str | None
    reason: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.result]

    def describe(self) -> str:
        case = f"case {self.case_number}" if self.case_number else "no case"
        return f"{self.result} {case} {self.message_id}: {self.reason}"


# ---- applying one message


def update_id_for(message_id: str) -> str:
    """Derive the add_comment update id, so the same message is applied once."""
    return UPDATE_ID_PREFIX + hashlib.sha256(message_id.encode()).hexdigest()[:40]


async def ingest_message(
    client: Client, data: bytes, settings: EmailSettings
) -> Outcome:
    """Apply one inbound message to its case, or record why it was skipped.

    Raises ``TemporaryFailure`` when Temporal or the SMTP server failed, so the
    caller keeps the message and tries again later.
    """
    message = parse_message(data)
    message_id = inbound_message_id(message, data)
    try:
        case_number, matched_by = find_case_number(message, settings)
        reason = skip_reason(message, settings)
    except (ValueError, LookupError, email.errors.MessageError) as err:
        # A header the email package cannot parse. Skipping the message keeps
        # a Maildir watch from reading it again and again.
        return _record(
            "skipped", message_id, None, f"unreadable message: {type(err).__name__}"
        )
    if reason is not None:
        return _record("skipped", message_id, case_number, reason)
    if case_number is None:
        return _record(
            "not_found",
            message_id,
            None,
            "no case reference: neither a casedesk Message-ID in In-Reply-To or "
            "References nor [Case N] in the subject",
        )
    try:
        return await _apply_reply(
            client, message, message_id, case_number, matched_by, settings
        )
    except RPCError as err:
        raise TemporaryFailure(
            f"Temporal returned an error for case {case_number}: {err}"
        ) from err


async def _apply_reply(
    client: Client,
    message: EmailMessage,
    message_id: str,
    case_number: str,
    matched_by: str,
    settings: EmailSettings,
) -> Outcome:
    try:
        case = await _open_case_or_none(client, case_number)
    except cases.CaseNotFoundError:
        return _record(
            "not_found", message_id, case_number, f"case not found (by {matched_by})"
        )
    if case is None or case.is_closed:
        return await _answer_closed(message, message_id, case_number, case, settings)
    try:
        body = comment_body(message)
    except (ValueError, LookupError, email.errors.MessageError) as err:
        return _record(
            "skipped", message_id, case_number, f"unreadable body: {type(err).__name__}"
        )
    if not body:
        return _record("skipped", message_id, case_number, "empty reply")
    from_contact = sender_address(message).lower() == case.contact.email.lower()
    request = AddCommentInput(
        actor=Actor(role=Role.CUSTOMER, name=sender_name(message)),
        body=body,
        from_contact=from_contact,
    )
    try:
        await cases.add_comment(
            client, case_number, request, update_id=update_id_for(message_id)
        )
    except cases.CaseNotFoundError:
        return _record(
            "not_found", message_id, case_number, f"case not found (by {matched_by})"
        )
    except (cases.CaseClosedError, cases.ActionRejectedError) as err:
        closed_meanwhile = isinstance(err, cases.CaseClosedError) or (
            isinstance(err, cases.ActionRejectedError) and err.code == "case_closed"
        )
        if closed_meanwhile:
            return await _answer_closed(
                message, message_id, case_number, None, settings
            )
        return _record("rejected", message_id, case_number, f"comment rejected: {err}")
    sender = "contact" if from_contact else "not the case's contact, status unchanged"
    return _record(
        "applied", message_id, case_number, f"comment added (by {matched_by}; {sender})"
    )


async def _open_case_or_none(client: Client, case_number: str) -> Case | None:
    """Return the case, or None when its workflow ended without a final Case.

    A terminated or failed run cannot be queried without a worker that replays
    it, and it takes no comments either way.
    """
    try:
        status = await cases.execution_status(client, case_number)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise cases.CaseNotFoundError(case_number) from err
        raise
    if status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
        return await cases.get_case(client, case_number)
    return None


async def _answer_closed(
    message: EmailMessage,
    message_id: str,
    case_number: str,
    case: Case | None,
    settings: EmailSettings,
) -> Outcome:
    if not reply_address(message):
        return _record(
            "skipped",
            message_id,
            case_number,
            "reply to a Closed case without a sender address to answer",
        )
    try:
        notice = compose_clone_notice(
            message, message_id, case_number, case.subject if case else None, settings
        )
    except InvalidHeaderError:
        return _record(
            "skipped",
            message_id,
            case_number,
            "reply to a Closed case whose sender name would inject a header into "
            "the clone notice",
        )
    try:
        delivered_to = await send_notice(notice, settings)
    except NoticeNotSentError as err:
        raise TemporaryFailure(str(err)) from err
    except NoticeRejectedError as err:
        return _record(
            "skipped",
            message_id,
            case_number,
            f"reply to a Closed case; the SMTP server rejected the clone notice "
            f"permanently ({err})",
        )
    return _record(
        "notice_sent",
        message_id,
        case_number,
        f"reply to a Closed case; clone notice {notice['Message-ID']} sent to "
        f"{delivered_to}",
    )


def _record(
    result: Result, message_id: str, case_number: str | None, reason: str
) -> Outcome:
    outcome = Outcome(result, message_id, case_number, reason)
    log.info(
        f"mail.{result}",
        case=case_number,
        message_id=message_id,
        reason=reason,
    )
    return outcome


# ---- sources: files, standard input and a Maildir


async def ingest_files(
    client: Client, paths: Sequence[str], settings: EmailSettings
) -> list[Outcome]:
    """Apply each message file in turn; '-' reads one message from standard input."""
    outcomes = []
    for path in paths:
        data = (
            sys.stdin.buffer.read()
            if path == "-"
            else await asyncio.to_thread(Path(path).read_bytes)
        )
        outcome = await ingest_message(client, data, settings)
        print(outcome.describe(), flush=True)
        outcomes.append(outcome)
    return outcomes


def maildir_handled_name(name: str) -> str:
    """Return the name of a message in cur/ with the Seen flag of the Maildir format."""
    base = name.split(":", 1)[0]
    return f"{base}:2,S"


async def ingest_maildir_once(
    client: Client, folder: Path, settings: EmailSettings
) -> list[Outcome]:
    """Apply every message in ``folder/new`` and move each one handled into cur/.

    A message is moved only after its outcome is final, so one interrupted
    here is read again after a restart, and the update id keeps the case from
    getting its comment twice. Raises ``TemporaryFailure`` and leaves the
    message in new/ when Temporal or the SMTP server failed.
    """
    outcomes = []
    for path in sorted((folder / "new").iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        data = await asyncio.to_thread(path.read_bytes)
        outcome = await ingest_message(client, data, settings)
        await asyncio.to_thread(
            path.rename, folder / "cur" / maildir_handled_name(path.name)
        )
        print(outcome.describe(), flush=True)
        outcomes.append(outcome)
    return outcomes


async def watch_maildir(
    client: Client,
    folder: Path,
    settings: EmailSettings,
    interval_seconds: float,
    stop: asyncio.Event,
) -> list[Outcome]:
    """Poll ``folder/new`` every ``interval_seconds`` until ``stop`` is set."""
    log.info("mail.watch_started", folder=str(folder), interval=interval_seconds)
    outcomes: list[Outcome] = []
    failures = 0
    while not stop.is_set():
        try:
            outcomes.extend(await ingest_maildir_once(client, folder, settings))
            failures = 0
        except TemporaryFailure as err:
            failures += 1
            # One line per failed scan; the message stays in new/ for the next.
            log.warning("mail.retry_later", error=str(err), failed_scans=failures)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
    log.info("mail.watch_stopped", folder=str(folder), messages=len(outcomes))
    return outcomes


# ---- the command


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="RFC 5322 message files; '-' or none reads one message from standard input",
    )
    parser.add_argument(
        "--maildir",
        type=Path,
        help="read the messages in this Maildir folder's new/ and move them to cur/",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="with --maildir: keep polling new/ until SIGTERM or SIGINT",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="with --watch: seconds between two polls of new/ (default 5)",
    )


def summary_line(outcomes: Iterable[Outcome]) -> str:
    counts = Counter(outcome.result for outcome in outcomes)
    parts = [f"{counts[result]} {result}" for result in EXIT_CODES]
    return "mail ingest: " + ", ".join(parts)


def exit_code_for(outcomes: Iterable[Outcome]) -> int:
    """Return the exit code of the most severe outcome: not found, then rejected."""
    codes = {outcome.exit_code for outcome in outcomes}
    for code in (EXIT_NOT_FOUND, EXIT_REJECTED):
        if code in codes:
            return code
    return EXIT_OK


async def run_ingest(args: argparse.Namespace) -> int:
    from starter.config import client_connect_config
    from starter.logs import configure_logging, temporal_runtime

    configure_logging()
    problem = _check_arguments(args)
    if problem:
        print(f"casedesk mail ingest: {problem}", file=sys.stderr)
        return EXIT_INVALID
    try:
        settings = EmailSettings.from_env()
    except ValueError as err:
        print(f"casedesk mail ingest: invalid configuration: {err}", file=sys.stderr)
        return EXIT_INVALID
    try:
        client = await Client.connect(
            **client_connect_config(), runtime=temporal_runtime()
        )
    except RuntimeError as err:
        print(
            f"casedesk mail ingest: cannot connect to Temporal: {err}; the messages "
            "stay unread, try again once it is up",
            file=sys.stderr,
        )
        return EXIT_TEMPORARY_FAILURE
    outcomes: list[Outcome] = []
    try:
        if args.maildir and args.watch:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, stop.set)
            outcomes = await watch_maildir(
                client, args.maildir, settings, args.interval, stop
            )
        elif args.maildir:
            outcomes = await ingest_maildir_once(client, args.maildir, settings)
        else:
            outcomes = await ingest_files(client, args.files or ["-"], settings)
    except TemporaryFailure as err:
        print(f"casedesk mail ingest: {err}; try again later", file=sys.stderr)
        print(summary_line(outcomes), file=sys.stderr)
        return EXIT_TEMPORARY_FAILURE
    print(summary_line(outcomes), file=sys.stderr)
    return exit_code_for(outcomes)


def _check_arguments(args: argparse.Namespace) -> str | None:
    if args.maildir and args.files:
        return "give message files or --maildir, not both"
    if args.watch and not args.maildir:
        return "--watch needs --maildir DIR"
    if args.interval <= 0:
        return f"invalid --interval {args.interval}: give a number of seconds above 0"
    if args.maildir and not (args.maildir / "new").is_dir():
        return (
            f"{args.maildir} is not a Maildir folder: {args.maildir / 'new'} is "
            "missing; point --maildir at the folder that contains new/ and cur/"
        )
    for path in args.files:
        if path != "-" and not Path(path).is_file():
            return f"message file {path} not found"
    if args.maildir:
        (args.maildir / "cur").mkdir(exist_ok=True)
    return None
