"""The incident log replay as a benchmark: wall time, rows per second and peak memory.

Each replay runs as its own ``casedesk replay`` process, so its memory and
that of the time-skipping test server it starts can be read apart from the
benchmark driver. With ``source`` set, the replay runs from another checkout
of the code (for example the commit before a speed-up) with the same Python
environment, so two versions can be measured in turns on the same machine.
"""

import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.machine import REPOSITORY

SAMPLE_INTERVAL_SECONDS = 1.0


@dataclass
class ReplayRun:
    seconds: float
    rows: int
    summary: dict[str, Any]
    peak_driver_mib: float
    peak_server_mib: float
    driver_cpu_seconds: float
    server_cpu_seconds: float
    load_before: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


class _TreeSampler(threading.Thread):
    """Record the peak resident memory and the CPU time of a process and its children."""

    def __init__(self, root: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_driver = 0
        self.peak_children = 0
        self.cpu_driver = 0.0
        self.cpu_children: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(psutil.Error):
                self._sample()
            self.done.wait(SAMPLE_INTERVAL_SECONDS)

    def _sample(self) -> None:
        self.peak_driver = max(self.peak_driver, self.root.memory_info().rss)
        times = self.root.cpu_times()
        self.cpu_driver = times.user + times.system
        total = 0
        for child in self.root.children(recursive=True):
            try:
                total += child.memory_info().rss
                child_times = child.cpu_times()
                self.cpu_children[child.pid] = child_times.user + child_times.system
            except psutil.Error:
                continue
        self.peak_children = max(self.peak_children, total)


def run_replay(
    log_path: Path,
    *,
    limit: int | None,
    timeout_seconds: float,
    source: Path = REPOSITORY,
) -> ReplayRun:
    """Run one replay of ``log_path`` and measure it; raise TimeoutError past ``timeout_seconds``."""
    load_before = " / ".join(f"{value:.2f}" for value in psutil.getloadavg())
    with tempfile.TemporaryDirectory(prefix="casedesk-bench-replay-") as scratch:
        summary_path = Path(scratch) / "summary.json"
        command = [
            sys.executable,
            "-m",
            "starter.cli",
            "replay",
            str(log_path),
            "--no-progress",
            "--json",
            str(summary_path),
        ]
        if limit is not None:
            command += ["--limit", str(limit)]
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=source,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        sampler = _TreeSampler(psutil.Process(process.pid))
        sampler.start()
        try:
            _, errors = process.communicate(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            _stop_tree(process)
            raise TimeoutError(
                f"the replay of {limit or 'all'} incidents did not finish within "
                f"{timeout_seconds:.0f} s; raise --replay-timeout or lower --replay-limit"
            ) from None
        finally:
            sampler.done.set()
            sampler.join()
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(
                f"casedesk replay exited with status {process.returncode}: "
                f"{errors.strip()[-2000:]}"
            )
        summary = json.loads(summary_path.read_text())
    return ReplayRun(
        seconds=seconds,
        rows=int(summary["rows_read"]),
        summary=summary,
        peak_driver_mib=sampler.peak_driver / 2**20,
        peak_server_mib=sampler.peak_children / 2**20,
        driver_cpu_seconds=sampler.cpu_driver,
        server_cpu_seconds=sum(sampler.cpu_children.values()),
        load_before=load_before,
    )


def _stop_tree(process: subprocess.Popen[str]) -> None:
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    process.kill()
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            continue
    process.wait()


def export_commit(reference: str, destination: Path) -> Path:
    """Write the files of commit ``reference`` to ``destination`` and return that folder."""
    destination.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", reference],
        cwd=REPOSITORY,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise ValueError(
            f"cannot export commit {reference!r}: {archive.stderr.decode().strip()}; "
            "give a commit of this repository"
        )
    subprocess.run(
        ["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True
    )
    return destination
