"""Which role may move a case from which status to which.

``TRANSITION_RULES`` is the single source of this policy. README.md shows it
as a table, and a test checks that the table there matches this data.
"""

from dataclasses import dataclass

from domain.errors import CaseRuleError
from domain.statuses import (
    ASSIGNABLE_STATUSES,
    DEPRECATED_STATUSES,
    OPEN_STATUSES,
    Role,
    Status,
)

# Statuses in which support itself is working on the case. Other teams hand
# cases back to these.
SUPPORT_WORKING_STATUSES = frozenset(
    {Status.IN_PROGRESS, Status.IN_PROGRESS_TIER_1, Status.IN_PROGRESS_TIER_2}
)


@dataclass(frozen=True)
class TransitionRule:
    role: Role
    from_statuses: frozenset[Status]
    to_statuses: frozenset[Status]
    description: str


TRANSITION_RULES: tuple[TransitionRule, ...] = (
    TransitionRule(
        Role.SUPPORT,
        OPEN_STATUSES,
        ASSIGNABLE_STATUSES,
        "sets any status that is not deprecated, New and Closed included",
    ),
    TransitionRule(
        Role.DEVELOPMENT,
        frozenset({Status.PENDING_DEVELOPMENT, Status.PENDING_RELEASE}),
        frozenset(
            {
                Status.PENDING_DEVELOPMENT,
                Status.PENDING_RELEASE,
                Status.IN_PROGRESS_TIER_2,
            }
        ),
        "works on a fix and hands the case back to Tier 2",
    ),
    TransitionRule(
        Role.DEVELOPMENT,
        frozenset({Status.PENDING_WORK_PLAN}),
        frozenset({Status.PENDING_DEVELOPMENT}),
        "takes a case from the work plan into development",
    ),
    TransitionRule(
        Role.CONTENT_OPERATIONS,
        frozenset(
            {Status.PENDING_CONTENT_OPERATIONS, Status.PENDING_THIRD_PARTY_PROVIDER}
        ),
        frozenset(
            {Status.PENDING_CONTENT_OPERATIONS, Status.PENDING_THIRD_PARTY_PROVIDER}
        )
        | SUPPORT_WORKING_STATUSES,
        "waits on a third-party provider and hands the case back to support",
    ),
    TransitionRule(
        Role.PRODUCT_MANAGEMENT,
        frozenset({Status.PENDING_PRODUCT_REVIEW}),
        SUPPORT_WORKING_STATUSES | {Status.PENDING_DEVELOPMENT},
        "moves a reviewed enhancement on to support or development",
    ),
    TransitionRule(
        Role.CUSTOMER,
        OPEN_STATUSES,
        frozenset({Status.CLOSED}),
        "closes an open case",
    ),
    TransitionRule(
        Role.CUSTOMER,
        frozenset({Status.AWAITING_CUSTOMER_CONFIRMATION}),
        frozenset({Status.PENDING_CUSTOMER_TESTING}),
        "asks for time to test a proposed fix",
    ),
)


def allowed_targets(role: Role, current: Status) -> frozenset[Status]:
    """Return the statuses ``role`` may move a case in ``current`` to."""
    targets: set[Status] = set()
    for rule in TRANSITION_RULES:
        if rule.role is role and current in rule.from_statuses:
            targets |= rule.to_statuses
    targets.discard(current)
    return frozenset(targets)


def check_transition(role: Role, current: Status, target: Status) -> None:
    """Raise ``CaseRuleError`` unless ``role`` may move a case from ``current`` to ``target``."""
    if current is Status.CLOSED:
        raise CaseRuleError(
            "case_closed",
            f"the case is Closed, so role {role.value!r} cannot change its status to "
            f"{target.value!r}; clone the case to continue the work in a new one",
        )
    allowed = allowed_targets(role, current)
    allowed_text = ", ".join(repr(s.value) for s in Status if s in allowed) or "none"
    choices = f"from {current.value!r} role {role.value!r} may set: {allowed_text}"
    if target is current:
        raise CaseRuleError(
            "status_unchanged",
            f"the case is already in {target.value!r}; {choices}",
        )
    if target in DEPRECATED_STATUSES:
        raise CaseRuleError(
            "status_deprecated",
            f"{target.value!r} was deprecated on 2022-09-14 and no case may enter it; "
            f"{choices}",
        )
    if target not in allowed:
        raise CaseRuleError(
            "transition_not_allowed",
            f"role {role.value!r} may not move a case from {current.value!r} to "
            f"{target.value!r}; {choices}",
        )


def render_markdown_table() -> str:
    """Render ``TRANSITION_RULES`` as the Markdown table that README.md shows."""

    def names(statuses: frozenset[Status]) -> str:
        if statuses == OPEN_STATUSES:
            return "any open status"
        if statuses == ASSIGNABLE_STATUSES:
            return "any status except the deprecated ones"
        return ", ".join(s.value for s in Status if s in statuses)

    lines = ["| role | from | to | meaning |", "| --- | --- | --- | --- |"]
    for rule in TRANSITION_RULES:
        lines.append(
            f"| `{rule.role.value}` | {names(rule.from_statuses)} | "
            f"{names(rule.to_statuses)} | {rule.description} |"
        )
    return "\n".join(lines)
