"""`casedesk dev`, which `make run` starts: dev server, Web UI and worker, stopped by Ctrl-C."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import new_case_number, open_args

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class DevProcess:
    def __init__(self, data_dir: Path, port: int, ui_port: int) -> None:
        self.port = port
        self.ui_port = ui_port
        self.process = subprocess.Popen(
            [
                str(BIN / "casedesk"),
                "dev",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--ui-port",
                str(ui_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            # The default metrics port 9464 may be taken by a `make run`.
            env={**os.environ, "CASE_METRICS_ADDRESS": f"127.0.0.1:{free_port()}"},
        )
        self.output: list[str] = []

    def wait_until_running(self) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith("Press Ctrl-C to stop."):
                return
        raise AssertionError("casedesk dev did not start:\n" + "".join(self.output))

    def interrupt(self) -> int:
        """Send Ctrl-C as a terminal does, to the whole process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        remaining, _ = self.process.communicate(timeout=60)
        self.output.append(remaining)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield free_port(), free_port()


def ui_status(ui_port: int) -> int:
    """Return the Web UI's HTTP status, waiting for it to listen.

    The dev server opens its gRPC port, which the banner waits for, before
    its UI port, so a request right after the banner can be refused.
    """
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{ui_port}/", timeout=10
            ) as page:
                return int(page.status)
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def casedesk(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
    return subprocess.run(
        [str(BIN / "casedesk"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for_status(port: int, number: str, status: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        shown = casedesk(port, "show", number, "--json")
        if shown.returncode == 0:
            case = json.loads(shown.stdout)
            if case["status"] == status:
                return dict(case)
        if time.monotonic() > deadline:
            raise AssertionError(f"case {number} never reached {status}: {shown}")
        time.sleep(0.5)


def test_dev_runs_persists_and_stops(tmp_path: Path, ports: tuple[int, int]) -> None:
    port, ui_port = ports
    number = new_case_number("RUN")
    first = DevProcess(tmp_path, port, ui_port)
    try:
        first.wait_until_running()
        banner = "".join(first.output)
        assert f"http://localhost:{ui_port}" in banner
        assert "casedesk open" in banner

        assert ui_status(ui_port) == 200

        opened = casedesk(port, *open_args(number))
        assert opened.returncode == 0, opened.stderr
        moved = casedesk(
            port, "status", number, "Pending Customer Input", "--role", "support"
        )
        assert moved.returncode == 0, moved.stderr

        assert first.interrupt() == 0, "".join(first.output)
        assert "casedesk stopped." in "".join(first.output)
        assert not port_open(port)
    finally:
        first.kill()

    second = DevProcess(tmp_path, port, ui_port)
    try:
        second.wait_until_running()
        case = wait_for_status(port, number, "Pending Customer Input")
        deadlines = case["deadlines"]
        assert isinstance(deadlines, list)
        assert [d["kind"] for d in deadlines] == ["reminder", "closure"]
        assert (tmp_path / "temporal.db").exists()
        assert second.interrupt() == 0, "".join(second.output)
    finally:
        second.kill()


def test_dev_refuses_busy_port(tmp_path: Path, ports: tuple[int, int]) -> None:
    port, ui_port = ports
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()

        result = subprocess.run(
            [
                str(BIN / "casedesk"),
                "dev",
                "--data-dir",
                str(tmp_path),
                "--port",
                str(port),
                "--ui-port",
                str(ui_port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "casedesk is running" not in result.stdout
    assert "Traceback" not in result.stderr
