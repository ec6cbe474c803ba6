"""Arguments of the SupportCase workflow's updates and signals.

Every action is both an update and a signal with the same name and the same
single argument, so a caller chooses between a validated, answered request
(update) and fire-and-forget (signal) without changing its payload.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.case import MAX_NOTE_LENGTH, Actor, Case, Instant
from domain.statuses import Priority, Status


class ChangeStatusInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    actor: Actor
    note: str = Field(default="", max_length=MAX_NOTE_LENGTH)
    effective_at: Instant | None = Field(
        default=None,
        description=(
            "when the change happened, for changes recorded elsewhere; at most now "
            "and not before the case's last change. Deadlines run from it. "
            "Default: when the workflow applies the change."
        ),
    )


class AddCommentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: Actor
    body: str
    internal: bool = False
    # False when the author is not the case's contact: the comment is stored
    # but does not move the status.
    from_contact: bool = True


class ChangePriorityInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority
    actor: Actor
    note: str = Field(default="", max_length=MAX_NOTE_LENGTH)


class ContinuedCase(BaseModel):
    """The state one run hands to the next when the workflow continues as new."""

    case: Case
    recent_update_ids: list[str] = Field(default_factory=list)


# The workflow takes any JSON value and validates it itself, so that a
# malformed input is reported clearly instead of failing the workflow task
# again and again, as a failed decode into a typed argument does. A valid one
# is a CaseInput object or {"continued_as_new": ContinuedCase}.
WorkflowInput = Any
CONTINUED_AS_NEW_KEY = "continued_as_new"
