"""Property tests of the models and the Case rules, without Temporal.

Without a server in the loop these run hundreds of examples in seconds. For
any payload, validation either accepts it or raises ``ValidationError``, and
an accepted case either opens or raises ``CaseRuleError``. No other exception
may escape, because inside the workflow any other exception fails the
workflow task again and again. An opened case's emails carry exactly the
headers the product sets, whatever its subject or contact name contain.
"""

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from activities.email import CaseEmail, EmailSettings, InvalidHeaderError, compose
from domain.case import Actor, Case, CaseInput
from domain.errors import CaseRuleError
from domain.statuses import Role, Status
from tests.bad_input.strategies import (
    HEADER_INJECTIONS,
    PAYLOADS_BY_ACTION,
    case_inputs,
    hostile_text,
)
from tests.helpers import case_input
from workflows.messages import AddCommentInput, ChangePriorityInput, ChangeStatusInput

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
# Without a server these are cheap, so they run three times the profile's examples.
DOMAIN_SETTINGS = settings(max_examples=3 * settings().max_examples)
# Headers compose() sets; the email package adds the three MIME ones.
EXPECTED_HEADERS = {
    "From",
    "To",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Casedesk-Case",
    "X-Casedesk-Notice",
    "Subject",
    "MIME-Version",
    # multipart/alternative: the text and HTML parts carry their own encodings.
    "Content-Type",
}
MAIL_SETTINGS = EmailSettings()
# What the models reject in single-line fields: C0 and C1 controls, DEL and
# the Unicode line and paragraph separators.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CASE_NUMBERS = st.one_of(
    st.just("00012345"), st.text(max_size=40), st.integers(), st.none()
)


def parse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def case_emails(case: Case) -> list[CaseEmail]:
    common: dict[str, Any] = {
        "case_number": case.case_number,
        "to_name": case.contact.name,
        "to_email": case.contact.email,
        "subject": case.subject,
        "status": case.status.value,
        "status_since": case.status_since,
        "time_zone": case.institution.time_zone,
    }
    return [
        CaseEmail(
            notice="reminder",
            message_key=f"case-{case.case_number}.1.reminder",
            closes_at=case.status_since + timedelta(days=28),
            **common,
        ),
        CaseEmail(
            notice="closure",
            message_key=f"case-{case.case_number}.2.closure",
            closed_reason="closed by support",
            **common,
        ),
    ]


def assert_headers_intact(message: EmailMessage, case: Case) -> None:
    parsed = parse(message)
    names = [name for name, _ in parsed.items()]
    assert sorted(names) == sorted(EXPECTED_HEADERS)
    assert parsed["To"].addresses[0].addr_spec == case.contact.email
    # Mail readers collapse runs of white space in headers, and so does this parser.
    assert words(parsed["To"].addresses[0].display_name) == words(case.contact.name)
    assert words(parsed["Subject"]).endswith(words(case.subject))


def words(text: str) -> str:
    return " ".join(text.split())


def assert_emails_safe(case: Case) -> None:
    """Check that the case's emails compose with intact headers, or that it is rejected.

    The workflow fails a new case whose ``check_mail_header_text`` raises, and
    compose() rejects any header that decodes to a line break.
    """
    try:
        case.check_mail_header_text()
    except CaseRuleError:
        for case_email in case_emails(case):
            try:
                message = compose(case_email, MAIL_SETTINGS, NOW)
            except InvalidHeaderError:
                continue
            names = [name for name, _ in parse(message).items()]
            assert sorted(names) == sorted(EXPECTED_HEADERS)
        return
    for case_email in case_emails(case):
        assert_headers_intact(compose(case_email, MAIL_SETTINGS, NOW), case)


@DOMAIN_SETTINGS
@given(payload=case_inputs(CASE_NUMBERS))
def test_case_input_opens_or_rejects(payload: Any) -> None:
    try:
        request = CaseInput.model_validate(payload)
    except ValidationError as err:
        for error in err.errors():
            assert error["msg"]
        return
    try:
        case = Case.open(request, NOW)
    except CaseRuleError as err:
        assert err.code
        assert str(err)
        return

    assert Case.model_validate_json(case.model_dump_json()) == case
    for deadline in case.deadlines:
        assert deadline.due_at.tzinfo is not None
    assert_emails_safe(case)


@DOMAIN_SETTINGS
@given(
    subject=hostile_text(200),
    name=hostile_text(200),
    time_zone=st.sampled_from([None, "Europe/Berlin", "Pacific/Kiritimati"]),
)
def test_header_fields_cannot_inject(
    subject: str, name: str, time_zone: str | None
) -> None:
    payload = case_input(
        subject=subject,
        contact={"name": name, "email": "ann.lee@example.org"},
        institution={
            "id": "inst-1",
            "name": "Example University",
            "time_zone": time_zone,
        },
    )
    try:
        request = CaseInput.model_validate(payload)
    except ValidationError:
        breaks = CONTROL_CHARACTERS.search(subject + name)
        too_long = len(subject) > 200 or len(name) > 200
        empty = not subject or not name
        assert breaks or too_long or empty
        return
    assert_emails_safe(Case.open(request, NOW))


@DOMAIN_SETTINGS
@given(
    subject=st.one_of(st.text(), st.sampled_from(HEADER_INJECTIONS)),
    name=st.one_of(st.text(), st.sampled_from(HEADER_INJECTIONS)),
)
def test_compose_rejects_raw_line_breaks(subject: str, name: str) -> None:
    """Check that compose() itself rejects a header value that would start a new header.

    The models reject such values before they reach compose(), so this checks
    the second line of defence, for an email built without them.
    """
    case_email = CaseEmail(
        notice="reminder",
        message_key="case-1.1.reminder",
        case_number="1",
        to_name=name,
        to_email="ann.lee@example.org",
        subject=subject,
        status="Pending Customer Input",
        status_since=NOW,
    )
    try:
        message = compose(case_email, MAIL_SETTINGS, NOW)
        parsed = parse(message)
    except ValueError:
        return
    names = [header for header, _ in parsed.items()]
    assert sorted(names) == sorted(EXPECTED_HEADERS)


def open_case_in(status: Status) -> Case:
    case = Case.open(CaseInput.model_validate(case_input()), NOW)
    if status is not Status.NEW:
        case.status = status
    return case


@pytest.mark.parametrize(
    "status",
    [
        Status.NEW,
        Status.PENDING_CUSTOMER_INPUT,
        Status.PENDING_WORK_PLAN,
        Status.CLOSED,
    ],
)
@DOMAIN_SETTINGS
@given(
    action=st.sampled_from(sorted(PAYLOADS_BY_ACTION)),
    data=st.data(),
)
def test_actions_apply_or_reject(
    status: Status, action: str, data: st.DataObject
) -> None:
    payload = data.draw(PAYLOADS_BY_ACTION[action](), label="payload")
    case = open_case_in(status)
    models: dict[str, type[BaseModel]] = {
        "change_status": ChangeStatusInput,
        "add_comment": AddCommentInput,
        "change_priority": ChangePriorityInput,
    }
    model = models[action]
    try:
        message = model.model_validate(payload)
    except ValidationError as err:
        assert all(error["msg"] for error in err.errors())
        return
    try:
        if isinstance(message, ChangeStatusInput):
            case.change_status(message.actor, message.status, message.note, NOW)
        elif isinstance(message, AddCommentInput):
            case.check_comment_storage(
                message.actor, message.body, message.internal, NOW
            )
            case.add_comment(message.actor, message.body, message.internal, NOW)
        else:
            assert isinstance(message, ChangePriorityInput)
            case.change_priority(message.actor, message.priority, message.note, NOW)
    except CaseRuleError as err:
        assert err.code
        assert str(err)
        return
    assert Case.model_validate_json(case.model_dump_json()) == case


def test_actor_system_role_rejected() -> None:
    with pytest.raises(ValidationError):
        Actor.model_validate({"role": "system"})
    assert Actor.model_validate({"role": Role.SUPPORT.value}).role is Role.SUPPORT
