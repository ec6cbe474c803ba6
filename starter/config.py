"""Configuration read from the environment, shared by the worker and the command line."""

import os
from collections.abc import Mapping
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig

from domain.deadlines import CalendarPeriod, CasePolicy
from starter.codec import key_ring_from_env, with_encryption

DEFAULT_TASK_QUEUE = "support-cases"
DEFAULT_ADDRESS = "localhost:7233"
# 9464 is the port the OpenTelemetry Prometheus exporter uses by default.
DEFAULT_METRICS_ADDRESS = "127.0.0.1:9464"
METRICS_OFF = "off"
POLICY_ENV_PREFIX = "CASE_POLICY_"


def task_queue(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("CASE_TASK_QUEUE") or DEFAULT_TASK_QUEUE


def metrics_address(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the ``host:port`` the worker serves Prometheus metrics on, or None when off.

    ``CASE_METRICS_ADDRESS`` sets it; the default listens on loopback only.
    """
    env = os.environ if environ is None else environ
    value = env.get("CASE_METRICS_ADDRESS", DEFAULT_METRICS_ADDRESS).strip()
    if value.lower() == METRICS_OFF:
        return None
    host, separator, port = value.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"invalid CASE_METRICS_ADDRESS {value!r}: give host:port, such as "
            f"{DEFAULT_METRICS_ADDRESS}, or {METRICS_OFF!r} to serve no metrics"
        )
    return value


def case_policy(environ: Mapping[str, str] | None = None) -> CasePolicy:
    """Build the deadline policy for new cases from ``CASE_POLICY_<RULE>`` variables.

    For example ``CASE_POLICY_PENDING_CUSTOMER_INPUT_CLOSURE=28d``. Rules not
    set keep their defaults; an unknown ``CASE_POLICY_`` variable is an error,
    so a typo cannot silently leave a default in place.
    """
    env = os.environ if environ is None else environ
    fields = set(CasePolicy.model_fields)
    values: dict[str, CalendarPeriod] = {}
    for key, text in env.items():
        if not key.startswith(POLICY_ENV_PREFIX):
            continue
        field = key.removeprefix(POLICY_ENV_PREFIX).lower()
        if field not in fields:
            known = ", ".join(
                POLICY_ENV_PREFIX + name.upper() for name in sorted(fields)
            )
            raise ValueError(f"unknown setting {key}; known ones are: {known}")
        try:
            values[field] = CalendarPeriod.parse(text)
        except ValueError as err:
            raise ValueError(f"{key}: {err}") from None
    return CasePolicy(**values)


def client_connect_config() -> dict[str, Any]:
    """Read Temporal's environment configuration.

    ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, the
    ``TEMPORAL_TLS_*`` variables and ``TEMPORAL_PROFILE`` with its TOML file
    all apply, as in the ``temporal`` CLI.
    """
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config["data_converter"] = data_converter()
    return config


def data_converter(environ: Mapping[str, str] | None = None) -> DataConverter:
    """Return the pydantic data converter, with payload encryption when keys are configured.

    ``starter.codec`` describes the ``CASE_ENCRYPTION_*`` settings.
    """
    return with_encryption(pydantic_data_converter, key_ring_from_env(environ))
