"""Helpers shared by the test suite: case inputs, outbox reading and polling."""

import asyncio
import email
import email.policy
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from domain.deadlines import CasePolicy

T = TypeVar("T")


def new_task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


def new_case_number(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def case_input(case_number: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Return a valid case as the JSON object a support system sends."""
    data: dict[str, Any] = {
        "case_number": case_number or new_case_number(),
        "subject": "Search returns no results for journal titles",
        "description": "Since this morning the discovery search finds no journals.",
        "priority": "Normal",
        "institution": {
            "id": "inst-0042",
            "name": "Example University",
            "time_zone": None,
        },
        "contact": {"name": "Ann Lee", "email": "ann.lee@example.org"},
        "product": "Discovery",
        "installation_type": "Direct",
        "affects_multiple_institutions": False,
    }
    data.update(overrides)
    return data


def default_policy() -> dict[str, Any]:
    return CasePolicy().model_dump()


def read_outbox(folder: Path) -> list[EmailMessage]:
    """Parse every message in the Maildir ``folder`` (new/ and cur/)."""
    messages = []
    for sub in ("new", "cur"):
        path = folder / sub
        if not path.exists():
            continue
        for file in sorted(path.iterdir()):
            parsed = email.message_from_bytes(
                file.read_bytes(), policy=email.policy.default
            )
            assert isinstance(parsed, EmailMessage)
            messages.append(parsed)
    return messages


def notices(folder: Path, case_number: str, kind: str) -> list[EmailMessage]:
    return [
        message
        for message in read_outbox(folder)
        if message["X-Casedesk-Case"] == case_number
        and message["X-Casedesk-Notice"] == kind
    ]


async def assert_eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: timedelta = timedelta(seconds=15),
    interval: timedelta = timedelta(milliseconds=100),
) -> T:
    """Call ``check`` until it returns without an AssertionError, then return its value."""
    deadline = asyncio.get_running_loop().time() + within.total_seconds()
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(interval.total_seconds())


def iso(value: datetime) -> str:
    return value.isoformat()
