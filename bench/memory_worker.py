"""A worker process for the memory benchmark: SupportCase or the baseline timer, nothing else.

    python -m bench.memory_worker ADDRESS TASK_QUEUE {cases,baseline} MAX_CACHED OUTBOX

It prints ``ready`` once polling and stops on SIGTERM. Running it apart from
the benchmark driver keeps the driver's own memory out of the figure.
"""

import asyncio
import signal
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.email import EmailSettings
from bench.baseline import BaselineTimer
from starter.logs import configure_logging
from worker import CaseWorkers, build_worker


async def serve(
    address: str, task_queue: str, kind: str, max_cached: int, outbox: Path
) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    worker: Worker | CaseWorkers
    if kind == "cases":
        worker = build_worker(
            client,
            task_queue=task_queue,
            email_settings=EmailSettings(outbox_dir=outbox),
            max_cached_workflows=max_cached,
        )
    else:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[BaselineTimer],
            max_cached_workflows=max_cached,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with worker:
        print("ready", flush=True)
        await stop.wait()


def main() -> None:
    if len(sys.argv) != 6 or sys.argv[3] not in ("cases", "baseline"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    configure_logging("WARNING")
    address, task_queue, kind, max_cached, outbox = sys.argv[1:]
    asyncio.run(serve(address, task_queue, kind, int(max_cached), Path(outbox)))


if __name__ == "__main__":
    main()
