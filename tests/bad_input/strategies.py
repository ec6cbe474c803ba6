"""Hypothesis strategies for random and hostile payloads a caller may send.

Each strategy mixes valid values with wrong types, missing and unknown
fields, unknown statuses and roles, empty and very long strings, control
characters and line breaks, unknown time zones and malformed or extreme dates.
"""

from typing import Any

from hypothesis import strategies as st

from domain.case import MAX_COMMENT_LENGTH, MAX_NOTE_LENGTH, MAX_SUBJECT_LENGTH
from domain.statuses import InstallationType, Priority, Role, Status

# Characters that break a header or a log line: CR, LF, NUL, other C0 and C1
# controls, DEL and the Unicode line and paragraph separators.
BREAKING_CHARACTERS = [
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\x0b",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
]
# Text that, folded into a header, would start a header of its own.
HEADER_INJECTIONS = [
    "\r\nBcc: attacker@example.net",
    "\nBcc: attacker@example.net",
    "\rX-Injected: yes",
    "\r\n\r\nbody injected",
    "=?utf-8?q?encoded=0D=0ABcc:_attacker@example.net?=",
]

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=8), children, max_size=3),
    ),
    max_leaves=8,
)


def hostile_text(max_length: int) -> st.SearchStrategy[str]:
    """Text around a field's limit: empty, blank, over-long, or with line breaks."""
    breaker = st.sampled_from(BREAKING_CHARACTERS)
    return st.one_of(
        st.text(max_size=40),
        st.just(""),
        st.sampled_from([" ", "\t", "   "]),
        st.text(min_size=1, max_size=5).map(lambda s: s * (max_length // len(s) + 1)),
        st.just("x" * max_length),
        st.tuples(st.text(max_size=10), breaker, st.text(max_size=10)).map("".join),
        st.sampled_from(HEADER_INJECTIONS).map(lambda s: "Login fails" + s),
    )


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is valid half of the time and any JSON value otherwise."""
    return st.one_of(valid, JSON_VALUES)


STATUSES = st.one_of(
    st.sampled_from([status.value for status in Status]),
    st.sampled_from(["closed", "CLOSED", "Pending", "New ", "", "Deleted"]),
)
ROLES = st.one_of(
    st.sampled_from([role.value for role in Role]),
    st.sampled_from(["system", "admin", "Support", "", "customer "]),
)
PRIORITIES = st.one_of(
    st.sampled_from([priority.value for priority in Priority]),
    st.sampled_from(["Urgent", "normal", ""]),
)
TIME_ZONES = st.one_of(
    st.none(),
    st.sampled_from(["Europe/Berlin", "America/New_York", "Pacific/Kiritimati"]),
    st.sampled_from(["localtime", "UTC+2", "Mars/Olympus", "", "../../etc/passwd"]),
    st.text(max_size=30),
)
# ISO 8601 strings with and without offsets, at the ends of the calendar, and
# strings that are no dates at all.
DATES = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00-14:00",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59+00:00",
            "2024-02-30T10:00:00+00:00",
            "2024-13-01T10:00:00Z",
            "2025-03-30T02:30:00+25:00",
            "yesterday",
            "",
        ]
    ),
)


def actors() -> st.SearchStrategy[Any]:
    valid = st.fixed_dictionaries({"role": ROLES}, optional={"name": hostile_text(200)})
    return mostly(valid)


def with_extra_keys(
    payload: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[Any]:
    """Add unknown keys to some payloads, which the models must reject as extra fields."""
    return st.one_of(
        payload,
        st.tuples(
            payload,
            st.dictionaries(st.text(max_size=8), JSON_SCALARS, min_size=1, max_size=2),
        ).map(
            lambda pair: (
                {**pair[1], **pair[0]} if pair[1].keys() - pair[0].keys() else pair[0]
            )
        ),
    )


def change_status_payloads() -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "status": mostly(STATUSES),
            "actor": actors(),
            "note": mostly(hostile_text(MAX_NOTE_LENGTH)),
        },
    )
    return mostly(with_extra_keys(fields))


def add_comment_payloads() -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "actor": actors(),
            "body": mostly(hostile_text(MAX_COMMENT_LENGTH)),
            "internal": mostly(st.booleans()),
        },
    )
    return mostly(with_extra_keys(fields))


def change_priority_payloads() -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "priority": mostly(PRIORITIES),
            "actor": actors(),
            "note": mostly(hostile_text(MAX_NOTE_LENGTH)),
        },
    )
    return mostly(with_extra_keys(fields))


PAYLOADS_BY_ACTION = {
    "change_status": change_status_payloads,
    "add_comment": add_comment_payloads,
    "change_priority": change_priority_payloads,
}


def case_inputs(case_number: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Case-opening requests with every field valid, hostile or missing."""
    institution = mostly(
        st.fixed_dictionaries(
            {"id": hostile_text(64), "name": hostile_text(200)},
            optional={"time_zone": TIME_ZONES},
        )
    )
    contact = mostly(
        st.fixed_dictionaries(
            {
                "name": hostile_text(200),
                "email": st.one_of(
                    st.just("ann.lee@example.org"),
                    st.sampled_from(
                        [
                            "ann@example.org\r\nBcc: attacker@example.net",
                            "ann@",
                            "",
                            "Ann <ann@example.org>",
                            "ann@example.org, bob@example.org",
                        ]
                    ),
                    st.emails().map(str),
                ),
            }
        )
    )
    fields = st.fixed_dictionaries(
        {"case_number": case_number, "institution": institution, "contact": contact},
        optional={
            "subject": mostly(hostile_text(MAX_SUBJECT_LENGTH)),
            "description": hostile_text(100),
            "priority": mostly(PRIORITIES),
            "installation_type": st.one_of(
                st.sampled_from([kind.value for kind in InstallationType]),
                JSON_SCALARS,
            ),
            "affects_multiple_institutions": mostly(st.booleans()),
            "status": mostly(STATUSES),
            "status_since": mostly(DATES),
            "policy": mostly(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "pending_customer_input_reminder": mostly(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "seconds": st.integers(-5, 10**10),
                                    "days": st.integers(-5, 10**6),
                                    "months": st.integers(-5, 10**4),
                                },
                            )
                        ),
                    },
                )
            ),
        },
    )
    return with_extra_keys(fields)
