"""Tests of the status list and of who may move a case from which status to which.

The expected policy is written out here on its own, from the product's rules,
so that a wrong entry in ``TRANSITION_RULES`` makes these tests fail instead of
being copied into the expectation.
"""

import itertools

import pytest

from domain.errors import CaseRuleError
from domain.statuses import Role, Status
from domain.transitions import TRANSITION_RULES, check_transition, render_markdown_table

STATUS_NAMES = [
    "New",
    "In Progress",
    "In Progress - Tier 1",
    "In Progress - Tier 2",
    "Pending Customer Input",
    "Update Received",
    "Pending Work Plan",
    "Pending Development",
    "Pending Release",
    "Pending Customer Testing",
    "Pending Content Operations",
    "Pending Third Party Provider",
    "Pending Product Review",
    "Awaiting Customer Confirmation",
    "Reopened",
    "Closed",
]
ROLE_NAMES = [
    "customer",
    "support",
    "development",
    "content_operations",
    "product_management",
]

DEPRECATED = {"Pending Work Plan", "Pending Product Review"}
TIERS = {"In Progress", "In Progress - Tier 1", "In Progress - Tier 2"}


def policy_allows(role: str, current: str, target: str) -> bool:
    """Return whether the product's policy lets ``role`` move ``current`` to ``target``."""
    if current == "Closed" or target == current or target in DEPRECATED:
        return False
    if role == "support":
        return True
    if role == "development":
        if current in {"Pending Development", "Pending Release"}:
            return target in {
                "Pending Development",
                "Pending Release",
                "In Progress - Tier 2",
            }
        if current == "Pending Work Plan":
            return target == "Pending Development"
        return False
    if role == "content_operations":
        waiting = {"Pending Content Operations", "Pending Third Party Provider"}
        return current in waiting and target in waiting | TIERS
    if role == "product_management":
        return current == "Pending Product Review" and target in TIERS | {
            "Pending Development"
        }
    if role == "customer":
        if target == "Closed":
            return True
        return (
            current == "Awaiting Customer Confirmation"
            and target == "Pending Customer Testing"
        )
    raise AssertionError(f"unknown role {role!r}")


def expected_code(current: str, target: str) -> str:
    """Return the code of the rejection the policy expects, checked in this order."""
    if current == "Closed":
        return "case_closed"
    if target == current:
        return "status_unchanged"
    if target in DEPRECATED:
        return "status_deprecated"
    return "transition_not_allowed"


def allowed_names(role: str, current: str) -> list[str]:
    return [name for name in STATUS_NAMES if policy_allows(role, current, name)]


ALL_TRIPLES = list(itertools.product(ROLE_NAMES, STATUS_NAMES, STATUS_NAMES))
REJECTED_TRIPLES = [triple for triple in ALL_TRIPLES if not policy_allows(*triple)]


def triple_id(triple: tuple[str, str, str]) -> str:
    return f"{triple[0]}:{triple[1]}->{triple[2]}"


def test_status_names_exact() -> None:
    assert [status.value for status in Status] == STATUS_NAMES


def test_role_names_exact() -> None:
    assert [role.value for role in Role] == ROLE_NAMES


def test_policy_table_nontrivial() -> None:
    # Guards the expectation itself: each role has something it may do.
    for role in ROLE_NAMES:
        accepted = [t for t in ALL_TRIPLES if t[0] == role and policy_allows(*t)]
        assert accepted, role


@pytest.mark.parametrize("triple", ALL_TRIPLES, ids=triple_id)
def test_check_transition_matches_policy(triple: tuple[str, str, str]) -> None:
    role, current, target = triple
    if policy_allows(role, current, target):
        check_transition(Role(role), Status(current), Status(target))
        return

    with pytest.raises(CaseRuleError) as caught:
        check_transition(Role(role), Status(current), Status(target))
    assert caught.value.code == expected_code(current, target)


@pytest.mark.parametrize("triple", REJECTED_TRIPLES, ids=triple_id)
def test_rejection_message_names_context(triple: tuple[str, str, str]) -> None:
    role, current, target = triple
    with pytest.raises(CaseRuleError) as caught:
        check_transition(Role(role), Status(current), Status(target))
    message = str(caught.value)

    assert f"'{role}'" in message
    assert f"'{target}'" in message
    # An enum repr such as <Status.NEW: 'New'> is not for people to read.
    assert "Status." not in message
    assert "Role." not in message
    if current == "Closed":
        assert "Closed" in message
        assert "clone" in message
        return
    assert f"'{current}'" in message
    allowed = allowed_names(role, current)
    for name in allowed:
        assert f"'{name}'" in message
    if not allowed:
        assert "none" in message


def test_not_allowed_message_example() -> None:
    with pytest.raises(CaseRuleError) as caught:
        check_transition(
            Role.DEVELOPMENT, Status.PENDING_RELEASE, Status.PENDING_CUSTOMER_INPUT
        )
    message = str(caught.value)

    assert caught.value.code == "transition_not_allowed"
    assert "'development'" in message
    assert "'Pending Release'" in message
    assert "'Pending Customer Input'" in message
    assert "'Pending Development'" in message
    assert "'In Progress - Tier 2'" in message


def test_closed_message_says_clone() -> None:
    with pytest.raises(CaseRuleError) as caught:
        check_transition(Role.SUPPORT, Status.CLOSED, Status.REOPENED)

    assert caught.value.code == "case_closed"
    assert "clone" in str(caught.value)
    assert "'support'" in str(caught.value)


def test_deprecated_message_names_date() -> None:
    with pytest.raises(CaseRuleError) as caught:
        check_transition(Role.SUPPORT, Status.NEW, Status.PENDING_PRODUCT_REVIEW)

    assert caught.value.code == "status_deprecated"
    assert "'Pending Product Review'" in str(caught.value)
    assert "2022-09-14" in str(caught.value)


def test_unchanged_code_for_same_status() -> None:
    with pytest.raises(CaseRuleError) as caught:
        check_transition(Role.SUPPORT, Status.REOPENED, Status.REOPENED)

    assert caught.value.code == "status_unchanged"
    assert "already" in str(caught.value)


def test_markdown_table_one_row_per_rule() -> None:
    lines = render_markdown_table().splitlines()

    assert lines[0] == "| role | from | to | meaning |"
    assert lines[1] == "| --- | --- | --- | --- |"
    rows = lines[2:]
    assert len(rows) == len(TRANSITION_RULES)
    for row, rule in zip(rows, TRANSITION_RULES, strict=True):
        assert row.startswith(f"| `{rule.role.value}` |")
        assert row.endswith(f" {rule.description} |")
        assert row.count("|") == 5


def test_markdown_table_names_statuses() -> None:
    rows = render_markdown_table().splitlines()[2:]
    development_row = rows[1]

    assert "Pending Development, Pending Release" in development_row
    assert "In Progress - Tier 2" in development_row
    assert "any open status" in rows[0]
    assert "any status except the deprecated ones" in rows[0]
