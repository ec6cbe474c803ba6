"""Tests of the case email activity with a Maildir outbox and a real SMTP server.

The SMTP server is aiosmtpd listening on 127.0.0.1 on a port the kernel picks,
so every message goes over real SMTP on loopback and never leaves the machine.
"""

import asyncio
import dataclasses
import email
import email.policy
import io
import json
import logging
import shutil
import socket
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.email import (
    CaseEmail,
    EmailActivities,
    EmailSettings,
    compose,
    write_to_maildir,
)
from domain.case import Case, CaseInput
from domain.statuses import Status
from starter.client import OpenedCase, get_case, open_case
from starter.logs import configure_logging
from tests.helpers import assert_eventually, case_input, new_case_number, new_task_queue
from worker import build_worker
from workflows.support_case import SupportCase

CONTACT_NAME = "Ann Lee"
CONTACT_EMAIL = "ann.lee@example.org"
SUBJECT = "Search returns no results for journal titles"
CLOSED_REASON = "closed automatically: closure 28 days after Pending Customer Input"
# The attempt's scheduled time, which the activity writes into the Date header.
SCHEDULED_AT = datetime(2025, 3, 23, 8, 0, tzinfo=UTC)
PERMANENT_REJECTION = "550 5.1.1 user unknown"
TRANSIENT_REJECTION = "451 4.3.0 try again later"
# Postfix names the recipient in its replies, so a reply can carry personal data.
PERMANENT_REJECTION_NAMING_ADDRESS = (
    f"550 5.1.1 <{CONTACT_EMAIL}>: Recipient address rejected: User unknown"
)
TRANSIENT_REJECTION_NAMING_ADDRESS = (
    f"450 4.2.0 <{CONTACT_EMAIL}>: Recipient address rejected: Greylisted"
)


# ---- the SMTP server


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One message the SMTP server accepted."""

    mail_from: str
    recipients: list[str]
    content: bytes

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class RecordingHandler:
    """An aiosmtpd handler that stores accepted messages and sends configured error replies.

    Its hooks run on the controller's thread, so tests read the lists only
    after the SMTP client has returned.
    """

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.recipients_tried: list[str] = []
        # Replies to RCPT TO by address. Addresses not listed are accepted.
        self.recipient_replies: dict[str, str] = {}
        # When set, the reply to DATA in place of accepting the message.
        self.data_reply: str | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.recipients_tried.append(address)
        reply = self.recipient_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        assert isinstance(envelope.content, bytes)
        assert envelope.mail_from is not None
        self.deliveries.append(
            Delivery(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 Message accepted for delivery"


class LoopbackController(Controller):
    """An aiosmtpd controller that may listen on port 0.

    ``Controller.start`` connects to ``self.port`` once to check that the
    server responds, so the port the kernel picked is read back first.
    """

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclasses.dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = RecordingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield SmtpServer(handler=handler, port=controller.port)
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(smtp_server: SmtpServer, outbox: Path) -> EmailSettings:
    return EmailSettings(
        outbox_dir=outbox,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_timeout_seconds=10,
    )


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that is bound but not listening, so a connection is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# ---- log capture


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Route logging through ``configure_logging`` into a buffer, then restore it.

    The buffer receives the JSON lines the worker writes to standard error.
    """
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    saved_level = root.level
    saved_structlog = structlog.get_config()
    configure_logging("INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_structlog)


def log_lines_of(stream: io.StringIO, logger: str) -> list[str]:
    return [
        line
        for line in stream.getvalue().splitlines()
        if json.loads(line).get("logger") == logger
    ]


# ---- building and sending emails


def reminder_email(case_number: str = "00012345", **changes: Any) -> CaseEmail:
    email_ = CaseEmail(
        notice="reminder",
        message_key=f"case-{case_number}.2.reminder",
        case_number=case_number,
        to_name=CONTACT_NAME,
        to_email=CONTACT_EMAIL,
        subject=SUBJECT,
        status="Pending Customer Input",
        status_since=datetime(2025, 3, 2, 8, 0, tzinfo=UTC),
        time_zone="Europe/Berlin",
        closes_at=datetime(2025, 3, 30, 8, 0, tzinfo=UTC),
    )
    return email_.model_copy(update=changes)


def closure_email(case_number: str = "00012345", **changes: Any) -> CaseEmail:
    email_ = CaseEmail(
        notice="closure",
        message_key=f"case-{case_number}.3.closure",
        case_number=case_number,
        to_name=CONTACT_NAME,
        to_email=CONTACT_EMAIL,
        subject=SUBJECT,
        status="Closed",
        status_since=datetime(2025, 3, 30, 8, 0, tzinfo=UTC),
        time_zone="Europe/Berlin",
        closed_reason=CLOSED_REASON,
    )
    return email_.model_copy(update=changes)


def body_of(message: EmailMessage) -> str:
    """Return the text body as a mail client shows it, after a round trip through bytes."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


async def send(
    settings: EmailSettings,
    case_email: CaseEmail,
    *,
    attempt: int = 1,
    scheduled_at: datetime = SCHEDULED_AT,
) -> str:
    """Run ``send_case_email`` in an activity context as attempt ``attempt``."""
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        activity_type="send_case_email",
        attempt=attempt,
        current_attempt_scheduled_time=scheduled_at,
        # The workflow's value; the SMTP sender stops before 90% of it.
        start_to_close_timeout=timedelta(seconds=60),
    )
    activities = EmailActivities(settings)
    return await environment.run(activities.send_case_email, case_email)


async def send_error(settings: EmailSettings, case_email: CaseEmail) -> BaseException:
    with pytest.raises(Exception) as caught:
        await send(settings, case_email)
    return caught.value


def is_non_retryable(error: BaseException) -> bool:
    """Whether Temporal would stop retrying the activity after ``error``."""
    return isinstance(error, ApplicationError) and error.non_retryable


def logged_text(error: BaseException) -> str:
    """The traceback a worker logs for ``error``, with its cause and context."""
    return "".join(traceback.format_exception(error))


def maildir_files(folder: Path, sub: str) -> list[Path]:
    return sorted((folder / sub).iterdir())


# ---- compose


def test_compose_headers() -> None:
    settings = EmailSettings(
        from_address="casedesk <support@casedesk.localhost>",
        mail_domain="mail.example.test",
    )

    message = compose(reminder_email("00012345"), settings, SCHEDULED_AT)

    assert message["From"] == "casedesk <support@casedesk.localhost>"
    assert parseaddr(str(message["To"])) == (CONTACT_NAME, CONTACT_EMAIL)
    assert message["Subject"] == f"[Case 00012345] Waiting for your reply: {SUBJECT}"
    assert parsedate_to_datetime(str(message["Date"])) == SCHEDULED_AT
    assert message["Message-ID"] == "<case-00012345.2.reminder@mail.example.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Casedesk-Case"] == "00012345"
    assert message["X-Casedesk-Notice"] == "reminder"


def test_compose_closure_headers() -> None:
    message = compose(closure_email("00012345"), EmailSettings(), SCHEDULED_AT)

    assert message["Subject"] == f"[Case 00012345] Closed: {SUBJECT}"
    assert message["Message-ID"] == "<case-00012345.3.closure@casedesk.localhost>"
    assert message["X-Casedesk-Notice"] == "closure"


def test_compose_reminder_local_times() -> None:
    # Berlin changes to summer time on 2025-03-30 at 01:00 UTC, so the two
    # instants have different offsets.
    message = compose(reminder_email(), EmailSettings(), SCHEDULED_AT)

    body = body_of(message)
    assert "closed on 2025-03-30 10:00 CEST" in body
    assert "since 2025-03-02 09:00 CET" in body
    assert f"Hello {CONTACT_NAME}," in body
    assert SUBJECT in body


def test_compose_reminder_without_zone_uses_utc() -> None:
    message = compose(reminder_email(time_zone=None), EmailSettings(), SCHEDULED_AT)

    assert "closed on 2025-03-30 08:00 UTC" in body_of(message)


def test_compose_reminder_without_closure_date() -> None:
    message = compose(reminder_email(closes_at=None), EmailSettings(), SCHEDULED_AT)

    assert "will be closed" not in body_of(message)


def test_compose_closure_reason_and_clone() -> None:
    message = compose(closure_email("00012345"), EmailSettings(), SCHEDULED_AT)

    body = body_of(message)
    assert f"Reason: {CLOSED_REASON}" in body
    assert "clone the case" in body
    assert "Clone Case on case 00012345" in body


def test_compose_non_ascii_name_and_subject() -> None:
    name = "Zoë Müller-Łukasiewicz"
    subject = "Suche findet keine Zeitschriften – Größe „Titel“"

    message = compose(
        reminder_email(to_name=name, subject=subject), EmailSettings(), SCHEDULED_AT
    )

    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == name
    assert parsed["To"].addresses[0].addr_spec == CONTACT_EMAIL
    assert parsed["Subject"] == f"[Case 00012345] Waiting for your reply: {subject}"
    assert f"Hello {name}," in body_of(message)


def test_compose_folded_non_ascii_subject() -> None:
    # The email package (seen in CPython 3.11.7, 3.12.1 and 3.13.0) folds this
    # Subject so that "–" and "Größe" become two adjacent encoded-words. The
    # space between them sits outside both, where a reader drops it, so
    # clients show "Zeitschriften  –Größe".
    subject = "Suche findet keine Zeitschriften – Größe"

    message = compose(closure_email(subject=subject), EmailSettings(), SCHEDULED_AT)

    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == f"[Case 00012345] Closed: {subject}"


@pytest.mark.parametrize("field", ["subject", "to_name"])
def test_compose_rejects_line_breaks(field: str) -> None:
    # CaseInput rejects these first; the email library is the second check.
    case_email = reminder_email(**{field: "Ann\r\nBcc: victim@example.net"})

    with pytest.raises(ValueError):
        compose(case_email, EmailSettings(), SCHEDULED_AT)


# ---- header injection at the case input


@pytest.mark.parametrize(
    ("field", "location", "value"),
    [
        ("subject", ("subject",), "Search broken\r\nBcc: victim@example.net"),
        ("subject", ("subject",), "Search broken\nBcc: victim@example.net"),
        ("subject", ("subject",), "Search broken\rBcc: victim@example.net"),
        ("contact", ("contact", "name"), "Ann\r\nBcc: victim@example.net"),
        ("contact", ("contact", "name"), "Ann\nBcc: victim@example.net"),
    ],
)
def test_case_input_rejects_line_breaks(
    field: str, location: tuple[str, ...], value: str
) -> None:
    data = case_input()
    if field == "contact":
        data["contact"] = {"name": value, "email": CONTACT_EMAIL}
    else:
        data[field] = value

    with pytest.raises(ValidationError) as caught:
        CaseInput.model_validate(data)

    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [location]
    assert "line break" in errors[0]["msg"]


# ---- Maildir outbox


def test_maildir_writes_message_once(outbox: Path) -> None:
    message = compose(reminder_email(), EmailSettings(), SCHEDULED_AT)

    written = write_to_maildir(outbox, message)

    assert written is True
    files = maildir_files(outbox, "new")
    assert len(files) == 1
    stored = email.message_from_bytes(
        files[0].read_bytes(), policy=email.policy.default
    )
    assert stored["Message-ID"] == message["Message-ID"]
    assert maildir_files(outbox, "tmp") == []
    assert maildir_files(outbox, "cur") == []


def test_maildir_same_message_id_again(outbox: Path) -> None:
    # A retried activity composes the message again with a later Date header.
    first = compose(reminder_email(), EmailSettings(), SCHEDULED_AT)
    retried = compose(
        reminder_email(), EmailSettings(), SCHEDULED_AT + timedelta(minutes=5)
    )
    assert first.as_bytes() != retried.as_bytes()
    write_to_maildir(outbox, first)

    written = write_to_maildir(outbox, retried)

    assert written is False
    files = maildir_files(outbox, "new")
    assert len(files) == 1
    stored = email.message_from_bytes(
        files[0].read_bytes(), policy=email.policy.default
    )
    assert stored["Date"] == first["Date"]
    assert maildir_files(outbox, "tmp") == []


def test_maildir_message_moved_to_cur(outbox: Path) -> None:
    message = compose(reminder_email(), EmailSettings(), SCHEDULED_AT)
    write_to_maildir(outbox, message)
    # A mail reader that has seen the message moves it to cur/ with flags.
    [new_file] = maildir_files(outbox, "new")
    new_file.rename(outbox / "cur" / f"{new_file.name}:2,S")

    written = write_to_maildir(outbox, message)

    assert written is False
    assert maildir_files(outbox, "new") == []
    assert len(maildir_files(outbox, "cur")) == 1


def test_maildir_folder_removed_while_running(outbox: Path) -> None:
    # Folders are created when a write finds them missing, not on every
    # write. An operator who clears the outbox loses no later notice.
    write_to_maildir(outbox, compose(reminder_email(), EmailSettings(), SCHEDULED_AT))
    shutil.rmtree(outbox / "new")
    closure = reminder_email().model_copy(
        update={"notice": "closure", "message_key": "case-0.1.closure"}
    )

    written = write_to_maildir(outbox, compose(closure, EmailSettings(), SCHEDULED_AT))

    assert written is True
    assert len(maildir_files(outbox, "new")) == 1
    assert maildir_files(outbox, "tmp") == []


def test_maildir_different_message_ids(outbox: Path) -> None:
    reminder = compose(reminder_email(), EmailSettings(), SCHEDULED_AT)
    closure = compose(closure_email(), EmailSettings(), SCHEDULED_AT)

    assert write_to_maildir(outbox, reminder) is True
    assert write_to_maildir(outbox, closure) is True
    assert len(maildir_files(outbox, "new")) == 2


def test_maildir_concurrent_writers(outbox: Path) -> None:
    writers = 8
    message = compose(reminder_email(), EmailSettings(), SCHEDULED_AT)
    # Creating the folders first leaves the existence check and link() as
    # the only steps that race.
    for sub in ("tmp", "new", "cur"):
        (outbox / sub).mkdir(parents=True)
    barrier = threading.Barrier(writers)

    def write() -> bool:
        barrier.wait()
        return write_to_maildir(outbox, message)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        results = list(pool.map(lambda _: write(), range(writers)))

    assert results.count(True) == 1
    assert len(maildir_files(outbox, "new")) == 1
    assert maildir_files(outbox, "tmp") == []


async def test_activity_outbox_retry_writes_once(outbox: Path) -> None:
    settings = EmailSettings(outbox_dir=outbox)
    case_email = reminder_email()

    first = await send(settings, case_email, attempt=1)
    retried = await send(
        settings,
        case_email,
        attempt=2,
        scheduled_at=SCHEDULED_AT + timedelta(seconds=5),
    )

    assert first == "<case-00012345.2.reminder@casedesk.localhost>"
    assert retried == first
    assert len(maildir_files(outbox, "new")) == 1


# ---- SMTP


async def test_smtp_delivers_message(
    smtp_server: SmtpServer, smtp_settings: EmailSettings, outbox: Path
) -> None:
    returned = await send(smtp_settings, reminder_email("00012345"))

    assert returned == "<case-00012345.2.reminder@casedesk.localhost>"
    [delivery] = smtp_server.handler.deliveries
    assert delivery.recipients == [CONTACT_EMAIL]
    assert delivery.mail_from == "support@casedesk.localhost"
    message = delivery.message()
    assert message["Message-ID"] == returned
    assert message["X-Casedesk-Case"] == "00012345"
    assert message["X-Casedesk-Notice"] == "reminder"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == f"[Case 00012345] Waiting for your reply: {SUBJECT}"
    assert parsedate_to_datetime(str(message["Date"])) == SCHEDULED_AT
    assert not outbox.exists()


async def test_smtp_non_ascii_arrives_intact(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    # Short enough that the headers are not folded. Folding is covered by
    # test_compose_folded_non_ascii_subject.
    name = "Zoë Müller"
    subject = "Suche – Größe"

    await send(smtp_settings, closure_email(to_name=name, subject=subject))

    [delivery] = smtp_server.handler.deliveries
    message = delivery.message()
    assert message["To"].addresses[0].display_name == name
    assert message["Subject"] == f"[Case 00012345] Closed: {subject}"
    assert f"Hello {name}," in body_of(message)


@pytest.mark.parametrize(
    "reply", [PERMANENT_REJECTION, PERMANENT_REJECTION_NAMING_ADDRESS]
)
async def test_smtp_permanent_recipient_rejection(
    smtp_server: SmtpServer, smtp_settings: EmailSettings, reply: str
) -> None:
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = reply

    error = await send_error(smtp_settings, reminder_email())

    assert isinstance(error, ApplicationError)
    assert error.non_retryable is True
    assert error.type == "EmailRejected"
    # The server's reply stays in the message for diagnosis, without the address.
    expected_reply = reply.replace(f"<{CONTACT_EMAIL}>", "<address>")
    assert f"(SMTP {expected_reply})" in error.message
    assert smtp_server.handler.deliveries == []


async def test_smtp_permanent_data_rejection(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    smtp_server.handler.data_reply = "554 5.6.0 message content rejected"

    error = await send_error(smtp_settings, reminder_email())

    assert isinstance(error, ApplicationError)
    assert error.non_retryable is True
    assert error.type == "EmailRejected"
    assert "554" in error.message


@pytest.mark.parametrize(
    "reply", [TRANSIENT_REJECTION, TRANSIENT_REJECTION_NAMING_ADDRESS]
)
async def test_smtp_transient_recipient_rejection(
    smtp_server: SmtpServer, smtp_settings: EmailSettings, reply: str
) -> None:
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = reply

    error = await send_error(smtp_settings, reminder_email())

    assert is_non_retryable(error) is False
    assert isinstance(error, ApplicationError)
    assert error.type == "EmailDeferred"
    assert smtp_server.handler.recipients_tried == [CONTACT_EMAIL]
    assert smtp_server.handler.deliveries == []


async def test_smtp_transient_data_rejection(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    smtp_server.handler.data_reply = TRANSIENT_REJECTION

    error = await send_error(smtp_settings, reminder_email())

    assert is_non_retryable(error) is False
    assert isinstance(error, ApplicationError)
    assert "451 4.3.0 try again later" in error.message


async def test_smtp_connection_refused(refused_port: int, outbox: Path) -> None:
    settings = EmailSettings(
        outbox_dir=outbox,
        smtp_host="127.0.0.1",
        smtp_port=refused_port,
        smtp_timeout_seconds=10,
    )

    error = await send_error(settings, reminder_email())

    assert isinstance(error, ApplicationError)
    assert error.type == "EmailDeferred"
    assert "could not be reached" in error.message
    assert is_non_retryable(error) is False
    assert not outbox.exists()


@pytest.mark.parametrize(
    "reply",
    [
        PERMANENT_REJECTION,
        PERMANENT_REJECTION_NAMING_ADDRESS,
        TRANSIENT_REJECTION,
        TRANSIENT_REJECTION_NAMING_ADDRESS,
    ],
)
async def test_smtp_error_omits_contact_address(
    smtp_server: SmtpServer, smtp_settings: EmailSettings, reply: str
) -> None:
    # The worker logs a failed activity with its traceback, and Temporal
    # stores the error and its __cause__ chain in the workflow history.
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = reply

    error = await send_error(smtp_settings, reminder_email())

    assert CONTACT_EMAIL not in logged_text(error)


# ---- logs


async def test_sent_log_line_has_no_personal_data(
    smtp_server: SmtpServer, smtp_settings: EmailSettings, json_log: io.StringIO
) -> None:
    message_id = await send(smtp_settings, reminder_email("00012345"))

    [line] = log_lines_of(json_log, "activities.email")
    assert CONTACT_EMAIL not in line
    assert CONTACT_NAME not in line
    assert SUBJECT not in line
    entry = json.loads(line)
    assert entry["event"] == "email.sent"
    assert entry["case"] == "00012345"
    assert entry["message_id"] == message_id
    assert entry["delivered_to"] == "smtp"


async def test_outbox_log_line_has_no_personal_data(
    outbox: Path, json_log: io.StringIO
) -> None:
    settings = EmailSettings(outbox_dir=outbox)
    message_id = await send(settings, closure_email("00012345"))

    [line] = log_lines_of(json_log, "activities.email")
    assert CONTACT_EMAIL not in line
    assert CONTACT_NAME not in line
    assert SUBJECT not in line
    assert CLOSED_REASON not in line
    entry = json.loads(line)
    assert entry["case"] == "00012345"
    assert entry["message_id"] == message_id
    assert entry["delivered_to"] == "outbox"


# ---- the workflow with a real SMTP server


async def import_pending_case(
    ts_env: WorkflowEnvironment, task_queue: str
) -> tuple[OpenedCase, datetime]:
    """Import a case that entered Pending Customer Input at the server's current time.

    The handle comes from starting the workflow, because only such a handle
    lets the time-skipping server skip time while ``result()`` waits.
    """
    case_number = new_case_number()
    since = await ts_env.get_current_time()
    request = CaseInput.model_validate(
        case_input(
            case_number,
            status=Status.PENDING_CUSTOMER_INPUT.value,
            status_since=since.isoformat(),
        )
    )
    opened = await open_case(ts_env.client, request, task_queue=task_queue)
    return opened, since


def email_failures(case: Case) -> list[str]:
    return [entry.note for entry in case.history if entry.event == "email_failed"]


async def test_workflow_delivers_notices_over_smtp(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    task_queue = new_task_queue()
    settings = dataclasses.replace(smtp_settings, mail_domain="mail.example.test")

    async with build_worker(
        ts_env.client, task_queue=task_queue, email_settings=settings
    ):
        opened, _ = await import_pending_case(ts_env, task_queue)
        final = await opened.handle.result()

    case_number = opened.case_number
    assert final.status is Status.CLOSED
    assert final.reminders_sent == 1
    assert email_failures(final) == []
    deliveries = smtp_server.handler.deliveries
    assert [delivery.recipients for delivery in deliveries] == [
        [CONTACT_EMAIL],
        [CONTACT_EMAIL],
    ]
    messages = [delivery.message() for delivery in deliveries]
    # An import enters its status as entry 1, and the closure is entry 2.
    assert [str(message["Message-ID"]) for message in messages] == [
        f"<case-{case_number}.1.reminder@mail.example.test>",
        f"<case-{case_number}.2.closure@mail.example.test>",
    ]
    assert [str(message["X-Casedesk-Notice"]) for message in messages] == [
        "reminder",
        "closure",
    ]


async def test_workflow_closes_despite_rejected_address(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = PERMANENT_REJECTION
    task_queue = new_task_queue()

    # One worker runs for the whole case: the time-skipping server loses a
    # pending timer when its worker is replaced.
    async with build_worker(
        ts_env.client, task_queue=task_queue, email_settings=smtp_settings
    ):
        opened, since = await import_pending_case(ts_env, task_queue)
        case_number = opened.case_number
        handle = opened.handle
        await ts_env.sleep(timedelta(days=7, seconds=1))

        async def reminder_failure_recorded() -> Case:
            case = await get_case(ts_env.client, case_number)
            assert len(email_failures(case)) == 1
            return case

        open_case_state = await assert_eventually(reminder_failure_recorded)
        # result() raises WorkflowFailureError if the workflow failed.
        final = await handle.result()
        # starter.client.get_case calls describe(), which fails on the
        # time-skipping server once NextDeadlineAt is unset, because that
        # server returns the unset Datetime attribute as null. A query
        # returns the same Case.
        queried = await handle.query(SupportCase.get_case)

    assert open_case_state.status is Status.PENDING_CUSTOMER_INPUT
    assert open_case_state.reminders_sent == 0
    assert final.status is Status.CLOSED
    assert final.closure is not None
    assert final.closure.rule == "pending_customer_input_closure"
    closure_due = since + timedelta(days=28)
    assert final.closure.at >= closure_due
    assert final.closure.at - closure_due < timedelta(minutes=1)
    assert final.reminders_sent == 0
    failures = email_failures(final)
    assert len(failures) == 2
    assert failures[0].startswith("reminder email failed: ")
    assert failures[1].startswith("closure email failed: ")
    assert all("rejected the recipient permanently" in note for note in failures)
    assert queried.history == final.history
    # A non-retryable rejection is tried once per notice.
    assert smtp_server.handler.recipients_tried == [CONTACT_EMAIL, CONTACT_EMAIL]
    assert smtp_server.handler.deliveries == []


async def test_worker_logs_omit_rejected_address(
    ts_env: WorkflowEnvironment,
    smtp_server: SmtpServer,
    smtp_settings: EmailSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = (
        PERMANENT_REJECTION_NAMING_ADDRESS
    )
    task_queue = new_task_queue()

    with caplog.at_level(logging.INFO):
        async with build_worker(
            ts_env.client, task_queue=task_queue, email_settings=smtp_settings
        ):
            opened, _ = await import_pending_case(ts_env, task_queue)
            final = await opened.handle.result()

    assert len(email_failures(final)) == 2
    failed_activity_records = [
        record
        for record in caplog.records
        if record.getMessage().startswith("Completing activity as failed")
    ]
    assert len(failed_activity_records) == 2
    # The SMTP server's own log ("mail.log") names the recipient and is left out.
    formatter = logging.Formatter()
    worker_log = "\n".join(
        formatter.format(record)
        for record in caplog.records
        if record.name.startswith(("temporalio", "activities"))
    )
    assert "Traceback" in worker_log
    assert CONTACT_EMAIL not in worker_log
    assert all(CONTACT_EMAIL not in note for note in email_failures(final))
