"""Hypothesis settings for the bad-input tests.

The default profile keeps `make test` fast. For a longer search run
``HYPOTHESIS_PROFILE=thorough make test PYTEST_ARGS=tests/bad_input``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
