"""Statuses, priorities, installation types and actor roles of a support case."""

from datetime import date
from enum import StrEnum


class Status(StrEnum):
    NEW = "New"
    IN_PROGRESS = "In Progress"
    IN_PROGRESS_TIER_1 = "In Progress - Tier 1"
    IN_PROGRESS_TIER_2 = "In Progress - Tier 2"
    PENDING_CUSTOMER_INPUT = "Pending Customer Input"
    UPDATE_RECEIVED = "Update Received"
    PENDING_WORK_PLAN = "Pending Work Plan"
    PENDING_DEVELOPMENT = "Pending Development"
    PENDING_RELEASE = "Pending Release"
    PENDING_CUSTOMER_TESTING = "Pending Customer Testing"
    PENDING_CONTENT_OPERATIONS = "Pending Content Operations"
    PENDING_THIRD_PARTY_PROVIDER = "Pending Third Party Provider"
    PENDING_PRODUCT_REVIEW = "Pending Product Review"
    AWAITING_CUSTOMER_CONFIRMATION = "Awaiting Customer Confirmation"
    REOPENED = "Reopened"
    CLOSED = "Closed"


# Both statuses stopped being applied on this date. Cases imported from the
# old system may still be in them, so they stay valid as a current status.
DEPRECATION_DATE = date(2022, 9, 14)
DEPRECATED_STATUSES = frozenset(
    {Status.PENDING_WORK_PLAN, Status.PENDING_PRODUCT_REVIEW}
)

OPEN_STATUSES = frozenset(s for s in Status if s is not Status.CLOSED)
ASSIGNABLE_STATUSES = frozenset(s for s in Status if s not in DEPRECATED_STATUSES)


class Priority(StrEnum):
    LOW = "Low"
    NORMAL = "Normal"
    HIGH = "High"
    CRITICAL = "Critical"


class InstallationType(StrEnum):
    DEDICATED_DIRECT = "Dedicated-Direct"
    DIRECT = "Direct"
    LOCAL = "Local"
    TOTAL_CARE = "Total Care"


class Role(StrEnum):
    """A role a caller acts in. Timers act as ``SYSTEM_ROLE``, which no caller can claim."""

    CUSTOMER = "customer"
    SUPPORT = "support"
    DEVELOPMENT = "development"
    CONTENT_OPERATIONS = "content_operations"
    PRODUCT_MANAGEMENT = "product_management"


SYSTEM_ROLE = "system"
