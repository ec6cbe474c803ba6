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
import email
import email.errors
import email.policy
import hashlib
import re
import signal
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

import aiosmtplib
import jinja2
import structlog
from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.email import MESSAGE_POLICY, EmailSettings, write_to_maildir
from domain.case import CASE_NUMBER_PATTERN, MAX_COMMENT_LENGTH, Actor, Case
from domain.statuses import Role
from starter import client as cases
from workflows.messages import AddCommentInput

log = structlog.get_logger("casedesk.mail_ingest")

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_TEMPORARY_FAILURE = 75

Result = Literal["applied", "skipped", "notice_sent", "rejected", "not_found"]
EXIT_CODES: dict[Result, int] = {
    "applied": EXIT_OK,
    "skipped": EXIT_OK,
    "notice_sent": EXIT_OK,
    "rejected": EXIT_REJECTED,
    "not_found": EXIT_NOT_FOUND,
}

# "[Case 00012345]" anywhere in the subject, as every casedesk notice starts.
SUBJECT_CASE = re.compile(r"\[Case ([A-Za-z0-9-]{1,32})\]", re.IGNORECASE)
MESSAGE_ID_TOKEN = re.compile(r"<[^<>\s]+>")
# Subject prefixes of out-of-office replies from common mail servers and
# clients: Exchange and Outlook ("Automatic reply:"), Gmail ("Out of Office"),
# and their German and French forms.
OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|auto[- ]?response|out of (the )?office|"
    r"abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|absence)\b",
    re.IGNORECASE,
)
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "auto_reply", "list", "junk"})
# Languages whose "On ... wrote:" headers and signature markers the reply
# parser recognises in a reply. English is always included.
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl"]
TRUNCATION_NOTE = "\n[the reply was cut here: {count} more characters]"
UPDATE_ID_PREFIX = "mail-"


class TemporaryFailure(Exception):
    """Temporal or the SMTP server failed in a way that a later attempt may not."""


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


# ---- reading and classifying a message


def parse_message(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def own_message_id_pattern(settings: EmailSettings) -> re.Pattern[str]:
    """Match casedesk's Message-IDs, ``<case-{case_number}.{rest}@{mail_domain}>``."""
    return re.compile(
        rf"\A<case-([A-Za-z0-9-]{{1,32}})\.[^@<>\s]+@{re.escape(settings.mail_domain)}>\Z",
        re.IGNORECASE,
    )


def inbound_message_id(message: EmailMessage, data: bytes) -> str:
    """Return the message's Message-ID, or a stand-in derived from its bytes when it has none."""
    found = MESSAGE_ID_TOKEN.search(str(message.get("Message-ID", "")))
    if found:
        return found.group()
    return f"<no-message-id.{hashlib.sha256(data).hexdigest()[:32]}>"


def update_id_for(message_id: str) -> str:
    """Derive the add_comment update id, so the same message is applied once."""
    return UPDATE_ID_PREFIX + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def skip_reason(message: EmailMessage, settings: EmailSettings) -> str | None:
    """Return why ``message`` must not touch a case, or None for a reply by a person.

    The envelope's Return-Path is not consulted: a person's reply sent with an
    empty Return-Path is still a reply.
    """
    if _is_bounce(message):
        return "bounce (delivery status notification)"
    if message.get("X-Casedesk-Case") is not None:
        return "casedesk notice sent back (X-Casedesk-Case header)"
    own_id = own_message_id_pattern(settings)
    if own_id.match(str(message.get("Message-ID", "")).strip()):
        return "casedesk notice sent back (casedesk Message-ID)"
    auto_submitted = _first_token(message.get("Auto-Submitted"))
    if auto_submitted and auto_submitted != "no":
        return f"automatic reply (Auto-Submitted: {auto_submitted})"
    for header in ("X-Autoreply", "X-Autorespond"):
        if message.get(header) is not None:
            return f"automatic reply ({header} header)"
    precedence = _first_token(message.get("Precedence"))
    if precedence in AUTOMATIC_PRECEDENCE:
        return f"automatic reply (Precedence: {precedence})"
    if (
        message.get_content_type() == "multipart/report"
        and message.get_param("report-type") == "disposition-notification"
    ):
        return "automatic reply (read receipt)"
    if OUT_OF_OFFICE_SUBJECT.match(str(message.get("Subject", ""))):
        return "automatic reply (out-of-office subject)"
    return None


def _first_token(value: object) -> str:
    """Return a header's value up to its first ';', lower-cased, or '' when absent."""
    if value is None:
        return ""
    return str(value).split(";", 1)[0].strip().lower()


def _is_bounce(message: EmailMessage) -> bool:
    if (
        message.get_content_type() == "multipart/report"
        and message.get_param("report-type") == "delivery-status"
    ):
        return True
    if message.get("X-Failed-Recipients") is not None:
        return True
    local_part = sender_address(message).split("@", 1)[0]
    return local_part.lower() == "mailer-daemon"


def find_case_number(
    message: EmailMessage, settings: EmailSettings
) -> tuple[str | None, str]:
    """Return the number of the case the message replies to, and how it was found.

    In-Reply-To comes first, then References from the newest entry back, and
    only then ``[Case N]`` in the subject.
    """
    own_id = own_message_id_pattern(settings)
    references = MESSAGE_ID_TOKEN.findall(str(message.get("References", "")))
    candidates = [
        *MESSAGE_ID_TOKEN.findall(str(message.get("In-Reply-To", ""))),
        *reversed(references),
    ]
    for token in candidates:
        matched = own_id.match(token)
        if matched:
            return matched.group(1), "In-Reply-To/References"
    subject = SUBJECT_CASE.search(str(message.get("Subject", "")))
    if subject and CASE_NUMBER_PATTERN.match(subject.group(1)):
        return subject.group(1), "subject"
    return None, "none"


def sender_address(message: EmailMessage) -> str:
    return parseaddr(str(message.get("From", "")))[1].strip()


def sender_name(message: EmailMessage) -> str:
    name = parseaddr(str(message.get("From", "")))[0]
    return " ".join(name.split())[:200]


# ---- the comment text


def comment_body(message: EmailMessage) -> str:
    """Build the comment: the new part of the reply, then the attachments by name and size."""
    reply = new_reply_text(message)
    attachments = attachment_lines(message)
    listing = "\n".join(["Attachments:", *attachments]) if attachments else ""
    room = MAX_COMMENT_LENGTH - len(listing) - 2
    if len(reply) > room:
        cut = room - len(TRUNCATION_NOTE.format(count=len(reply)))
        reply = reply[:cut] + TRUNCATION_NOTE.format(count=len(reply) - cut)
    return "\n\n".join(part for part in (reply, listing) if part)


def new_reply_text(message: EmailMessage) -> str:
    """Return the text the sender wrote, without quoted history and signature."""
    part = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(part, EmailMessage):
        return ""
    text = _decoded_text(part)
    if part.get_content_subtype() == "html":
        text = html_to_text(text)
    parsed = EmailReplyParser(languages=REPLY_LANGUAGES).read(text)
    newest = parsed.replies[0] if parsed.replies else None
    # A reply that starts with an "On ... wrote:" header has no new text of
    # its own; the parser then returns the quoted part first.
    if newest is None or newest.headers:
        return ""
    # Lines quoted inline, between the sender's own lines, are history too.
    lines = [line for line in newest.body.splitlines() if not line.startswith(">")]
    return "\n".join(lines).strip()


def _decoded_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError):
        # An unknown or wrong charset: keep what decodes as UTF-8.
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        content = raw.decode("utf-8", errors="replace")
    return content if isinstance(content, str) else ""


def attachment_lines(message: EmailMessage) -> list[str]:
    lines = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() != "attachment":
            continue
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        name = " ".join((part.get_filename() or "unnamed").split())
        lines.append(f"- {name} ({size:,} bytes, {part.get_content_type()})")
    return lines


class _TextExtractor(HTMLParser):
    """Collect an HTML body's text, leaving out quoted blocks, styles and scripts."""

    SKIPPED = frozenset({"blockquote", "style", "script", "head", "title"})
    BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.BREAKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BREAKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.chunks).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# ---- the notice sent in reply to a message for a Closed case

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("activities", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def compose_clone_notice(
    message: EmailMessage,
    message_id: str,
    case_number: str,
    case_subject: str | None,
    settings: EmailSettings,
) -> EmailMessage:
    """Build the notice sent in reply to a message for a Closed case.

    Its Message-ID has casedesk's form and is derived from the reply's, so the
    notice is recognised if it comes back and is written to the outbox once.
    """
    recipient = _reply_address(message)
    reply_subject = " ".join(str(message.get("Subject", "")).split())
    values = {
        "name": sender_name(message),
        "case_number": case_number,
        "case_subject": case_subject,
        "reply_subject": reply_subject or f"Case {case_number}",
    }
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:24]
    notice = EmailMessage(policy=MESSAGE_POLICY)
    notice["From"] = settings.from_address
    notice["To"] = formataddr((sender_name(message), recipient))
    notice["Subject"] = f"[Case {case_number}] Closed case: your message was not added"
    notice["Date"] = format_datetime(datetime.now(UTC))
    notice["Message-ID"] = (
        f"<case-{case_number}.clone-notice.{digest}@{settings.mail_domain}>"
    )
    notice["In-Reply-To"] = message_id
    references = MESSAGE_ID_TOKEN.findall(str(message.get("References", "")))
    notice["References"] = " ".join([*references[-10:], message_id])
    # RFC 3834 marks a message sent in response to another as "auto-replied".
    notice["Auto-Submitted"] = "auto-replied"
    notice["X-Casedesk-Case"] = case_number
    notice["X-Casedesk-Notice"] = "clone-notice"
    notice.set_content(_templates.get_template("clone_notice.txt").render(values))
    notice.add_alternative(
        _templates.get_template("clone_notice.html").render(values), subtype="html"
    )
    return notice


def _reply_address(message: EmailMessage) -> str:
    reply_to = getaddresses([str(message.get("Reply-To", ""))])
    for _, address in reply_to:
        if "@" in address:
            return address
    return sender_address(message)


async def send_notice(notice: EmailMessage, settings: EmailSettings) -> str:
    """Send ``notice`` by SMTP when configured, or write it to the Maildir outbox.

    Returns where it went. Over SMTP the envelope sender is empty, as RFC 3834
    recommends for automatic responses, so a bounce of the notice goes nowhere.
    NOTE: a notice sent by SMTP just before the command is stopped, and before
    the reply is marked handled, is sent again when the reply is read again.
    The Maildir outbox stores each Message-ID once.
    """
    if not settings.uses_smtp:
        written = await asyncio.to_thread(write_to_maildir, settings.outbox_dir, notice)
        return "outbox" if written else "outbox (already there)"
    recipient = parseaddr(str(notice["To"]))[1]
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_security == "tls",
        start_tls=settings.smtp_security == "starttls",
        timeout=settings.smtp_timeout_seconds,
    )
    try:
        async with smtp:
            if settings.smtp_username:
                await smtp.login(settings.smtp_username, settings.smtp_password or "")
            await smtp.sendmail("", [recipient], notice.as_bytes())
    except (aiosmtplib.SMTPException, OSError) as err:
        raise TemporaryFailure(
            f"sending the clone notice failed: {type(err).__name__}"
        ) from None
    return "smtp"


# ---- applying one message


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
    if not _reply_address(message):
        return _record(
            "skipped",
            message_id,
            case_number,
            "reply to a Closed case without a sender address to answer",
        )
    notice = compose_clone_notice(
        message, message_id, case_number, case.subject if case else None, settings
    )
    delivered_to = await send_notice(notice, settings)
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
