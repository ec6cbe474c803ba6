"""Worker Versioning settings: the worker deployment and build id this worker runs.

``CASE_DEPLOYMENT_NAME`` and ``CASE_BUILD_ID`` turn Worker Versioning on when
both are set, and it stays off when neither is. Workflows default to
AUTO_UPGRADE: a running case moves to the deployment's current version on its
next workflow task, so each release must keep replaying the histories of the
previous one (``workflow.patched``).
"""

import os
from collections.abc import Mapping

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

DEPLOYMENT_NAME_ENV = "CASE_DEPLOYMENT_NAME"
BUILD_ID_ENV = "CASE_BUILD_ID"


def worker_deployment_config(
    environ: Mapping[str, str] | None = None,
) -> WorkerDeploymentConfig | None:
    """Return the deployment config from the environment, or None when versioning is off."""
    env = os.environ if environ is None else environ
    name = env.get(DEPLOYMENT_NAME_ENV, "").strip()
    build_id = env.get(BUILD_ID_ENV, "").strip()
    if not name and not build_id:
        return None
    if not name or not build_id:
        missing = DEPLOYMENT_NAME_ENV if not name else BUILD_ID_ENV
        raise ValueError(
            f"{missing} is not set; Worker Versioning needs both "
            f"{DEPLOYMENT_NAME_ENV} and {BUILD_ID_ENV}, or neither to turn it off"
        )
    return versioned_deployment(name, build_id)


def versioned_deployment(name: str, build_id: str) -> WorkerDeploymentConfig:
    """Return a versioned deployment config whose workflows default to AUTO_UPGRADE."""
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=name, build_id=build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )
