"""Search attributes that operators filter cases by. None of them contains personal data."""

from temporalio.common import SearchAttributeKey

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
CASE_PRIORITY = SearchAttributeKey.for_keyword("CasePriority")
NEXT_DEADLINE_AT = SearchAttributeKey.for_datetime("NextDeadlineAt")

ALL_SEARCH_ATTRIBUTES = (CASE_STATUS, CASE_PRIORITY, NEXT_DEADLINE_AT)
