"""Email header injection through RFC 2047 encoded-words.

The single-line check on subjects and names rejects raw line breaks, but the
email package decodes encoded-words such as "=?utf-8?q?=0D=0A?=" when it
parses a header value, and CPython 3.11.7 writes the decoded line break out
unchanged. Without the checks tested here, the subject below added a Bcc
header, and smtplib's send_message() sends to Bcc addresses.
"""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import (
    CaseEmail,
    EmailActivities,
    EmailSettings,
    InvalidHeaderError,
    compose,
)
from domain.case import Case, CaseInput
from domain.errors import CaseRuleError
from tests.helpers import case_input

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
INJECTING_TEXT = [
    "Login fails =?utf-8?q?x=0D=0ABcc:_attacker@example.net?=",
    "=?utf-8?b?DQpCY2M6IGF0dGFja2VyQGV4YW1wbGUubmV0?=",
    "=??Q?=0D0",
]


def reminder(subject: str = "Login fails", to_name: str = "Ann Lee") -> CaseEmail:
    return CaseEmail(
        notice="reminder",
        message_key="case-00012345.2.reminder",
        case_number="00012345",
        to_name=to_name,
        to_email="ann.lee@example.org",
        subject=subject,
        status="Pending Customer Input",
        status_since=NOW,
    )


@pytest.mark.parametrize("subject", INJECTING_TEXT)
def test_compose_rejects_encoded_break_subject(subject: str) -> None:
    with pytest.raises(InvalidHeaderError, match="Subject"):
        compose(reminder(subject=subject), EmailSettings(), NOW)


@pytest.mark.parametrize("name", INJECTING_TEXT[:2])
def test_compose_rejects_encoded_break_name(name: str) -> None:
    with pytest.raises(InvalidHeaderError, match="To"):
        compose(reminder(to_name=name), EmailSettings(), NOW)


def test_compose_keeps_harmless_encoded_word() -> None:
    message = compose(
        reminder(subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?="), EmailSettings(), NOW
    )
    assert message["Subject"].endswith("Grüße")


async def test_activity_fails_final_on_injection(tmp_path: Path) -> None:
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        activity_type="send_case_email",
        current_attempt_scheduled_time=NOW,
    )
    activities = EmailActivities(EmailSettings(outbox_dir=tmp_path / "outbox"))

    with pytest.raises(ApplicationError) as raised:
        await environment.run(
            activities.send_case_email, reminder(subject=INJECTING_TEXT[0])
        )

    assert raised.value.type == "EmailHeaderInvalid"
    assert raised.value.non_retryable
    # The outbox folders are created on the first write, so none was written.
    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize("field", ["subject", "contact name"])
def test_case_rejects_encoded_word_start(field: str) -> None:
    if field == "subject":
        payload = case_input(subject=INJECTING_TEXT[0])
    else:
        payload = case_input(
            contact={"name": INJECTING_TEXT[1], "email": "ann.lee@example.org"}
        )
    case = Case.open(CaseInput.model_validate(payload), NOW)

    with pytest.raises(CaseRuleError, match=field) as raised:
        case.check_mail_header_text()

    assert raised.value.code == "encoded_word_in_header_text"
    assert "'=?'" in str(raised.value)
