"""Search attributes that operators filter cases by.

None of them contains personal data: statuses, priorities and deadline kinds
are fixed vocabularies, the product is a product name, the institution is its
id, and the closed reason names the rule or the role that closed the case.
"""

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
CASE_PRIORITY = SearchAttributeKey.for_keyword("CasePriority")
NEXT_DEADLINE_AT = SearchAttributeKey.for_datetime("NextDeadlineAt")
CASE_WAITING_ON = SearchAttributeKey.for_keyword("CaseWaitingOn")
CASE_PRODUCT = SearchAttributeKey.for_keyword("CaseProduct")
CASE_INSTITUTION = SearchAttributeKey.for_keyword("CaseInstitution")
NEXT_DEADLINE_KIND = SearchAttributeKey.for_keyword("NextDeadlineKind")
CASE_CLOSED_REASON = SearchAttributeKey.for_keyword("CaseClosedReason")
# When the case entered its current status, for questions such as "waiting on
# development for more than 30 days".
CASE_STATUS_SINCE = SearchAttributeKey.for_datetime("CaseStatusSince")

ALL_SEARCH_ATTRIBUTES = (
    CASE_STATUS,
    CASE_PRIORITY,
    NEXT_DEADLINE_AT,
    CASE_WAITING_ON,
    CASE_PRODUCT,
    CASE_INSTITUTION,
    NEXT_DEADLINE_KIND,
    CASE_CLOSED_REASON,
    CASE_STATUS_SINCE,
)
