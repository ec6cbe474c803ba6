"""Record histories of SupportCase runs that publish the operator search attributes.

    .venv/bin/python -m tests.histories.record_operators

Runs started after the ``operator-search-attributes`` patch upsert more
search attributes than the released ones. These histories keep that path
replaying as the workflow changes. Each file name starts with ``operators-``;
the histories that ``tests.histories.record`` writes are left alone.
"""

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowHandle

from tests.histories.record import CUSTOMER, SUPPORT, record, start, status


async def timers_and_rejections(client: Client, queue: str) -> WorkflowHandle[Any, Any]:
    handle = await start(client, queue, "H-OPERATORS", product="Discovery")
    await status(handle, "In Progress")
    await status(handle, "Pending Development")
    await handle.signal("escalate", {"actor": SUPPORT})
    await handle.signal(
        "change_status", {"status": "Pending Release", "actor": CUSTOMER}
    )
    await status(handle, "Pending Customer Input")
    # The reminder after 2 s and the closure after 5 s end the run.
    await handle.result()
    return handle


async def main() -> None:
    await record("operators-timers_and_rejections", timers_and_rejections, [])


if __name__ == "__main__":
    asyncio.run(main())
