"""Real processes for the fault tests: worker.py and a dev server on a database file.

Each helper starts a separate operating-system process that a test can stop
with SIGTERM or kill with SIGKILL, so a crash here is a real crash: no
``finally`` block or graceful shutdown of the killed process runs.
"""

import asyncio
import signal
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from starter.devserver import temporal_binary
from tests.conftest import DEV_SERVER_ARGS
from tests.helpers import assert_eventually
from tests.test_end_to_end import WorkerProcess, start_worker_process
from worker import search_attribute_type_name
from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES

REPOSITORY = Path(__file__).resolve().parents[2]
START_TIMEOUT = timedelta(seconds=60)
STOP_TIMEOUT_SECONDS = 30


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class WorkerLauncher:
    """Starts worker.py processes on one task queue, with one email setting."""

    address: str
    task_queue: str
    log_dir: Path
    environment: dict[str, str] = field(default_factory=dict)
    started: list[WorkerProcess] = field(default_factory=list)

    async def start(self) -> WorkerProcess:
        """Start a worker process and wait until it logs ``worker.started``."""
        # One outbox for every worker, so they also share the delivery ledger
        # kept beside it, as workers on one host do.
        worker = await start_worker_process(
            self.address,
            self.log_dir / f"worker-{len(self.started)}",
            self.log_dir / "outbox",
            task_queue=self.task_queue,
            settings=self.environment,
        )
        self.started.append(worker)
        return worker

    async def kill_all(self) -> None:
        for worker in self.started:
            await worker.kill()


def dev_server_command(database: Path, port: int) -> list[str]:
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(database),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--headless",
        "--log-level",
        "warn",
        *DEV_SERVER_ARGS,
    ]
    for key in ALL_SEARCH_ATTRIBUTES:
        command += [
            "--search-attribute",
            f"{key.name}={search_attribute_type_name(key)}",
        ]
    return command


@dataclass
class DevServerProcess:
    """A ``temporal server start-dev`` process that keeps its state in ``database``.

    Stopping it and starting it again on the same file and port is a restart
    of the Temporal service, as after a host reboot.
    """

    database: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Client:
        """Start the server and return a client once a connection succeeds."""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *dev_server_command(self.database, self.port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        process = self.process

        async def connected() -> Client:
            assert process.returncode is None, (
                f"the dev server exited with status {process.returncode}; "
                f"see {self.log_path}"
            )
            try:
                return await Client.connect(
                    self.address, data_converter=pydantic_data_converter
                )
            except RuntimeError as err:
                raise AssertionError(f"no connection yet: {err}") from err

        return await assert_eventually(connected, within=START_TIMEOUT)

    async def stop(self) -> int:
        """Stop the server with SIGTERM and return its exit status."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
