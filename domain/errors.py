"""Errors raised when an action breaks a rule of the case."""


class CaseRuleError(ValueError):
    """An action that the case's rules do not allow.

    ``code`` is a stable machine-readable name for the rule. The message
    states what was requested, what is allowed and what to do instead.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
