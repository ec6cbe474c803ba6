"""Read inbound messages: skip automatic mail, find the case, extract the reply.

Nothing here talks to Temporal or to a mail server.
"""

import email
import email.policy
import hashlib
import re
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser

from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]

from activities.email import EmailSettings
from domain.case import CASE_NUMBER_PATTERN, MAX_COMMENT_LENGTH

# "[Case 00012345]" anywhere in the subject, as every casedesk notice starts.
SUBJECT_CASE = re.compile(r"\[Case ([A-Za-z0-9-]{1,32})\]", re.IGNORECASE)
MESSAGE_ID_TOKEN = re.compile(r"<[^<>\s]+>")
# Subject prefixes that out-of-office replies commonly carry, such as
# Outlook's "Automatic reply:", in English, German and French.
OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|auto[- ]?response|out of (the )?office|"
    r"abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique)\b",
    re.IGNORECASE,
)
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "auto_reply", "list", "junk"})
# Languages whose "On ... wrote:" headers and signature markers the reply
# parser recognises in a reply. English is always included.
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl"]
TRUNCATION_NOTE = "\n[the reply was cut here: {count} more characters]"


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
