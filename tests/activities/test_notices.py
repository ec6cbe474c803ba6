"""Every notice kind, its threading headers, the delivery ledger and the rate limit.

The SMTP server is the aiosmtpd server of ``test_email``, on 127.0.0.1 and a
port the kernel picks. Workflow tests run on the time-skipping test server.
"""

import dataclasses
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.email import (
    SUBJECT_PREFIXES,
    CaseEmail,
    EmailSettings,
    compose,
    notification_task_queue,
    parse_support_teams,
    thread_root_id,
)
from activities.mail_ledger import MailLedger
from domain.case import Actor, Case, CaseInput
from domain.statuses import Role, Status
from starter import client as cases
from tests.activities.test_email import (
    CONTACT_EMAIL,
    CONTACT_NAME,
    PERMANENT_REJECTION,
    SCHEDULED_AT,
    SUBJECT,
    LoopbackController,
    RecordingHandler,
    SmtpServer,
    import_pending_case,
    send,
    send_error,
    smtp_server,
    smtp_settings,
)
from tests.helpers import assert_eventually, case_input, new_case_number, new_task_queue
from worker import build_worker, mail_max_per_second
from workflows.messages import AddCommentInput, ChangeStatusInput
from workflows.support_case import SupportCase

# Fixtures used by the tests below, imported so pytest finds them here.
__all__ = ["smtp_server", "smtp_settings"]

SUPPORT = Actor(role=Role.SUPPORT, name="Sam Support")
CUSTOMER = Actor(role=Role.CUSTOMER, name=CONTACT_NAME)
PRODUCT = "Discovery"
TEAM_ADDRESS = "discovery-support@example.org"
DEFAULT_SUPPORT_ADDRESS = "support-team@example.org"
CONTACT_NOTICES = [
    "opened",
    "pending_customer_input",
    "awaiting_customer_confirmation",
    "pending_customer_testing",
    "pending_release",
    "reminder",
    "closure",
]
SUPPORT_NOTICES = ["update_received", "reopened", "work_plan_reassessment"]


def notice_email(notice: str, **changes: Any) -> CaseEmail:
    key = "case-00012345.opened" if notice == "opened" else f"case-00012345.3.{notice}"
    email_ = CaseEmail.model_validate(
        {
            "notice": notice,
            "message_key": key,
            "case_number": "00012345",
            "to_name": CONTACT_NAME,
            "to_email": CONTACT_EMAIL,
            "subject": SUBJECT,
            "status": "Pending Customer Input",
            "status_since": datetime(2025, 3, 2, 8, 0, tzinfo=UTC),
            "time_zone": "Europe/Berlin",
            "closes_at": datetime(2025, 3, 30, 8, 0, tzinfo=UTC),
            "closed_reason": "closed by support: fixed in 4.2",
            "audience": "support" if notice in SUPPORT_NOTICES else "contact",
            "product": PRODUCT,
            "comment": "The <proxy> logs are attached.",
            "occurrence": 2,
        }
    )
    return email_.model_copy(update=changes)


def team_settings(**changes: Any) -> EmailSettings:
    settings = EmailSettings(
        mail_domain="mail.example.test",
        support_address=DEFAULT_SUPPORT_ADDRESS,
        support_teams={PRODUCT.casefold(): TEAM_ADDRESS},
    )
    return dataclasses.replace(settings, **changes)


def parts_of(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return str(text.get_content()), str(html.get_content())


# ---- every notice kind


@pytest.mark.parametrize("notice", CONTACT_NOTICES + SUPPORT_NOTICES)
def test_notice_headers_and_parts(notice: str) -> None:
    message = compose(notice_email(notice), team_settings(), SCHEDULED_AT)

    assert message.get_content_type() == "multipart/alternative"
    subject = str(message["Subject"])
    assert subject == f"[Case 00012345] {SUBJECT_PREFIXES[notice]}: {SUBJECT}"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Casedesk-Case"] == "00012345"
    assert message["X-Casedesk-Notice"] == notice
    text, html = parts_of(message)
    assert "00012345" in text
    assert "00012345" in html
    assert SUBJECT in text
    assert html.lstrip().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("notice", CONTACT_NOTICES)
def test_contact_notice_goes_to_contact(notice: str) -> None:
    message = compose(notice_email(notice), team_settings(), SCHEDULED_AT)

    assert parseaddr(str(message["To"])) == (CONTACT_NAME, CONTACT_EMAIL)
    text, _ = parts_of(message)
    assert f"Hello {CONTACT_NAME}," in text


@pytest.mark.parametrize("notice", SUPPORT_NOTICES)
def test_support_notice_goes_to_team(notice: str) -> None:
    message = compose(notice_email(notice), team_settings(), SCHEDULED_AT)

    assert parseaddr(str(message["To"])) == (f"{PRODUCT} support", TEAM_ADDRESS)
    assert CONTACT_EMAIL not in str(message)


def test_support_notice_default_team() -> None:
    email_ = notice_email("update_received", product="Another product")

    message = compose(email_, team_settings(), SCHEDULED_AT)

    assert parseaddr(str(message["To"]))[1] == DEFAULT_SUPPORT_ADDRESS


def test_support_team_matches_product_without_case() -> None:
    email_ = notice_email("reopened", product="  discovery ")

    message = compose(email_, team_settings(), SCHEDULED_AT)

    assert parseaddr(str(message["To"]))[1] == TEAM_ADDRESS


def test_thread_headers_point_at_root() -> None:
    root = thread_root_id("00012345", "mail.example.test")

    opened = compose(notice_email("opened"), team_settings(), SCHEDULED_AT)
    reminder = compose(notice_email("reminder"), team_settings(), SCHEDULED_AT)

    assert root == "<case-00012345.opened@mail.example.test>"
    assert opened["Message-ID"] == root
    assert opened["In-Reply-To"] is None
    assert opened["References"] is None
    assert reminder["Message-ID"] == "<case-00012345.3.reminder@mail.example.test>"
    assert reminder["In-Reply-To"] == root
    assert reminder["References"] == root


def test_closure_by_timer_names_rule() -> None:
    email_ = notice_email("closure", closed_by_rule="pending_customer_input_closure")

    text, html = parts_of(compose(email_, team_settings(), SCHEDULED_AT))

    assert "Rule: pending_customer_input_closure" in text
    assert "pending_customer_input_closure" in html
    assert "Clone Case on case 00012345" in text


def test_closure_by_support_has_no_rule() -> None:
    text, _ = parts_of(compose(notice_email("closure"), team_settings(), SCHEDULED_AT))

    assert "Reason: closed by support: fixed in 4.2" in text
    assert "Rule:" not in text


def test_html_part_escapes_values() -> None:
    message = compose(notice_email("update_received"), team_settings(), SCHEDULED_AT)

    text, html = parts_of(message)

    assert "The <proxy> logs are attached." in text
    assert "The &lt;proxy&gt; logs are attached." in html


def test_reassessment_names_occurrence() -> None:
    message = compose(
        notice_email("work_plan_reassessment"), team_settings(), SCHEDULED_AT
    )

    text, _ = parts_of(message)

    assert "reassessment reminder 2" in text
    assert "closes automatically on 2025-03-30 10:00 CEST" in text


# ---- configuration


def test_support_teams_parsed_from_json() -> None:
    teams = parse_support_teams('{"Discovery": "Team <discovery@example.org>"}')

    assert teams == {"discovery": "discovery@example.org"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "not JSON"),
        ('["a@example.org"]', "JSON object"),
        ('{"Discovery": "not an address"}', "invalid email address"),
    ],
)
def test_support_teams_invalid(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_support_teams(text)

    assert expected in str(caught.value)


def test_settings_reject_invalid_support_address() -> None:
    with pytest.raises(ValueError) as caught:
        EmailSettings.from_env({"CASE_SUPPORT_ADDRESS": "nobody"})

    assert "CASE_SUPPORT_ADDRESS" in str(caught.value)


def test_ledger_defaults_beside_outbox(tmp_path: Path) -> None:
    settings = EmailSettings.from_env({"CASE_OUTBOX_DIR": str(tmp_path / "outbox")})

    assert settings.ledger_file == tmp_path / "mail-ledger.sqlite3"


@pytest.mark.parametrize("text", ["0", "-1", "fast", "nan"])
def test_mail_rate_invalid(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        mail_max_per_second({"CASE_MAIL_MAX_PER_SECOND": text})

    assert "CASE_MAIL_MAX_PER_SECOND" in str(caught.value)


def test_mail_rate_default_and_set() -> None:
    assert mail_max_per_second({}) == 5.0
    assert mail_max_per_second({"CASE_MAIL_MAX_PER_SECOND": "0.5"}) == 0.5


# ---- TLS and login


SMTP_USERNAME = "casedesk"
SMTP_PASSWORD = "s3cret-for-tests"


class RecordingAuthenticator:
    """An aiosmtpd authenticator that accepts one login and records every attempt."""

    def __init__(self) -> None:
        self.logins: list[tuple[str, bool]] = []

    def __call__(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = auth_data.login.decode()
        accepted = (login, auth_data.password.decode()) == (
            SMTP_USERNAME,
            SMTP_PASSWORD,
        )
        self.logins.append((login, session.ssl is not None))
        return AuthResult(success=accepted)


@pytest.fixture
def certificate_authority(tmp_path: Path) -> tuple[trustme.CA, Path]:
    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return authority, ca_file


def server_tls_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_smtp_starttls_with_login(
    certificate_authority: tuple[trustme.CA, Path], outbox: Path
) -> None:
    authority, ca_file = certificate_authority
    handler = RecordingHandler()
    authenticator = RecordingAuthenticator()
    controller = LoopbackController(
        handler,
        hostname="127.0.0.1",
        port=0,
        tls_context=server_tls_context(authority),
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        settings = EmailSettings(
            outbox_dir=outbox,
            smtp_host="127.0.0.1",
            smtp_port=controller.port,
            smtp_security="starttls",
            smtp_username=SMTP_USERNAME,
            smtp_password=SMTP_PASSWORD,
            smtp_ca_file=ca_file,
            smtp_timeout_seconds=10,
        )
        await send(settings, notice_email("reminder"))
    finally:
        controller.stop()

    assert authenticator.logins == [(SMTP_USERNAME, True)]
    assert len(handler.deliveries) == 1


async def test_smtp_implicit_tls(
    certificate_authority: tuple[trustme.CA, Path], outbox: Path
) -> None:
    authority, ca_file = certificate_authority
    handler = RecordingHandler()
    controller = LoopbackController(
        handler,
        hostname="127.0.0.1",
        port=0,
        ssl_context=server_tls_context(authority),
    )
    controller.start()
    try:
        settings = EmailSettings(
            outbox_dir=outbox,
            smtp_host="127.0.0.1",
            smtp_port=controller.port,
            smtp_security="tls",
            smtp_ca_file=ca_file,
            smtp_timeout_seconds=10,
        )
        await send(settings, notice_email("closure"))
    finally:
        controller.stop()

    assert len(handler.deliveries) == 1


async def test_smtp_untrusted_certificate_retried(
    certificate_authority: tuple[trustme.CA, Path], outbox: Path
) -> None:
    authority, _ = certificate_authority
    handler = RecordingHandler()
    controller = LoopbackController(
        handler,
        hostname="127.0.0.1",
        port=0,
        ssl_context=server_tls_context(authority),
    )
    controller.start()
    try:
        # Without the test CA, the system's CAs do not trust the certificate.
        settings = EmailSettings(
            outbox_dir=outbox,
            smtp_host="127.0.0.1",
            smtp_port=controller.port,
            smtp_security="tls",
            smtp_timeout_seconds=10,
        )
        error = await send_error(settings, notice_email("closure"))
    finally:
        controller.stop()

    assert isinstance(error, ApplicationError)
    assert error.type == "EmailDeferred"
    assert error.non_retryable is False
    assert handler.deliveries == []


# ---- the ledger


async def test_ledger_skips_accepted_message(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    first = await send(smtp_settings, notice_email("reminder"), attempt=1)
    retried = await send(smtp_settings, notice_email("reminder"), attempt=2)

    assert retried == first
    assert len(smtp_server.handler.deliveries) == 1
    entry = MailLedger(smtp_settings.ledger_file).get(first)
    assert entry is not None
    assert entry.state == "accepted"
    assert entry.attempts == 2


async def test_ledger_resends_claim_before_data(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    # An attempt that died before DATA leaves the claim only.
    message_id = "<case-00012345.3.reminder@casedesk.localhost>"
    MailLedger(smtp_settings.ledger_file).claim(message_id, "00012345", "reminder")

    await send(smtp_settings, notice_email("reminder"), attempt=2)

    assert len(smtp_server.handler.deliveries) == 1


async def test_ledger_never_resends_after_data(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    # An attempt that died between DATA and the reply leaves "handed_over".
    ledger = MailLedger(smtp_settings.ledger_file)
    message_id = "<case-00012345.3.reminder@casedesk.localhost>"
    ledger.claim(message_id, "00012345", "reminder")
    ledger.mark(message_id, "handed_over")

    returned = await send(smtp_settings, notice_email("reminder"), attempt=2)

    assert returned == message_id
    assert smtp_server.handler.deliveries == []
    entry = ledger.get(message_id)
    assert entry is not None
    assert entry.state == "unconfirmed"


def test_ledger_hand_over_after_takeover(tmp_path: Path) -> None:
    ledger = MailLedger(tmp_path / "ledger.sqlite3")
    message_id = "<case-00012345.3.reminder@casedesk.localhost>"
    paused = ledger.claim(message_id, "00012345", "reminder")
    later = ledger.claim(message_id, "00012345", "reminder")

    assert ledger.hand_over(message_id, paused.attempts) is False
    assert ledger.hand_over(message_id, later.attempts) is True
    entry = ledger.get(message_id)
    assert entry is not None
    assert entry.state == "handed_over"


async def test_ledger_repeats_permanent_rejection(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = PERMANENT_REJECTION

    first = await send_error(smtp_settings, notice_email("reminder"))
    smtp_server.handler.recipient_replies.clear()
    second = await send_error(smtp_settings, notice_email("reminder"))

    assert isinstance(first, ApplicationError)
    assert isinstance(second, ApplicationError)
    assert second.non_retryable is True
    assert second.message == first.message
    assert smtp_server.handler.recipients_tried == [CONTACT_EMAIL]


async def test_ledger_transient_rejection_sends_later(
    smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    smtp_server.handler.data_reply = "451 4.3.0 try again later"
    error = await send_error(smtp_settings, notice_email("reminder"))
    smtp_server.handler.data_reply = None

    await send(smtp_settings, notice_email("reminder"), attempt=2)

    assert isinstance(error, ApplicationError)
    assert error.non_retryable is False
    assert len(smtp_server.handler.deliveries) == 1


# ---- the workflow over SMTP


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    metadata = await handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata.current_details


def status_entry_of(message: EmailMessage) -> int:
    """Return the status entry in a Message-ID such as <case-N.3.reminder@...>, 0 for the root."""
    parts = str(message["Message-ID"]).split(".")
    return int(parts[1]) if parts[1].isdigit() else 0


def delivered(smtp: SmtpServer, case_number: str) -> list[EmailMessage]:
    messages = [delivery.message() for delivery in smtp.handler.deliveries]
    return [m for m in messages if m["X-Casedesk-Case"] == case_number]


async def test_workflow_sends_every_status_notice(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    task_queue = new_task_queue()
    settings = dataclasses.replace(
        smtp_settings,
        support_address=DEFAULT_SUPPORT_ADDRESS,
        support_teams={PRODUCT.casefold(): TEAM_ADDRESS},
    )
    number = new_case_number("N")
    client = ts_env.client
    request = CaseInput.model_validate(case_input(number, product=PRODUCT))

    async def move(status: Status) -> None:
        await cases.change_status(
            client, number, ChangeStatusInput(status=status, actor=SUPPORT)
        )

    async def post_customer_comment(body: str) -> None:
        await cases.add_comment(
            client, number, AddCommentInput(actor=CUSTOMER, body=body)
        )

    async with build_worker(client, task_queue=task_queue, email_settings=settings):
        opened = await cases.open_case(client, request, task_queue=task_queue)
        await move(Status.PENDING_CUSTOMER_INPUT)
        await post_customer_comment("Here are the logs.")
        await move(Status.AWAITING_CUSTOMER_CONFIRMATION)
        await post_customer_comment("Still broken.")
        await move(Status.PENDING_CUSTOMER_TESTING)
        await move(Status.PENDING_RELEASE)
        await move(Status.CLOSED)
        final = await opened.handle.result()

    # Notices of consecutive status changes may reach the server in any
    # order, so they are compared in the order of their status entries.
    messages = sorted(delivered(smtp_server, number), key=status_entry_of)
    assert [str(m["X-Casedesk-Notice"]) for m in messages] == [
        "opened",
        "pending_customer_input",
        "update_received",
        "awaiting_customer_confirmation",
        "reopened",
        "pending_customer_testing",
        "pending_release",
        "closure",
    ]
    root = f"<case-{number}.opened@casedesk.localhost>"
    assert str(messages[0]["Message-ID"]) == root
    for message in messages[1:]:
        assert message["In-Reply-To"] == root
        assert message["References"] == root
    ids = [str(m["Message-ID"]) for m in messages]
    assert len(set(ids)) == len(ids)
    assert ids[1] == f"<case-{number}.2.pending_customer_input@casedesk.localhost>"
    assert ids[2] == f"<case-{number}.3.update_received@casedesk.localhost>"
    recipients = [d.recipients for d in smtp_server.handler.deliveries]
    assert len(recipients) == len(messages)
    assert recipients.count([TEAM_ADDRESS]) == 2
    assert recipients.count([CONTACT_EMAIL]) == 6
    update_text, _ = parts_of(messages[2])
    assert "Here are the logs." in update_text
    closure_text, _ = parts_of(messages[-1])
    assert "Reason: closed by support" in closure_text
    assert final.email_failures == []


async def test_workflow_reassesses_work_plan(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    task_queue = new_task_queue()
    number = new_case_number("P")
    since = await ts_env.get_current_time()
    request = CaseInput.model_validate(
        case_input(
            number,
            status=Status.PENDING_WORK_PLAN.value,
            status_since=since.isoformat(),
        )
    )

    async with build_worker(
        ts_env.client, task_queue=task_queue, email_settings=smtp_settings
    ):
        opened = await cases.open_case(ts_env.client, request, task_queue=task_queue)
        final = await opened.handle.result()

    messages = delivered(smtp_server, number)
    kinds = [str(m["X-Casedesk-Notice"]) for m in messages]
    # One every 3 months; the eighth falls on the 24-month closure and is left out.
    assert kinds == ["work_plan_reassessment"] * 7 + ["closure"]
    assert [str(m["Message-ID"]) for m in messages[:7]] == [
        f"<case-{number}.1.work_plan_reassessment.{n}@casedesk.localhost>"
        for n in range(1, 8)
    ]
    assert all(m["To"].addresses[0].addr_spec != CONTACT_EMAIL for m in messages[:7])
    sent = [e for e in final.history if e.event == "reassessment_sent"]
    assert len(sent) == 7
    assert final.closure is not None
    assert final.closure.rule == "pending_work_plan_closure"


async def test_workflow_reassessment_stops_on_move(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    task_queue = new_task_queue()
    number = new_case_number("P")
    since = await ts_env.get_current_time()
    request = CaseInput.model_validate(
        case_input(
            number,
            status=Status.PENDING_WORK_PLAN.value,
            status_since=since.isoformat(),
        )
    )

    async with build_worker(
        ts_env.client, task_queue=task_queue, email_settings=smtp_settings
    ):
        opened = await cases.open_case(ts_env.client, request, task_queue=task_queue)
        await ts_env.sleep(timedelta(days=100))

        async def one_reassessment() -> None:
            assert len(delivered(smtp_server, number)) == 1

        await assert_eventually(one_reassessment)
        case = await cases.change_status(
            ts_env.client,
            number,
            ChangeStatusInput(status=Status.IN_PROGRESS, actor=SUPPORT),
        )
        assert case is not None
        assert case.deadlines == []
        await ts_env.sleep(timedelta(days=200))
        await cases.change_status(
            ts_env.client,
            number,
            ChangeStatusInput(status=Status.CLOSED, actor=SUPPORT),
        )
        await opened.handle.result()

    kinds = [str(m["X-Casedesk-Notice"]) for m in delivered(smtp_server, number)]
    assert kinds == ["work_plan_reassessment", "closure"]


async def test_rejection_recorded_on_case(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    smtp_server.handler.recipient_replies[CONTACT_EMAIL] = PERMANENT_REJECTION
    task_queue = new_task_queue()

    async with build_worker(
        ts_env.client, task_queue=task_queue, email_settings=smtp_settings
    ):
        opened, _ = await import_pending_case(ts_env, task_queue)
        await ts_env.sleep(timedelta(days=7, seconds=1))

        async def failure_recorded() -> Case:
            case = await opened.handle.query(SupportCase.get_case)
            assert len(case.email_failures) == 1
            return case

        pending = await assert_eventually(failure_recorded)
        details = await current_details(opened.handle)
        final = await opened.handle.result()

    assert pending.status is Status.PENDING_CUSTOMER_INPUT
    [failure] = pending.email_failures
    assert failure.notice == "reminder"
    assert failure.message_key == f"case-{opened.case_number}.1.reminder"
    assert "rejected the recipient permanently" in failure.error
    assert CONTACT_EMAIL not in failure.error
    assert "Email failed: reminder (1 in all)" in details
    assert final.status is Status.CLOSED
    assert [f.notice for f in final.email_failures] == ["reminder", "closure"]


# ---- an SMTP outage while reminders come due


@pytest.fixture
def reserved_port() -> Iterator[tuple[socket.socket, int]]:
    """A loopback port bound without listening, so connections are refused until released."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, sock.getsockname()[1]
    finally:
        sock.close()


async def test_outage_reminders_delivered_once(
    ts_env: WorkflowEnvironment, reserved_port: tuple[socket.socket, int], outbox: Path
) -> None:
    sock, port = reserved_port
    settings = EmailSettings(
        outbox_dir=outbox,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout_seconds=10,
    )
    ledger = MailLedger(settings.ledger_file)
    task_queue = new_task_queue()
    handler = RecordingHandler()
    controller: LoopbackController | None = None

    try:
        async with build_worker(
            ts_env.client, task_queue=task_queue, email_settings=settings
        ):
            imported = [await import_pending_case(ts_env, task_queue) for _ in range(3)]
            numbers = [opened.case_number for opened, _ in imported]
            reminder_ids = [
                f"<case-{number}.1.reminder@casedesk.localhost>" for number in numbers
            ]
            # The reminders come due, and the server stays down for 6 more minutes.
            await ts_env.sleep(timedelta(days=7, seconds=1))
            await ts_env.sleep(timedelta(minutes=6))

            async def retried_during_outage() -> None:
                for message_id in reminder_ids:
                    entry = ledger.get(message_id)
                    assert entry is not None
                    assert entry.state == "claimed"
                    assert entry.attempts >= 2

            await assert_eventually(retried_during_outage)
            for opened, _ in imported:
                case = await opened.handle.query(SupportCase.get_case)
                assert case.reminders_sent == 0
                assert case.email_failures == []

            sock.close()
            controller = LoopbackController(handler, hostname="127.0.0.1", port=port)
            controller.start()
            # The retry interval is at most 10 minutes.
            await ts_env.sleep(timedelta(minutes=11))

            async def reminders_sent() -> None:
                for opened, _ in imported:
                    case = await opened.handle.query(SupportCase.get_case)
                    assert case.reminders_sent == 1

            await assert_eventually(reminders_sent)
            finals = [await opened.handle.result() for opened, _ in imported]
    finally:
        if controller is not None:
            controller.stop()

    messages = [delivery.message() for delivery in handler.deliveries]
    reminders = [
        str(m["Message-ID"]) for m in messages if m["X-Casedesk-Notice"] == "reminder"
    ]
    assert sorted(reminders) == sorted(reminder_ids)
    closures = [m for m in messages if m["X-Casedesk-Notice"] == "closure"]
    assert len(closures) == 3
    assert all(final.email_failures == [] for final in finals)
    for message_id in reminder_ids:
        entry = ledger.get(message_id)
        assert entry is not None
        assert entry.state == "accepted"


# ---- the rate limit


async def test_notifications_use_rate_limited_queue(
    ts_env: WorkflowEnvironment, smtp_server: SmtpServer, smtp_settings: EmailSettings
) -> None:
    task_queue = new_task_queue()
    workers = build_worker(
        ts_env.client,
        task_queue=task_queue,
        email_settings=smtp_settings,
        mail_max_per_second=2.0,
    )
    notification_config = workers.notification_worker.config()
    case_config = workers.case_worker.config()

    assert notification_config["task_queue"] == notification_task_queue(task_queue)
    assert notification_config["max_task_queue_activities_per_second"] == 2.0
    assert notification_config.get("workflows") in (None, [])
    assert case_config.get("max_task_queue_activities_per_second") is None

    async with workers:
        imported = [await import_pending_case(ts_env, task_queue) for _ in range(6)]
        # Six reminders come due at the same moment.
        await ts_env.sleep(timedelta(days=7, seconds=1))

        async def all_reminded() -> None:
            for opened, _ in imported:
                case = await opened.handle.query(SupportCase.get_case)
                assert case.reminders_sent == 1

        await assert_eventually(all_reminded, within=timedelta(seconds=30))
        # Each case closes by its timer. A case left open with no worker
        # stalls time skipping for the tests that run after this one.
        for opened, _ in imported:
            await opened.handle.result()
        histories = [await opened.handle.fetch_history() for opened, _ in imported]

    reminder_ids = [
        str(d.message()["Message-ID"])
        for d in smtp_server.handler.deliveries
        if d.message()["X-Casedesk-Notice"] == "reminder"
    ]
    assert len(reminder_ids) == 6
    assert len(set(reminder_ids)) == 6
    for history in histories:
        queues = [
            event.activity_task_scheduled_event_attributes.task_queue.name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert queues == [notification_task_queue(task_queue)] * 2


def test_case_email_accepts_old_input() -> None:
    # An activity scheduled by a run from before the new fields still parses.
    old = {
        "notice": "reminder",
        "message_key": "case-00012345.2.reminder",
        "case_number": "00012345",
        "to_name": CONTACT_NAME,
        "to_email": CONTACT_EMAIL,
        "subject": SUBJECT,
        "status": "Pending Customer Input",
        "status_since": "2025-03-02T08:00:00+00:00",
    }

    parsed = CaseEmail.model_validate(old)

    assert parsed.audience == "contact"
    assert cast(int, parsed.occurrence) == 1
