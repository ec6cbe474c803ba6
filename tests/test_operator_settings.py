"""Pure parts of the operator tools: settings, list filters, times and make run's flags."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from starter.cli import parse_moment
from starter.client import quote, visibility_query
from starter.config import DEFAULT_METRICS_ADDRESS, metrics_address
from starter.devserver import dev_server_command
from worker import search_attribute_type_name
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_metrics_address_defaults_to_loopback() -> None:
    assert metrics_address({}) == DEFAULT_METRICS_ADDRESS
    assert DEFAULT_METRICS_ADDRESS.startswith("127.0.0.1:")


def test_metrics_address_accepts_host_port() -> None:
    assert metrics_address({"CASE_METRICS_ADDRESS": "0.0.0.0:9100"}) == "0.0.0.0:9100"


def test_metrics_address_off() -> None:
    assert metrics_address({"CASE_METRICS_ADDRESS": "off"}) is None
    assert metrics_address({"CASE_METRICS_ADDRESS": " OFF "}) is None


@pytest.mark.parametrize(
    "value", ["9464", "localhost", ":9464", "host:0", "host:70000", "h:x"]
)
def test_metrics_address_invalid(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        metrics_address({"CASE_METRICS_ADDRESS": value})

    assert f"invalid CASE_METRICS_ADDRESS {value!r}" in str(caught.value)
    assert "'off'" in str(caught.value)


def test_query_combines_filters_with_and() -> None:
    query = visibility_query(
        status="Pending Development",
        priority="High",
        waiting_on="development",
        product="Discovery",
        institution="inst-1",
        deadline_before=NOW,
        query='CaseStatusSince < "2026-11-04T12:00:00Z"',
    )

    assert query == (
        'WorkflowType = "SupportCase" AND ExecutionStatus = "Running" '
        'AND CaseStatus = "Pending Development" AND CasePriority = "High" '
        'AND CaseWaitingOn = "development" AND CaseProduct = "Discovery" '
        'AND CaseInstitution = "inst-1" AND NextDeadlineAt < "2026-12-04T12:00:00Z" '
        'AND (CaseStatusSince < "2026-11-04T12:00:00Z")'
    )


def test_query_all_cases_drops_running() -> None:
    assert visibility_query(open_only=False) == 'WorkflowType = "SupportCase"'


def test_query_rejects_unknown_waiting_on() -> None:
    with pytest.raises(ValueError):
        visibility_query(waiting_on="marketing")


def test_quote_picks_free_quote_character() -> None:
    assert quote("Link Resolver") == '"Link Resolver"'
    assert quote('The "New" UI') == "'The \"New\" UI'"
    with pytest.raises(ValueError) as caught:
        quote("""Ann's "UI\"""")
    assert "not both" in str(caught.value)


def test_moment_from_period() -> None:
    assert parse_moment("24h", NOW) == NOW + timedelta(hours=24)
    assert parse_moment("7d", NOW) == NOW + timedelta(days=7)


def test_moment_from_iso_time() -> None:
    moment = parse_moment("2026-12-24T08:00:00+01:00", NOW)

    assert moment == datetime(2026, 12, 24, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["tomorrow", "2026-12-24T08:00:00", ""])
def test_moment_invalid(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_moment(text, NOW)

    assert f"invalid time {text!r}" in str(caught.value)


def test_make_run_registers_every_attribute(tmp_path: Path) -> None:
    command = dev_server_command(tmp_path, 17233, 18233)

    flags = [
        command[index + 1]
        for index, part in enumerate(command)
        if part == "--search-attribute"
    ]
    assert flags == [
        f"{key.name}={search_attribute_type_name(key)}" for key in ALL_SEARCH_ATTRIBUTES
    ]
    assert "CaseWaitingOn=Keyword" in flags
    assert "CaseStatusSince=Datetime" in flags
    assert len(flags) == 9
