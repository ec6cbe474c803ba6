"""Inbound email: replies become comments, automatic mail is skipped.

Cases run on the dev server, or on the time-skipping test server where a test
waits for a 14-day closure. Messages are built here with the email package;
the SMTP server is aiosmtpd on 127.0.0.1, and Maildir folders are real.
"""

import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.email import CaseEmail, EmailSettings, compose
from domain.case import Case
from domain.statuses import Status
from starter.clone_notice import compose_clone_notice
from starter.mail_ingest import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_TEMPORARY_FAILURE,
    Outcome,
    TemporaryFailure,
    ingest_maildir_once,
    ingest_message,
    update_id_for,
)
from starter.mail_reading import (
    comment_body,
    find_case_number,
    parse_message,
    skip_reason,
)
from tests.helpers import (
    SUPPORT,
    assert_eventually,
    case_input,
    final_case,
    new_case_number,
    new_task_queue,
    set_status,
    sleep_until,
)
from worker import build_worker
from workflows.support_case import SupportCase

BIN = Path(sys.executable).parent
CONTACT = "Ann Lee <ann.lee@example.org>"
COLLEAGUE = "Bo Chen <bo.chen@example.org>"
SETTINGS = EmailSettings()
DOMAIN = SETTINGS.mail_domain


# ---- messages


def reply(
    body: str = "The search finds journals again, thank you.",
    *,
    sender: str = CONTACT,
    subject: str = "Re: your case",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """Build a customer's reply as a mail client sends it."""
    message = EmailMessage(policy=email.policy.default)
    message["From"] = sender
    message["To"] = "casedesk <support@casedesk.localhost>"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 12, 4, 10, 0, tzinfo=UTC))
    message["Message-ID"] = make_msgid(domain="example.org")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def notice_id(case_number: str, rest: str = "2.reminder") -> str:
    return f"<case-{case_number}.{rest}@{DOMAIN}>"


def bounce_of(original: EmailMessage) -> EmailMessage:
    """Build a delivery status notification that returns ``original``, as Postfix sends it."""
    bounce = EmailMessage(policy=email.policy.default)
    bounce["From"] = "MAILER-DAEMON@mx.example.org (Mail Delivery System)"
    bounce["To"] = "support@casedesk.localhost"
    bounce["Subject"] = "Undelivered Mail Returned to Sender"
    bounce["Message-ID"] = make_msgid(domain="mx.example.org")
    bounce.set_content("This is the mail system at host mx.example.org.\n")
    status = EmailMessage()
    status.set_content(
        "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; x@example.org\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    bounce.make_mixed()
    bounce.attach(status)
    bounce.attach(original)
    bounce.replace_header("Content-Type", "multipart/report")
    bounce.set_param("report-type", "delivery-status")
    return bounce


def as_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=email.policy.SMTP)


# ---- servers


@dataclass
class MailCases:
    """A worker on the dev server and the cases the test opened."""

    client: Client
    task_queue: str
    settings: EmailSettings

    async def open(self, status: Status | None = None) -> str:
        number = new_case_number("MAIL")
        handle = await self.client.start_workflow(
            SupportCase.run,
            case_input(number),
            id=f"case-{number}",
            task_queue=self.task_queue,
        )
        if status is not None:
            await handle.execute_update(SupportCase.change_status, set_status(status))
        return number

    async def case(self, number: str) -> Case:
        handle = self.client.get_workflow_handle_for(SupportCase.run, f"case-{number}")
        return await handle.query(SupportCase.get_case)

    async def ingest(self, message: EmailMessage) -> Outcome:
        return await ingest_message(self.client, as_bytes(message), self.settings)


@pytest_asyncio.fixture
async def mail_cases(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[MailCases]:
    queue = new_task_queue()
    worker_settings = EmailSettings(outbox_dir=tmp_path / "outbox")
    async with build_worker(
        dev_env.client, task_queue=queue, email_settings=worker_settings
    ):
        yield MailCases(
            dev_env.client, queue, EmailSettings(outbox_dir=tmp_path / "notices")
        )


@dataclass(frozen=True)
class Delivery:
    mail_from: str
    recipients: list[str]
    content: bytes

    def message(self) -> EmailMessage:
        return parse_message(self.content)


class RecordingHandler:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        # When set, the reply to every RCPT TO in place of accepting it.
        self.recipient_reply: str | None = None

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.recipient_reply is not None:
            return self.recipient_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        assert isinstance(envelope.content, bytes)
        self.deliveries.append(
            Delivery(
                envelope.mail_from or "", list(envelope.rcpt_tos), envelope.content
            )
        )
        return "250 Message accepted for delivery"


class LoopbackController(Controller):
    """An aiosmtpd controller on a port the kernel picks, read back before the self-check."""

    def _trigger_server(self) -> None:
        server = cast(asyncio.Server, self.server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


# ---- classifying without a server


def test_skip_reason_for_automatic_mail() -> None:
    table: list[tuple[dict[str, str], str, str]] = [
        ({"Auto-Submitted": "auto-replied"}, "Re: hello", "Auto-Submitted"),
        ({"Auto-Submitted": "auto-generated; owner-email=x"}, "Hi", "Auto-Submitted"),
        ({"X-Autoreply": "yes"}, "Re: hello", "X-Autoreply"),
        ({"X-Autorespond": "yes"}, "Re: hello", "X-Autorespond"),
        ({"Precedence": "bulk"}, "Re: hello", "Precedence: bulk"),
        ({"Precedence": "auto_reply"}, "Re: hello", "Precedence: auto_reply"),
        ({"Precedence": "list"}, "Re: hello", "Precedence: list"),
        ({}, "Automatic reply: [Case 1] Waiting", "out-of-office"),
        ({}, "Out of Office: [Case 1] Waiting", "out-of-office"),
        ({}, "Abwesenheitsnotiz: [Case 1]", "out-of-office"),
    ]
    for headers, subject, expected in table:
        message = reply(subject=subject, headers=headers)

        reason = skip_reason(parse_message(as_bytes(message)), SETTINGS)

        assert reason is not None, f"{headers} {subject!r} was not skipped"
        assert expected in reason, f"{headers} {subject!r}: {reason}"


def test_skip_reason_lets_human_replies_through() -> None:
    table: list[dict[str, str]] = [
        {},
        {"Auto-Submitted": "no"},
        {"Return-Path": "<>"},
        {"Precedence": "first-class"},
    ]
    for headers in table:
        message = reply(subject="Re: [Case 1] Waiting", headers=headers)

        assert skip_reason(parse_message(as_bytes(message)), SETTINGS) is None, headers


def test_skip_reason_for_bounce_and_own_notice() -> None:
    original = reply(subject="[Case 1] Closed", in_reply_to=notice_id("1"))
    own = compose(
        CaseEmail(
            notice="reminder",
            message_key="case-7.2.reminder",
            case_number="7",
            to_name="Ann Lee",
            to_email="ann.lee@example.org",
            subject="Login fails",
            status="Pending Customer Input",
            status_since=datetime(2026, 12, 1, tzinfo=UTC),
        ),
        SETTINGS,
        datetime(2026, 12, 8, tzinfo=UTC),
    )

    bounce_reason = skip_reason(parse_message(as_bytes(bounce_of(original))), SETTINGS)
    own_reason = skip_reason(parse_message(as_bytes(own)), SETTINGS)

    assert bounce_reason is not None
    assert "bounce" in bounce_reason
    assert own_reason is not None
    assert "casedesk notice" in own_reason


def test_skip_reason_for_read_receipt() -> None:
    receipt = reply(subject="Read: [Case 1] Waiting")
    receipt.make_mixed()
    receipt.replace_header("Content-Type", "multipart/report")
    receipt.set_param("report-type", "disposition-notification")

    reason = skip_reason(parse_message(as_bytes(receipt)), SETTINGS)

    assert reason == "automatic reply (read receipt)"


def test_clone_notice_escapes_html() -> None:
    message = reply(subject="Re: <b>urgent</b> & more", sender="Ann <ann@example.org>")

    notice = compose_clone_notice(
        message, "<m1@example.org>", "42", "Login <fails>", SETTINGS
    )

    html = notice.get_body(preferencelist=("html",))
    text = notice.get_body(preferencelist=("plain",))
    assert html is not None
    assert text is not None
    assert "&lt;b&gt;urgent&lt;/b&gt; &amp; more" in html.get_content()
    assert "Login &lt;fails&gt;" in html.get_content()
    assert "<b>urgent</b> & more" in text.get_content()
    assert notice["To"] == "Ann <ann@example.org>"
    assert notice["Message-ID"].endswith(f"@{DOMAIN}>")


def test_find_case_number_prefers_headers() -> None:
    by_header = reply(subject="Re: [Case B-2] Waiting", in_reply_to=notice_id("A-1"))
    foreign = reply(
        subject="Re: [Case B-2] Waiting",
        in_reply_to="<case-A-1.2.reminder@other.example>",
    )
    nothing = reply(subject="Question")

    assert find_case_number(by_header, SETTINGS) == ("A-1", "In-Reply-To/References")
    assert find_case_number(foreign, SETTINGS) == ("B-2", "subject")
    assert find_case_number(nothing, SETTINGS) == (None, "none")


def test_comment_body_drops_quote_and_signature() -> None:
    text = (
        "The search works again.\n"
        "Thanks for the quick fix.\n\n"
        "-- \n"
        "Ann Lee\nLibrary IT, Example University\n\n"
        "On Fri, 4 Dec 2026 at 10:00, casedesk <support@casedesk.localhost> wrote:\n"
        "> Hello Ann Lee,\n"
        "> Case 1 has been waiting for information from you.\n"
    )
    message = reply(text)
    message.add_attachment(
        b"x" * 1234, maintype="application", subtype="pdf", filename="log.pdf"
    )

    body = comment_body(parse_message(as_bytes(message)))

    assert body.startswith("The search works again.\nThanks for the quick fix.")
    assert "Ann Lee" not in body
    assert "waiting for information" not in body
    assert "Attachments:\n- log.pdf (1,234 bytes, application/pdf)" in body


def test_comment_body_from_html_only_reply() -> None:
    message = reply()
    message.set_content(
        "<html><body><p>Fixed on our side &amp; tested.</p>"
        "<blockquote><p>Hello Ann Lee, case 1 is waiting.</p></blockquote>"
        "</body></html>",
        subtype="html",
    )

    body = comment_body(parse_message(as_bytes(message)))

    assert body == "Fixed on our side & tested."


def test_update_id_derived_from_message_id() -> None:
    assert update_id_for("<a@example.org>") == update_id_for("<a@example.org>")
    assert update_id_for("<a@example.org>") != update_id_for("<b@example.org>")


# ---- against a Temporal server


async def test_reply_threaded_by_headers(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    other = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    message = reply(
        "Here is the screenshot you asked for.",
        subject=f"Re: [Case {other}] Waiting for your reply",
        in_reply_to=notice_id(number),
    )

    first = await mail_cases.ingest(message)
    again = await mail_cases.ingest(message)

    assert first.result == "applied", first
    assert first.case_number == number
    assert again.result == "applied", again
    case = await mail_cases.case(number)
    assert [c.body for c in case.comments] == ["Here is the screenshot you asked for."]
    assert case.comments[0].from_contact
    assert case.comments[0].actor_name == "Ann Lee"
    assert case.status is Status.UPDATE_RECEIVED
    assert (await mail_cases.case(other)).comments == []


async def test_reply_threaded_by_subject(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    message = reply(
        "Yes, all users are affected.",
        subject=f"RE: AW: [Case {number}] Waiting for your reply: Search",
    )

    outcome = await mail_cases.ingest(message)

    assert outcome.result == "applied", outcome
    assert "by subject" in outcome.reason
    case = await mail_cases.case(number)
    assert [c.body for c in case.comments] == ["Yes, all users are affected."]
    assert case.status is Status.UPDATE_RECEIVED


async def test_reply_quoted_text_removed(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.AWAITING_CUSTOMER_CONFIRMATION)
    message = reply(
        "It broke again this morning.\n\n"
        "Best regards,\nAnn Lee\n\n"
        f"On Thu, 3 Dec 2026, casedesk <support@{DOMAIN}> wrote:\n"
        "> Please confirm that the problem is solved.\n",
        in_reply_to=notice_id(number),
    )

    outcome = await mail_cases.ingest(message)

    assert outcome.result == "applied", outcome
    case = await mail_cases.case(number)
    assert [c.body for c in case.comments] == ["It broke again this morning."]
    assert case.status is Status.REOPENED


async def test_reply_from_non_contact(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    before = await mail_cases.case(number)
    message = reply(
        "Ann is away; I can confirm it still fails.",
        sender=COLLEAGUE,
        in_reply_to=notice_id(number),
    )

    outcome = await mail_cases.ingest(message)

    assert outcome.result == "applied", outcome
    assert "not the case's contact" in outcome.reason
    case = await mail_cases.case(number)
    assert len(case.comments) == 1
    assert not case.comments[0].from_contact
    assert case.comments[0].actor_name == "Bo Chen"
    assert case.status is Status.PENDING_CUSTOMER_INPUT
    assert case.deadlines == before.deadlines


async def test_reply_with_empty_return_path(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    message = reply(
        "Sent from the shared mailbox.",
        in_reply_to=notice_id(number),
        headers={"Return-Path": "<>"},
    )

    outcome = await mail_cases.ingest(message)

    assert outcome.result == "applied", outcome
    case = await mail_cases.case(number)
    assert len(case.comments) == 1
    assert case.status is Status.UPDATE_RECEIVED


async def test_bounce_skipped(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    original = reply(subject=f"[Case {number}] Waiting", in_reply_to=notice_id(number))

    outcome = await mail_cases.ingest(bounce_of(original))

    assert outcome.result == "skipped", outcome
    assert "bounce" in outcome.reason
    case = await mail_cases.case(number)
    assert case.comments == []
    assert case.status is Status.PENDING_CUSTOMER_INPUT


async def test_own_notice_echo_changes_nothing(mail_cases: MailCases) -> None:
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    before = await mail_cases.case(number)
    echoed = compose(
        CaseEmail(
            notice="reminder",
            message_key=f"case-{number}.2.reminder",
            case_number=number,
            to_name="Ann Lee",
            to_email="ann.lee@example.org",
            subject=before.subject,
            status=before.status.value,
            status_since=before.status_since,
        ),
        SETTINGS,
        datetime.now(UTC),
    )
    stripped = parse_message(as_bytes(echoed))
    # A forwarding rule that drops the X- and Auto-Submitted headers.
    del stripped["X-Casedesk-Case"]
    del stripped["X-Casedesk-Notice"]
    del stripped["Auto-Submitted"]

    outcomes = [
        await mail_cases.ingest(echoed),
        await mail_cases.ingest(stripped),
    ]

    for outcome in outcomes:
        assert outcome.result == "skipped", outcome
        assert "casedesk notice" in outcome.reason
    after = await mail_cases.case(number)
    assert after.comments == []
    assert after.status is Status.PENDING_CUSTOMER_INPUT
    assert after.history == before.history


async def test_closed_case_gets_clone_notice(
    mail_cases: MailCases, smtp_server: tuple[RecordingHandler, int]
) -> None:
    handler, port = smtp_server
    number = await mail_cases.open()
    handle = mail_cases.client.get_workflow_handle_for(
        SupportCase.run, f"case-{number}"
    )
    await handle.execute_update(
        SupportCase.change_status, set_status(Status.CLOSED, SUPPORT, "solved")
    )
    closed = await handle.result()
    settings = EmailSettings(smtp_host="127.0.0.1", smtp_port=port)
    message = reply(
        "One more question about this.",
        subject=f"Re: [Case {number}] Closed",
        in_reply_to=notice_id(number, "3.closure"),
    )
    inbound_id = str(message["Message-ID"])

    outcome = await ingest_message(mail_cases.client, as_bytes(message), settings)

    assert outcome.result == "notice_sent", outcome
    assert outcome.case_number == number
    assert len(handler.deliveries) == 1
    delivery = handler.deliveries[0]
    # aiosmtpd stores the null reverse-path of "MAIL FROM:<>" as "<>".
    assert delivery.mail_from == "<>"
    assert delivery.recipients == ["ann.lee@example.org"]
    notice = delivery.message()
    assert notice["Subject"].startswith(f"[Case {number}] ")
    assert notice["In-Reply-To"] == inbound_id
    assert inbound_id in notice["References"]
    assert notice["Auto-Submitted"] == "auto-replied"
    assert notice["X-Casedesk-Case"] == number
    assert notice["Message-ID"].startswith(f"<case-{number}.clone-notice.")
    text = notice.get_body(preferencelist=("plain",))
    html = notice.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "Clone Case" in text.get_content()
    assert closed.subject in text.get_content()
    assert "<strong>Clone Case</strong>" in html.get_content()
    # The notice coming back is skipped like every other casedesk notice.
    echoed = await ingest_message(mail_cases.client, delivery.content, settings)
    assert echoed.result == "skipped", echoed
    assert len(handler.deliveries) == 1
    assert (await handle.result()).comments == []


async def test_clone_notice_rejected_permanently(
    mail_cases: MailCases, smtp_server: tuple[RecordingHandler, int]
) -> None:
    handler, port = smtp_server
    handler.recipient_reply = "550 5.1.1 <ann.lee@example.org>: User unknown"
    number = await mail_cases.open()
    handle = mail_cases.client.get_workflow_handle_for(
        SupportCase.run, f"case-{number}"
    )
    await handle.execute_update(
        SupportCase.change_status, set_status(Status.CLOSED, SUPPORT)
    )
    await handle.result()
    settings = EmailSettings(smtp_host="127.0.0.1", smtp_port=port)
    message = reply(subject=f"Re: [Case {number}] Closed")

    outcome = await ingest_message(mail_cases.client, as_bytes(message), settings)

    assert outcome.result == "skipped", outcome
    assert "rejected the clone notice permanently (SMTP [550])" in outcome.reason
    assert "ann.lee" not in outcome.reason
    assert handler.deliveries == []


async def test_closed_case_notice_in_outbox_once(mail_cases: MailCases) -> None:
    number = await mail_cases.open()
    handle = mail_cases.client.get_workflow_handle_for(
        SupportCase.run, f"case-{number}"
    )
    await handle.execute_update(
        SupportCase.change_status, set_status(Status.CLOSED, SUPPORT)
    )
    await handle.result()
    message = reply(subject=f"Re: [Case {number}] Closed")

    first = await mail_cases.ingest(message)
    again = await mail_cases.ingest(message)

    assert first.result == "notice_sent", first
    assert again.result == "notice_sent", again
    files = list((mail_cases.settings.outbox_dir / "new").iterdir())
    assert len(files) == 1


async def test_closed_case_notice_never_injects_a_header(
    mail_cases: MailCases,
) -> None:
    number = await mail_cases.open()
    handle = mail_cases.client.get_workflow_handle_for(
        SupportCase.run, f"case-{number}"
    )
    await handle.execute_update(
        SupportCase.change_status, set_status(Status.CLOSED, SUPPORT)
    )
    await handle.result()
    # An encoded-word in the sender's name decodes to CR LF and a Bcc header;
    # copied into the notice's To header it would add a recipient.
    # The email package refuses to build such a header, so the raw bytes are
    # edited as a hostile client would send them.
    data = as_bytes(reply(subject=f"Re: [Case {number}] Closed")).replace(
        b"From: Ann Lee <ann.lee@example.org>",
        b"From: =?utf-8?q?Ann=0D=0ABcc:_intruder@example.net?= <ann.lee@example.org>",
    )
    assert b"intruder" in data

    outcome = await ingest_message(mail_cases.client, data, mail_cases.settings)

    assert outcome.result == "skipped", outcome
    outbox = mail_cases.settings.outbox_dir / "new"
    assert not outbox.exists() or list(outbox.iterdir()) == []


async def test_reply_to_unknown_case(mail_cases: MailCases) -> None:
    unknown = new_case_number("NONE")
    outcome = await mail_cases.ingest(reply(subject=f"Re: [Case {unknown}] Hi"))
    unmatched = await mail_cases.ingest(reply(subject="A question"))

    assert outcome.result == "not_found", outcome
    assert outcome.exit_code == EXIT_NOT_FOUND
    assert unmatched.result == "not_found", unmatched
    assert unmatched.case_number is None


async def test_smtp_outage_keeps_message(mail_cases: MailCases, tmp_path: Path) -> None:
    number = await mail_cases.open()
    handle = mail_cases.client.get_workflow_handle_for(
        SupportCase.run, f"case-{number}"
    )
    await handle.execute_update(
        SupportCase.change_status, set_status(Status.CLOSED, SUPPORT)
    )
    await handle.result()
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    deliver(maildir, "1.a.host", reply(subject=f"Re: [Case {number}] Closed"))
    # A bound socket that does not listen, so a connection to it is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as refusing:
        refusing.bind(("127.0.0.1", 0))
        settings = EmailSettings(
            smtp_host="127.0.0.1",
            smtp_port=refusing.getsockname()[1],
            smtp_timeout_seconds=5,
        )

        with pytest.raises(TemporaryFailure, match="clone notice"):
            await ingest_maildir_once(mail_cases.client, maildir, settings)

    assert [path.name for path in (maildir / "new").iterdir()] == ["1.a.host"]
    assert list((maildir / "cur").iterdir()) == []


# ---- the 14-day closure, on the time-skipping server


async def test_out_of_office_keeps_closure(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    queue = new_task_queue()
    number = new_case_number("OOO")
    async with build_worker(
        ts_env.client,
        task_queue=queue,
        email_settings=EmailSettings(outbox_dir=tmp_path / "outbox"),
    ):
        handle = await ts_env.client.start_workflow(
            SupportCase.run, case_input(number), id=f"case-{number}", task_queue=queue
        )
        before = await handle.execute_update(
            SupportCase.change_status,
            set_status(Status.AWAITING_CUSTOMER_CONFIRMATION),
        )
        closure = [d for d in before.deadlines if d.kind.value == "closure"]
        assert len(closure) == 1
        out_of_office: list[dict[str, Any]] = [
            {"subject": f"Automatic reply: [Case {number}] Please confirm"},
            {
                "subject": f"Re: [Case {number}] Please confirm",
                "headers": {"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
            },
        ]

        for fields in out_of_office:
            message = reply(
                "I am out of the office until 4 January.",
                in_reply_to=notice_id(number),
                **fields,
            )
            outcome = await ingest_message(ts_env.client, as_bytes(message), SETTINGS)
            assert outcome.result == "skipped", outcome
            assert "automatic reply" in outcome.reason

        after = await handle.query(SupportCase.get_case)
        assert after.status is Status.AWAITING_CUSTOMER_CONFIRMATION
        assert after.comments == []
        assert after.deadlines == before.deadlines
        await sleep_until(ts_env, closure[0].due_at)
        closed = await final_case(ts_env, handle)

    assert closed.status is Status.CLOSED
    assert closed.closure is not None
    assert closed.closure.rule == closure[0].rule
    assert closed.closure.at >= closure[0].due_at


# ---- the command


async def run_casedesk(
    env: dict[str, str], *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(
        str(BIN / "casedesk"),
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate(stdin)
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(args), process.returncode, stdout.decode(), stderr.decode()
    )


def command_env(mail_cases: MailCases, dev_env: WorkflowEnvironment) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "CASE_TASK_QUEUE": mail_cases.task_queue,
        "CASE_OUTBOX_DIR": str(mail_cases.settings.outbox_dir),
    }


async def test_command_reads_stdin_and_files(
    mail_cases: MailCases, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = command_env(mail_cases, dev_env)
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    auto = tmp_path / "auto.eml"
    auto.write_bytes(
        as_bytes(reply(in_reply_to=notice_id(number), headers={"Precedence": "bulk"}))
    )

    piped = await run_casedesk(
        env,
        "mail",
        "ingest",
        stdin=as_bytes(reply("Piped in.", in_reply_to=notice_id(number))),
    )
    from_file = await run_casedesk(env, "mail", "ingest", str(auto))
    unmatched = await run_casedesk(
        env, "mail", "ingest", "-", stdin=as_bytes(reply(subject="Hello"))
    )
    missing = await run_casedesk(env, "mail", "ingest", str(tmp_path / "none.eml"))

    assert piped.returncode == 0, piped.stderr
    assert f"applied case {number}" in piped.stdout
    assert "1 applied" in piped.stderr
    assert from_file.returncode == 0, from_file.stderr
    assert f"skipped case {number}" in from_file.stdout
    assert "Precedence: bulk" in from_file.stdout
    assert '"event": "mail.skipped"' in from_file.stderr
    assert f'"case": "{number}"' in from_file.stderr
    assert "ann.lee@example.org" not in from_file.stderr
    assert "ann.lee@example.org" not in piped.stderr
    assert "Piped in." not in piped.stderr
    assert unmatched.returncode == EXIT_NOT_FOUND, unmatched.stderr
    assert missing.returncode == EXIT_INVALID
    assert "not found" in missing.stderr
    case = await mail_cases.case(number)
    assert [c.body for c in case.comments] == ["Piped in."]


async def test_command_without_temporal(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as refusing:
        refusing.bind(("127.0.0.1", 0))
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{refusing.getsockname()[1]}",
        }
        maildir = tmp_path / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True)
        deliver(maildir, "1.a.host", reply(subject="Re: [Case 1] Waiting"))

        result = await run_casedesk(env, "mail", "ingest", "--maildir", str(maildir))

    assert result.returncode == EXIT_TEMPORARY_FAILURE, result.stderr
    assert "cannot connect to Temporal" in result.stderr
    assert [path.name for path in (maildir / "new").iterdir()] == ["1.a.host"]


def deliver(maildir: Path, name: str, message: EmailMessage) -> None:
    """Deliver into a Maildir as an MTA does: write into tmp/, then rename into new/."""
    temporary = maildir / "tmp" / name
    temporary.write_bytes(as_bytes(message))
    temporary.rename(maildir / "new" / name)


async def watch_until_handled(
    env: dict[str, str], maildir: Path, handled: int
) -> subprocess.CompletedProcess[str]:
    """Run the watching command until ``handled`` messages are in cur/, then stop it."""
    process = await asyncio.create_subprocess_exec(
        str(BIN / "casedesk"),
        "mail",
        "ingest",
        "--maildir",
        str(maildir),
        "--watch",
        "--interval",
        "0.2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def all_handled() -> None:
        assert len(list((maildir / "cur").iterdir())) == handled
        assert list((maildir / "new").iterdir()) == []

    try:
        await assert_eventually(all_handled)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        [], process.returncode, stdout.decode(), stderr.decode()
    )


async def test_watch_applies_once_across_restart(
    mail_cases: MailCases, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = command_env(mail_cases, dev_env)
    number = await mail_cases.open(Status.PENDING_CUSTOMER_INPUT)
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    first = reply("First answer.", in_reply_to=notice_id(number))
    second = reply("Second answer.", subject=f"Re: [Case {number}] Update")
    deliver(maildir, "1000.a.host", first)

    run_one = await watch_until_handled(env, maildir, handled=1)
    # The MTA delivers the first message again, as after a crash before it
    # recorded the delivery, and the second one arrives while no one watches.
    deliver(maildir, "1001.b.host", first)
    deliver(maildir, "1002.c.host", second)
    run_two = await watch_until_handled(env, maildir, handled=3)

    assert run_one.returncode == 0, run_one.stderr
    assert run_two.returncode == 0, run_two.stderr
    assert sorted(path.name for path in (maildir / "cur").iterdir()) == [
        "1000.a.host:2,S",
        "1001.b.host:2,S",
        "1002.c.host:2,S",
    ]
    assert '"event": "mail.watch_stopped"' in run_two.stderr
    case = await mail_cases.case(number)
    assert [c.body for c in case.comments] == ["First answer.", "Second answer."]
