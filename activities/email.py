"""Case notification emails, written to a Maildir outbox or sent by SMTP.

The workflow derives each message's Message-ID from the case number, the
status entry and the kind of notice, so a retried activity produces the same
message. The Maildir outbox stores each Message-ID once. An SMTP server
receives the same Message-ID again only if the activity is retried after the
server accepted the message but before the activity completed.
"""

import asyncio
import email.policy
import hashlib
import os
import re
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import structlog
from pydantic import AwareDatetime, BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

log = structlog.get_logger(__name__)

Notice = Literal["reminder", "closure"]


class CaseEmail(BaseModel):
    """One notice to a case's contact, as the workflow requests it."""

    notice: Notice
    # Unique per case, status entry and notice, such as "case-00012345.2.reminder".
    message_key: str
    case_number: str
    to_name: str
    to_email: str
    subject: str
    status: str
    status_since: AwareDatetime
    time_zone: str | None = None
    closes_at: AwareDatetime | None = None
    closed_reason: str | None = None


@dataclass(frozen=True)
class EmailSettings:
    outbox_dir: Path = Path("var/outbox")
    from_address: str = "casedesk <support@casedesk.localhost>"
    mail_domain: str = "casedesk.localhost"
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_seconds: float = 30.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "EmailSettings":
        env = dict(os.environ if environ is None else environ)
        port = env.get("SMTP_PORT")
        security = env.get("SMTP_SECURITY", "none")
        if security not in ("none", "starttls", "tls"):
            raise ValueError(
                f"invalid SMTP_SECURITY {security!r}: use 'none', 'starttls' or 'tls'"
            )
        return cls(
            outbox_dir=Path(env.get("CASE_OUTBOX_DIR", "var/outbox")),
            from_address=env.get("CASE_MAIL_FROM", cls.from_address),
            mail_domain=env.get("CASE_MAIL_DOMAIN", cls.mail_domain),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=int(port) if port else None,
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_security=security,  # type: ignore[arg-type]
        )

    @property
    def uses_smtp(self) -> bool:
        return bool(self.smtp_host and self.smtp_port)


# Headers are never folded below 998 characters, the line limit of RFC 5322.
# The email package (CPython 3.11 to 3.13) folds a long non-ASCII Subject into
# adjacent encoded-words and loses the space between them, so a reader shows
# "Zeitschriften  –Größe" for "Zeitschriften – Größe".
# NOTE: an unfolded encoded-word can exceed RFC 2047's 75 characters; the
# common mail readers decode it, a strict one may show it raw.
MESSAGE_POLICY = email.policy.default.clone(max_line_length=998)


def message_id(email: CaseEmail, settings: EmailSettings) -> str:
    return f"<{email.message_key}@{settings.mail_domain}>"


class InvalidHeaderError(ValueError):
    """A header value that would contain a line break or control character once decoded."""


# Control characters (C0, DEL and C1) and the Unicode line and paragraph separators.
_HEADER_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _set_header(message: EmailMessage, name: str, value: str) -> None:
    """Set header ``name``, rejecting a value that decodes to more than one line.

    The email package decodes RFC 2047 encoded-words when it parses a header
    value, so printable text such as "=?utf-8?q?=0D=0ABcc:_x@example.net?="
    becomes a line break. CPython 3.11.7 writes that break out unchanged,
    which adds a header (a Bcc that smtplib then sends to). Header values are
    therefore checked after parsing, not only before.
    """
    try:
        message[name] = value
    except ValueError as err:
        raise InvalidHeaderError(f"invalid {name} header: {err}") from None
    if _HEADER_BREAKING.search(str(message[name])):
        raise InvalidHeaderError(
            f"invalid {name} header: it contains an RFC 2047 encoded-word that decodes "
            "to a line break or control character; remove '=?' from the case's subject "
            "or contact name"
        )


def compose(email: CaseEmail, settings: EmailSettings, now: datetime) -> EmailMessage:
    """Build the message, or raise ``InvalidHeaderError`` for a header that breaks lines."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    _set_header(message, "From", settings.from_address)
    _set_header(message, "To", formataddr((email.to_name, email.to_email)))
    _set_header(message, "Date", format_datetime(now))
    _set_header(message, "Message-ID", message_id(email, settings))
    _set_header(message, "Auto-Submitted", "auto-generated")
    _set_header(message, "X-Casedesk-Case", email.case_number)
    _set_header(message, "X-Casedesk-Notice", email.notice)
    if email.notice == "reminder":
        subject = f"[Case {email.case_number}] Waiting for your reply: {email.subject}"
        message.set_content(_reminder_text(email))
    else:
        subject = f"[Case {email.case_number}] Closed: {email.subject}"
        message.set_content(_closure_text(email))
    _set_header(message, "Subject", subject)
    return message


def _local(value: datetime, time_zone: str | None) -> str:
    zone = ZoneInfo(time_zone or "UTC")
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _reminder_text(email: CaseEmail) -> str:
    closes = (
        f"If we do not hear from you, the case will be closed on "
        f"{_local(email.closes_at, email.time_zone)}.\n"
        if email.closes_at
        else ""
    )
    return (
        f"Hello {email.to_name},\n\n"
        f"Case {email.case_number} ({email.subject}) has been waiting for information "
        f"from you since {_local(email.status_since, email.time_zone)}.\n"
        "Please reply to this message with the information support asked for.\n\n"
        f"{closes}\n"
        "-- casedesk\n"
    )


def _closure_text(email: CaseEmail) -> str:
    return (
        f"Hello {email.to_name},\n\n"
        f"Case {email.case_number} ({email.subject}) was closed.\n"
        f"Reason: {email.closed_reason}\n\n"
        "If the problem is not solved or comes back, clone the case to report the\n"
        f"further work: choose Clone Case on case {email.case_number} in the support\n"
        "portal, or reply to this message and support will clone it for you.\n\n"
        "-- casedesk\n"
    )


class EmailActivities:
    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings

    @activity.defn(name="send_case_email")
    async def send_case_email(self, email: CaseEmail) -> str:
        """Deliver ``email`` and return its Message-ID."""
        try:
            message = compose(
                email, self._settings, activity.info().current_attempt_scheduled_time
            )
        except InvalidHeaderError as err:
            # A retry builds the same message, so the failure is final.
            raise ApplicationError(
                str(err), type="EmailHeaderInvalid", non_retryable=True
            ) from None
        if self._settings.uses_smtp:
            await asyncio.to_thread(self._send_smtp, message)
            delivered_to = "smtp"
        else:
            written = await asyncio.to_thread(
                write_to_maildir, self._settings.outbox_dir, message
            )
            delivered_to = "outbox" if written else "outbox (already there)"
        log.info(
            "email.sent",
            case=email.case_number,
            notice=email.notice,
            message_id=message["Message-ID"],
            delivered_to=delivered_to,
            attempt=activity.info().attempt,
        )
        return str(message["Message-ID"])

    def _send_smtp(self, message: EmailMessage) -> None:
        settings = self._settings
        assert settings.smtp_host and settings.smtp_port
        try:
            smtp: smtplib.SMTP
            if settings.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(
                    settings.smtp_host,
                    settings.smtp_port,
                    timeout=settings.smtp_timeout_seconds,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(
                    settings.smtp_host,
                    settings.smtp_port,
                    timeout=settings.smtp_timeout_seconds,
                )
            with smtp:
                if settings.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if settings.smtp_username:
                    smtp.login(settings.smtp_username, settings.smtp_password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as err:
            replies = list(err.recipients.values())
            # "from None" keeps the refused addresses out of the cause chain,
            # which the worker logs with the traceback and Temporal stores in
            # the workflow history.
            if all(code >= 500 for code, _ in replies):
                raise ApplicationError(
                    "the mail server rejected the recipient permanently "
                    f"(SMTP {_describe_replies(replies)})",
                    type="EmailRejected",
                    non_retryable=True,
                ) from None
            raise ApplicationError(
                "the mail server rejected the recipient temporarily "
                f"(SMTP {_describe_replies(replies)}); Temporal retries the activity",
                type="EmailDeferred",
            ) from None
        except smtplib.SMTPResponseException as err:
            reply = _describe_replies([(err.smtp_code, err.smtp_error)])
            if err.smtp_code >= 500:
                raise ApplicationError(
                    f"the mail server rejected the message permanently (SMTP {reply})",
                    type="EmailRejected",
                    non_retryable=True,
                ) from None
            raise ApplicationError(
                "the mail server rejected the message temporarily "
                f"(SMTP {reply}); Temporal retries the activity",
                type="EmailDeferred",
            ) from None


# Mail servers often repeat the recipient's address in a reply, as in Postfix's
# "550 5.1.1 <ann@example.org>: Recipient address rejected: User unknown".
_EMAIL_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@:;,]+>?")


def _describe_replies(replies: Sequence[tuple[int, bytes | str]]) -> str:
    """Join SMTP replies into one line, with every email address replaced."""
    described = []
    for code, text in replies:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        one_line = " ".join(text.split())
        described.append(f"{code} {_EMAIL_ADDRESS.sub('<address>', one_line)}")
    return "; ".join(described)


def write_to_maildir(folder: Path, message: EmailMessage) -> bool:
    """Write ``message`` into the Maildir ``folder`` once per Message-ID.

    Returns False when a message with the same Message-ID is already there. The
    file name is derived from the Message-ID, and the rename from tmp/ into
    new/ is atomic, so a retried or concurrent write never makes a second copy.
    """
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(message["Message-ID"]).encode()).hexdigest()[:40]
    name = f"{digest}.casedesk"
    if (folder / "new" / name).exists() or any((folder / "cur").glob(f"{name}:*")):
        return False
    temporary = folder / "tmp" / f"{name}.{os.getpid()}.{time.monotonic_ns()}"
    temporary.write_bytes(message.as_bytes())
    try:
        # link() fails when the target exists, unlike rename(), so two writers
        # racing on the same Message-ID leave exactly one file.
        os.link(temporary, folder / "new" / name)
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True
