"""The notice sent to the sender of a reply to a Closed case, and its delivery.

It is rendered from ``activities/templates/clone_notice.txt`` and ``.html``
and goes out by SMTP or into the Maildir outbox, as ``EmailSettings`` configures.
"""

import asyncio
import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr

import aiosmtplib
import jinja2

from activities.email import (
    MESSAGE_POLICY,
    EmailSettings,
    set_header,
    write_to_maildir,
)
from starter.mail_reading import MESSAGE_ID_TOKEN, sender_address, sender_name


class NoticeRejectedError(Exception):
    """The SMTP server rejected the notice permanently (a 5xx reply)."""


class NoticeNotSentError(Exception):
    """The SMTP server could not be reached or refused the notice; a later attempt may succeed."""


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

    Raises ``InvalidHeaderError`` when the reply's sender name would break a
    header line of the notice.

    Its Message-ID has casedesk's form and is derived from the reply's, so the
    notice is recognised if it comes back and is written to the outbox once.
    """
    recipient = reply_address(message)
    reply_subject = " ".join(str(message.get("Subject", "")).split())
    values = {
        "name": sender_name(message),
        "case_number": case_number,
        "case_subject": case_subject,
        "reply_subject": reply_subject or f"Case {case_number}",
    }
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:24]
    notice = EmailMessage(policy=MESSAGE_POLICY)
    set_header(notice, "From", settings.from_address)
    # The display name comes from the inbound From header, so it is checked
    # for encoded-words that decode to a line break like every other value.
    set_header(notice, "To", formataddr((sender_name(message), recipient)))
    set_header(
        notice,
        "Subject",
        f"[Case {case_number}] Closed case: your message was not added",
    )
    set_header(notice, "Date", format_datetime(datetime.now(UTC)))
    set_header(
        notice,
        "Message-ID",
        f"<case-{case_number}.clone-notice.{digest}@{settings.mail_domain}>",
    )
    set_header(notice, "In-Reply-To", message_id)
    references = MESSAGE_ID_TOKEN.findall(str(message.get("References", "")))
    set_header(notice, "References", " ".join([*references[-10:], message_id]))
    # RFC 3834 marks a message sent in response to another as "auto-replied".
    set_header(notice, "Auto-Submitted", "auto-replied")
    set_header(notice, "X-Casedesk-Case", case_number)
    set_header(notice, "X-Casedesk-Notice", "clone-notice")
    notice.set_content(_templates.get_template("clone_notice.txt").render(values))
    notice.add_alternative(
        _templates.get_template("clone_notice.html").render(values), subtype="html"
    )
    return notice


def reply_address(message: EmailMessage) -> str:
    reply_to = getaddresses([str(message.get("Reply-To", ""))])
    for _, address in reply_to:
        if "@" in address:
            return address
    return sender_address(message)


async def send_notice(notice: EmailMessage, settings: EmailSettings) -> str:
    """Send ``notice`` by SMTP when configured, or write it to the Maildir outbox.

    Returns where it went. Raises ``NoticeRejectedError`` for a permanent SMTP
    rejection and ``NoticeNotSentError`` for any other failure. Only the reply
    codes are kept, because a server's reply text can name the recipient's
    address. Over SMTP the envelope sender is empty, as RFC 3834
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
    except aiosmtplib.SMTPRecipientsRefused as err:
        codes = sorted({refused.code for refused in err.recipients})
        if all(code >= 500 for code in codes):
            raise NoticeRejectedError(f"SMTP {codes}") from None
        raise NoticeNotSentError(
            f"sending the clone notice failed: SMTP {codes}"
        ) from None
    except aiosmtplib.SMTPResponseException as err:
        if err.code >= 500:
            raise NoticeRejectedError(f"SMTP {err.code}") from None
        raise NoticeNotSentError(
            f"sending the clone notice failed: SMTP {err.code}"
        ) from None
    except (aiosmtplib.SMTPException, OSError) as err:
        raise NoticeNotSentError(
            f"sending the clone notice failed: {type(err).__name__}"
        ) from None
    return "smtp"
