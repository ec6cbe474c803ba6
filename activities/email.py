"""Case notification emails, written to a Maildir outbox or sent by SMTP.

The workflow derives each message's Message-ID from the case number, the
status entry and the kind of notice, so a retried activity produces the same
message. The Maildir outbox stores each Message-ID once. The SMTP sender
checks and records every Message-ID in a ledger (``activities.mail_ledger``),
so a retried activity does not hand the server a message it already accepted.
Bodies come from the Jinja2 templates in ``activities/templates``, as a text
and an HTML part of one multipart/alternative message.
"""

import asyncio
import email.policy
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import aiosmtplib
import jinja2
import structlog
from pydantic import AwareDatetime, BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.mail_ledger import MailLedger

log = structlog.get_logger(__name__)

Notice = Literal[
    "opened",
    "pending_customer_input",
    "awaiting_customer_confirmation",
    "pending_customer_testing",
    "pending_release",
    "reminder",
    "closure",
    "update_received",
    "reopened",
    "work_plan_reassessment",
]
Audience = Literal["contact", "support"]

# The subject line of each notice, after "[Case NUMBER] " and before the case's subject.
SUBJECT_PREFIXES: dict[str, str] = {
    "opened": "Opened",
    "pending_customer_input": "Information needed",
    "awaiting_customer_confirmation": "Please confirm the solution",
    "pending_customer_testing": "Ready for your testing",
    "pending_release": "Waiting for a release",
    "reminder": "Waiting for your reply",
    "closure": "Closed",
    "update_received": "Customer replied",
    "reopened": "Reopened by the customer",
    "work_plan_reassessment": "Reassess the work plan",
}
SUPPORT_NOTICES = frozenset({"update_received", "reopened", "work_plan_reassessment"})


class CaseEmail(BaseModel):
    """One notice about a case, as the workflow requests it.

    Fields added after the first release have defaults, so an activity
    scheduled by an older workflow still parses.
    """

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
    # The timer rule that closed the case, for a closure notice; None when a person closed it.
    closed_by_rule: str | None = None
    # "support" notices go to the support team of ``product``, not to the contact.
    audience: Audience = "contact"
    product: str = ""
    # The customer's comment that moved the case, for a support notice.
    comment: str = ""
    # Counts the reassessment reminders of one stay in Pending Work Plan, from 1.
    occurrence: int = 1


def thread_root_id(case_number: str, domain: str) -> str:
    """Return the Message-ID of the case-opened notice, the root of the case's thread.

    Every later notice names it in In-Reply-To and References. A case imported
    from another system gets no opened notice, and its notices still name it,
    which mail readers accept as a missing parent.
    """
    return f"<case-{case_number}.opened@{domain}>"


def opened_message_key(case_number: str) -> str:
    return f"case-{case_number}.opened"


def notification_task_queue(case_task_queue: str) -> str:
    """Return the task queue of the notification activities for cases on ``case_task_queue``."""
    return f"{case_task_queue}-notifications"


# One "@" between a local part and a domain, with no spaces or angle brackets.
# email_validator is not used here, because it rejects internal domains such
# as "localhost" that a team address may be on.
_ADDRESS_SYNTAX = re.compile(r"\A[^\s@<>]+@[^\s@<>]+\Z")


def _validated_address(value: str, setting: str) -> str:
    _, address = parseaddr(value)
    if not _ADDRESS_SYNTAX.match(address):
        raise ValueError(
            f"invalid email address in {setting}: {value!r}; write it as "
            "name@example.org or as Name <name@example.org>"
        )
    return address


def parse_support_teams(text: str) -> dict[str, str]:
    """Parse ``CASE_SUPPORT_TEAMS``, a JSON object from product name to address."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"invalid CASE_SUPPORT_TEAMS: not JSON ({err.msg}); write an object such as "
            '{"Discovery": "discovery-support@example.org"}'
        ) from None
    if not isinstance(raw, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in raw.items()
    ):
        raise ValueError(
            "invalid CASE_SUPPORT_TEAMS: write a JSON object from product name to "
            'address, such as {"Discovery": "discovery-support@example.org"}'
        )
    return {
        product.strip().casefold(): _validated_address(
            address, f"CASE_SUPPORT_TEAMS[{product!r}]"
        )
        for product, address in raw.items()
    }


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
    # A PEM file of CA certificates to trust for TLS in place of the system's.
    smtp_ca_file: Path | None = None
    # The SQLite ledger of SMTP deliveries; None puts it beside the outbox folder.
    ledger_path: Path | None = None
    # The support team that receives support notices when no team is set for the product.
    support_address: str = "support-team@casedesk.localhost"
    # Support team addresses by product name, compared without case.
    support_teams: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "EmailSettings":
        env = dict(os.environ if environ is None else environ)
        port = env.get("SMTP_PORT")
        security = env.get("SMTP_SECURITY", "none")
        if security not in ("none", "starttls", "tls"):
            raise ValueError(
                f"invalid SMTP_SECURITY {security!r}: use 'none', 'starttls' or 'tls'"
            )
        ledger = env.get("CASE_MAIL_LEDGER")
        ca_file = env.get("SMTP_TLS_CA_FILE")
        support_address = env.get("CASE_SUPPORT_ADDRESS") or cls.support_address
        _validated_address(support_address, "CASE_SUPPORT_ADDRESS")
        return cls(
            outbox_dir=Path(env.get("CASE_OUTBOX_DIR", "var/outbox")),
            from_address=env.get("CASE_MAIL_FROM", cls.from_address),
            mail_domain=env.get("CASE_MAIL_DOMAIN", cls.mail_domain),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=int(port) if port else None,
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_security=security,  # type: ignore[arg-type]
            smtp_ca_file=Path(ca_file) if ca_file else None,
            ledger_path=Path(ledger) if ledger else None,
            support_address=support_address,
            support_teams=parse_support_teams(env.get("CASE_SUPPORT_TEAMS") or "{}"),
        )

    @property
    def uses_smtp(self) -> bool:
        return bool(self.smtp_host and self.smtp_port)

    @property
    def ledger_file(self) -> Path:
        if self.ledger_path is not None:
            return self.ledger_path
        return self.outbox_dir.parent / "mail-ledger.sqlite3"

    def support_address_for(self, product: str) -> str:
        """Return the support team address for ``product``, or the default one."""
        return self.support_teams.get(product.strip().casefold(), self.support_address)


# Headers are never folded below 998 characters, the line limit of RFC 5322.
# The email package (CPython 3.11 to 3.13) folds a long non-ASCII Subject into
# adjacent encoded-words and loses the space between them, so a reader shows
# "Zeitschriften  –Größe" for "Zeitschriften – Größe".
# NOTE: an unfolded encoded-word can exceed RFC 2047's 75 characters; the
# common mail readers decode it, a strict one may show it raw.
MESSAGE_POLICY = email.policy.default.clone(max_line_length=998)


def message_id(email: CaseEmail, settings: EmailSettings) -> str:
    return f"<{email.message_key}@{settings.mail_domain}>"


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("activities", "templates"),
    # Only the HTML part escapes; the text part shows the values as they are.
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    keep_trailing_newline=True,
    # The templates ship with the code and change only with it, so the
    # loader need not check their files again on every notice.
    auto_reload=False,
)


def recipient_of(email: CaseEmail, settings: EmailSettings) -> tuple[str, str]:
    """Return the display name and address a notice goes to."""
    if email.audience == "support":
        team = f"{email.product} support" if email.product else "Support"
        return team, settings.support_address_for(email.product)
    return email.to_name, email.to_email


def render_bodies(email: CaseEmail, greeting_name: str) -> tuple[str, str]:
    """Render the text and HTML bodies of ``email`` from its templates."""
    context: dict[str, Any] = {
        "title": f"Case {email.case_number}",
        "case_number": email.case_number,
        "subject": email.subject,
        "to_name": greeting_name,
        "greeting_name": greeting_name,
        "status": email.status,
        "status_since": _local(email.status_since, email.time_zone),
        "closes_at": _local(email.closes_at, email.time_zone)
        if email.closes_at
        else None,
        "closed_reason": email.closed_reason,
        "closed_by_rule": email.closed_by_rule,
        "comment": email.comment,
        "occurrence": email.occurrence,
    }
    text = _TEMPLATES.get_template(f"{email.notice}.txt").render(context)
    html = _TEMPLATES.get_template(f"{email.notice}.html").render(context)
    return text, html


class InvalidHeaderError(ValueError):
    """A header value that would contain a line break or control character once decoded."""


# Control characters (C0, DEL and C1) and the Unicode line and paragraph separators.
_HEADER_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def set_header(message: EmailMessage, name: str, value: str) -> None:
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
    to_name, to_address = recipient_of(email, settings)
    own_id = message_id(email, settings)
    root_id = thread_root_id(email.case_number, settings.mail_domain)
    message = EmailMessage(policy=MESSAGE_POLICY)
    set_header(message, "From", settings.from_address)
    set_header(message, "To", formataddr((to_name, to_address)))
    set_header(message, "Date", format_datetime(now))
    set_header(message, "Message-ID", own_id)
    if own_id != root_id:
        set_header(message, "In-Reply-To", root_id)
        set_header(message, "References", root_id)
    set_header(message, "Auto-Submitted", "auto-generated")
    set_header(message, "X-Casedesk-Case", email.case_number)
    set_header(message, "X-Casedesk-Notice", email.notice)
    prefix = SUBJECT_PREFIXES[email.notice]
    set_header(
        message, "Subject", f"[Case {email.case_number}] {prefix}: {email.subject}"
    )
    text, html = render_bodies(email, to_name)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _local(value: datetime, time_zone: str | None) -> str:
    zone = ZoneInfo(time_zone or "UTC")
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


class EmailActivities:
    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        self._ledger = MailLedger(settings.ledger_file)

    @activity.defn(name="send_case_email")
    async def send_case_email(self, email: CaseEmail) -> str:
        """Deliver ``email`` and return its Message-ID."""
        info = activity.info()
        try:
            message = compose(
                email, self._settings, info.current_attempt_scheduled_time
            )
        except InvalidHeaderError as err:
            # A retry builds the same message, so the failure is final.
            raise ApplicationError(
                str(err), type="EmailHeaderInvalid", non_retryable=True
            ) from None
        if self._settings.uses_smtp:
            delivered_to = await self._send_once(email, message)
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
            attempt=info.attempt,
        )
        return str(message["Message-ID"])

    async def _send_once(self, email: CaseEmail, message: EmailMessage) -> str:
        """Send ``message`` by SMTP unless the ledger shows the server may have it."""
        message_id_ = str(message["Message-ID"])
        entry = await asyncio.to_thread(
            self._ledger.claim, message_id_, email.case_number, email.notice
        )
        if entry.state in ("accepted", "unconfirmed"):
            return "smtp (already accepted)"

        if entry.state == "handed_over":
            # NOTE: the previous attempt ended between DATA and the server's
            # reply. The server has the message if it had read the final "."
            # before the connection dropped, and lost it otherwise. casedesk
            # sends no second copy, so the message may be missing, never twice.
            await asyncio.to_thread(self._ledger.mark, message_id_, "unconfirmed")
            log.warning(
                "email.delivery_unconfirmed",
                case=email.case_number,
                notice=email.notice,
                message_id=message_id_,
            )
            return "smtp (unconfirmed, not sent again)"

        if entry.state == "rejected":
            raise ApplicationError(
                entry.detail, type="EmailRejected", non_retryable=True
            )

        # A retry starts once start_to_close_timeout has passed, so this
        # attempt gives up before then: two attempts must never send at once.
        limit = activity.info().start_to_close_timeout
        budget = limit.total_seconds() * 0.9 if limit else None
        try:
            async with asyncio.timeout(budget):
                await self._send_smtp(message, message_id_, entry.attempts)
        except TimeoutError:
            raise ApplicationError(
                f"sending took longer than {budget:.0f} seconds; "
                "Temporal retries the activity",
                type="EmailDeferred",
            ) from None
        except ApplicationError as err:
            if err.non_retryable:
                await asyncio.to_thread(
                    self._ledger.mark, message_id_, "rejected", err.message
                )
            raise
        return "smtp"

    async def _send_smtp(
        self, message: EmailMessage, message_id_: str, claim: int
    ) -> None:
        settings = self._settings
        assert settings.smtp_host and settings.smtp_port
        _, sender = parseaddr(str(message["From"]))
        _, recipient = parseaddr(str(message["To"]))
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            tls_context=ssl.create_default_context(cafile=settings.smtp_ca_file)
            if settings.smtp_security != "none"
            else None,
            timeout=settings.smtp_timeout_seconds,
        )
        handed_over = False
        try:
            await client.connect()
            if settings.smtp_username:
                await client.login(settings.smtp_username, settings.smtp_password or "")
            await client.mail(sender)
            await client.rcpt(recipient)
            # From here the server may accept the message even if this worker
            # never receives the reply, so a retry must not send it again.
            owned = await asyncio.to_thread(self._ledger.hand_over, message_id_, claim)
            if not owned:
                raise ApplicationError(
                    "a later attempt took over this message, so this attempt stops "
                    "before DATA",
                    type="EmailDeferred",
                )
            handed_over = True
            await client.data(message.as_bytes())
            await asyncio.to_thread(self._ledger.mark, message_id_, "accepted")
        except aiosmtplib.SMTPRecipientRefused as err:
            raise _rejection("recipient", err.code, err.message) from None
        except aiosmtplib.SMTPDataError as err:
            # The server replied with an error, so it did not accept the message.
            await asyncio.to_thread(self._ledger.mark, message_id_, "claimed")
            raise _rejection("message", err.code, err.message) from None
        except aiosmtplib.SMTPResponseException as err:
            # A refused sender or login is a configuration problem on our
            # side, so it is retried until an operator fixes it.
            reply = _describe_replies([(err.code, err.message)])
            raise ApplicationError(
                f"the mail server refused the session (SMTP {reply}); "
                "Temporal retries the activity",
                type="EmailDeferred",
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            where = " after DATA, the message may have arrived" if handed_over else ""
            raise ApplicationError(
                f"the mail server could not be reached or dropped the connection{where} "
                f"({type(err).__name__}); Temporal retries the activity",
                type="EmailDeferred",
            ) from None
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()


def _rejection(what: str, code: int, text: str) -> ApplicationError:
    reply = _describe_replies([(code, text)])
    if code >= 500:
        return ApplicationError(
            f"the mail server rejected the {what} permanently (SMTP {reply})",
            type="EmailRejected",
            non_retryable=True,
        )
    return ApplicationError(
        f"the mail server rejected the {what} temporarily (SMTP {reply}); "
        "Temporal retries the activity",
        type="EmailDeferred",
    )


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


def _in_maildir(folder: Path, name: str) -> bool:
    """Return whether message file ``name`` is in new/, or in cur/ with flags added by a reader."""
    if (folder / "new" / name).exists():
        return True
    prefix = f"{name}:"
    try:
        with os.scandir(folder / "cur") as entries:
            return any(entry.name.startswith(prefix) for entry in entries)
    except FileNotFoundError:
        return False


def write_to_maildir(folder: Path, message: EmailMessage) -> bool:
    """Write ``message`` into the Maildir ``folder`` once per Message-ID.

    Returns False when a message with the same Message-ID is already there. The
    file name is derived from the Message-ID, and the rename from tmp/ into
    new/ is atomic, so a retried or concurrent write never makes a second copy.
    """
    digest = hashlib.sha256(str(message["Message-ID"]).encode()).hexdigest()[:40]
    name = f"{digest}.casedesk"
    data = message.as_bytes()
    try:
        return _deliver_file(folder, name, data)
    except FileNotFoundError:
        # The first message, or a folder was removed: create them and retry.
        for sub in ("tmp", "new", "cur"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return _deliver_file(folder, name, data)


def _deliver_file(folder: Path, name: str, data: bytes) -> bool:
    """Write ``data`` to new/``name`` through tmp/ unless the message is there, and return whether it was written."""
    if _in_maildir(folder, name):
        return False
    temporary = folder / "tmp" / f"{name}.{os.getpid()}.{time.monotonic_ns()}"
    temporary.write_bytes(data)
    try:
        # link() fails when the target exists, unlike rename(), so two writers
        # racing on the same Message-ID leave exactly one file.
        os.link(temporary, folder / "new" / name)
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True
